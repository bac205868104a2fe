"""What the codes say beyond the reconstruction: anomaly scores from the density of the
training codes, and clusters of the test codes. Pure functions of arrays, no I/O.

Scores (higher = more anomalous), each fit on the training digits' codes only:
- `recon`: the article's, the reconstruction error (given, not computed here);
- `knn`: the distance to the k-th nearest training code;
- `gmm`: the negative log-likelihood under a Gaussian mixture of the training codes.
Clusterers, each run on the codes it groups:
- `kmeans`: the article's;
- `gmm`: a Gaussian mixture with one component per cluster;
- `umap`: a 2-D UMAP of the codes, then a Gaussian mixture on the map (N2D, McConville
  et al. 2019). The map is also the latent-space picture.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from aelab.params import EvaluateParams

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


def umap_map(codes: np.ndarray, n_neighbors: int, n_epochs: int, seed: int) -> np.ndarray:
    """A 2-D UMAP of the codes, the same for the same seed on CPU. The exact nearest
    neighbours come from scikit-learn: umap-learn's own path for small data calls a Python
    distance function a million times."""
    import umap  # slow to import (numba): only when a map is drawn

    n_neighbors = min(n_neighbors, len(codes) - 1)
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(codes).kneighbors(codes)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, min_dist=0.0, n_epochs=n_epochs,
        random_state=seed, n_jobs=1, precomputed_knn=(indices, distances, None),
    )  # fmt: skip
    with warnings.catch_warnings():  # "transform unavailable": we never transform
        warnings.simplefilter("ignore", UserWarning)
        return reducer.fit_transform(codes).astype(np.float64)


def clusters(
    method: str, codes: np.ndarray, k: int, params: EvaluateParams, seed: int,
    umap_codes: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The cluster (0..k-1) of each code by `method`; `umap` groups `umap_codes`, the
    codes' 2-D map, when given."""
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=params.n_init, random_state=seed).fit_predict(codes)
    if method == "umap":
        if umap_codes is None:
            umap_codes = umap_map(codes, params.umap.n_neighbors, params.umap.n_epochs, seed)
        codes = umap_codes
    return mixture(codes, k, "full", seed).predict(codes)
