"""Anomaly scores: what makes a digit anomalous. Pure functions of arrays, no I/O.

Each score is one entry of `SCORES` (higher = more anomalous), fit on the training
digits only:
- `recon`: the article's, the reconstruction error (given, not computed here);
- `knn`: the distance to the k-th nearest training code;
- `gmm`: the negative log-likelihood under a Gaussian mixture of the training codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from aelab.core.params import EvaluateParams
from aelab.core.registry import Registry

# Added to the mixtures' covariance diagonals: keeps 784-d pixel covariances, fit on a
# few thousand digits, invertible (scikit-learn's 1e-6 is too small for them).
REG_COVAR = 1e-4
Fitted = dict[str, np.ndarray]  # what a score learnt, as plain arrays: an .npz keeps them


@dataclass(frozen=True)
class AnomalyScore:
    """A score: `fit` on the training digits' values, then `score` any digits' values."""

    fit: Callable[[np.ndarray, EvaluateParams, int], Fitted]  # (train values, params, seed)
    score: Callable[[Fitted, np.ndarray], np.ndarray]  # (fitted, values (N, ...)) -> (N,)
    # What it reads of a digit: its code (scaled as evaluate.normalize_codes says) or its
    # reconstruction error, which the raw-pixel baseline has not.
    reads: Literal["codes", "error"] = "codes"
    # False: not run on the raw-pixel baseline (a 784-d pixel density is not estimable
    # from a few thousand digits, and costs more than every network's together).
    on_pixels: bool = True


SCORES: Registry[AnomalyScore] = Registry("anomaly score")


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


def fit_nothing(train: np.ndarray, params: EvaluateParams, seed: int) -> Fitted:
    return {}


def as_given(fitted: Fitted, values: np.ndarray) -> np.ndarray:
    return values


def fit_knn(train: np.ndarray, params: EvaluateParams, seed: int) -> Fitted:
    return {"train": train, "k": np.array(params.knn.k)}


def knn_score(fitted: Fitted, codes: np.ndarray) -> np.ndarray:
    return knn_distance(fitted["train"], codes, int(fitted["k"]))


# A fitted GaussianMixture is these public attributes (scikit-learn's score_samples reads
# them); the covariances are kept for whoever inspects the file.
MIXTURE_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")


def fit_gmm(train: np.ndarray, params: EvaluateParams, seed: int) -> Fitted:
    model = mixture(train, params.gmm.components, params.gmm.covariance, seed)
    return {"covariance_type": np.array(model.covariance_type),
            **{name: getattr(model, f"{name}_") for name in MIXTURE_ARRAYS}}  # fmt: skip


def gmm_score(fitted: Fitted, codes: np.ndarray) -> np.ndarray:
    model = GaussianMixture(len(fitted["weights"]), covariance_type=str(fitted["covariance_type"]))
    for name in MIXTURE_ARRAYS:
        setattr(model, f"{name}_", fitted[name])
    return -model.score_samples(codes)


SCORES.add("recon", AnomalyScore(fit_nothing, as_given, reads="error"))
SCORES.add("knn", AnomalyScore(fit_knn, knn_score))
SCORES.add("gmm", AnomalyScore(fit_gmm, gmm_score, on_pixels=False))


def values_read(
    score: AnomalyScore, features: dict[str, np.ndarray], parts: tuple[str, ...],
    normalize: bool,
) -> dict[str, np.ndarray] | None:  # fmt: skip
    """What `score` reads of each of `parts`' digits in a features file (aelab.data.features):
    their codes, scaled when `normalize`, or their reconstruction errors; None if the file
    has none (the raw-pixel baseline reconstructs nothing)."""
    if score.reads == "codes":
        return {part: prepared(features[f"{part}_latent"], normalize) for part in parts}
    if f"{parts[0]}_error" not in features:
        return None
    return {part: features[f"{part}_error"] for part in parts}


def scores_of(
    name: str, train: np.ndarray, parts: dict[str, np.ndarray], params: EvaluateParams,
    seed: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Score `name` of each array in `parts` (e.g. val and test codes), fit on `train`."""
    entry = SCORES[name]
    fitted = entry.fit(train, params, seed)
    return {part: entry.score(fitted, values) for part, values in parts.items()}
