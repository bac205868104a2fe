"""Anomaly scores from the density of the training codes: what the codes say beyond the
reconstruction. Pure functions of arrays, no I/O.

Scores (higher = more anomalous), each fit on the training digits' codes only:
- `recon`: the article's, the reconstruction error (given, not computed here);
- `knn`: the distance to the k-th nearest training code;
- `gmm`: the negative log-likelihood under a Gaussian mixture of the training codes.
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from aelab.core.params import EvaluateParams

# Added to the mixtures' covariance diagonals: keeps 784-d pixel covariances, fit on a
# few thousand digits, invertible (scikit-learn's 1e-6 is too small for them).
REG_COVAR = 1e-4


def prepared(codes: np.ndarray, normalize: bool) -> np.ndarray:
    """The codes as float64, scaled to unit length when `normalize` (cosine geometry: the
    direction of a code says which digit, its length mostly how much ink)."""
    codes = codes.astype(np.float64)
    if not normalize:
        return codes
    return codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)


def knn_distance(train: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Each code's distance to its k-th nearest training code."""
    distances, _ = NearestNeighbors(n_neighbors=min(k, len(train))).fit(train).kneighbors(codes)
    return distances[:, -1]


def mixture(codes: np.ndarray, components: int, covariance: str, seed: int) -> GaussianMixture:
    return GaussianMixture(
        n_components=components, covariance_type=covariance, reg_covar=REG_COVAR,
        random_state=seed,
    ).fit(codes)  # fmt: skip


def density_scores(
    train: np.ndarray, parts: dict[str, np.ndarray], score: str, params: EvaluateParams, seed: int
) -> dict[str, np.ndarray]:
    """Score `knn` or `gmm` of each array in `parts` (e.g. val and test codes), fit on the
    `train` codes."""
    fitted = fit_density(train, score, params, seed)
    return {part: density_score(fitted, codes) for part, codes in parts.items()}


def fit_density(train: np.ndarray, score: str, params: EvaluateParams, seed: int) -> dict:
    """Score `knn` or `gmm` fit on the `train` codes, as plain arrays (an .npz file keeps
    them without pickle): the training codes and k, or the mixture's fitted parameters."""
    if score == "knn":
        return {"score": np.array("knn"), "train": train, "k": np.array(params.knn.k)}
    model = mixture(train, params.gmm.components, params.gmm.covariance, seed)
    return {
        "score": np.array("gmm"), "covariance_type": np.array(model.covariance_type),
        **{name: getattr(model, f"{name}_") for name in MIXTURE_ARRAYS},
    }  # fmt: skip


# A fitted GaussianMixture is these public attributes (scikit-learn's score_samples reads
# them); the covariances are kept for whoever inspects the file.
MIXTURE_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
DENSITY_ARRAYS = {"knn": ("score", "train", "k"),
                  "gmm": ("score", "covariance_type", *MIXTURE_ARRAYS)}  # fmt: skip


def density_score(fitted: dict, codes: np.ndarray) -> np.ndarray:
    """The anomaly score of each code under a density from fit_density (higher = more
    anomalous)."""
    if str(fitted["score"]) == "knn":
        return knn_distance(fitted["train"], codes, int(fitted["k"]))
    model = GaussianMixture(len(fitted["weights"]), covariance_type=str(fitted["covariance_type"]))
    for name in MIXTURE_ARRAYS:
        setattr(model, f"{name}_", fitted[name])
    return -model.score_samples(codes)
