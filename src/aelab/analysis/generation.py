"""What generated digits are worth, in the features of the lab's digit classifier: pure
functions of arrays, no I/O.

- the Fréchet distance between two sets of features, each summarised by its mean and
  covariance (Heusel et al. 2017's formula, here in a digit classifier's 64 features: not
  an Inception FID, comparable only within the lab);
- the share of generated digits the classifier names with confidence above 0.9;
- coverage: how evenly the classes are produced, the normalised entropy of the predicted
  classes (1: all equally often, 0: one class only);
- the jump of an interpolation path: its largest step between neighbouring images as a
  share of the whole path's length (1 / (steps - 1) for an even path, 1 for a jump).
"""

from __future__ import annotations

import numpy as np

CONFIDENCE = 0.9


def moments(features: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean (R, d) and covariance (R, d, d) of (n, d) features under each row of
    `weights` (R, n) (bootstrap counts: row 0 all ones gives the plain sample moments).
    One weighted product per row: memory stays that of the features, whatever R."""
    centre = features.mean(axis=0)
    shifted = features - centre  # the covariance does not move; the sums stay small
    totals = weights.sum(axis=1)
    means = weights @ shifted / totals[:, None]
    second = np.stack([(shifted * row[:, None]).T @ shifted for row in weights])
    outer = means[:, :, None] * means[:, None, :]
    covariances = (second - totals[:, None, None] * outer) / (totals - 1)[:, None, None]
    return means + centre, covariances


def frechet_distances(
    features: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """The Fréchet distance of the (n, d) `features` to each of R reference Gaussians
    (means (R, d), covariances (R, d, d)): (R,)."""
    mean, covariance = features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))
    root = _sqrt_psd(covariance)
    # tr sqrt(C1 C2) = tr sqrt(C1^1/2 C2 C1^1/2), whose eigenvalues are real and >= 0
    products = root[None] @ covariances @ root[None]
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(products), 0, None)).sum(axis=1)
    trace = np.trace(covariance) + np.trace(covariances, axis1=1, axis2=2)
    return ((means - mean) ** 2).sum(axis=1) + trace - 2 * cross


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The Fréchet distance between two (n, d) sets of features."""
    means, covariances = moments(second, np.ones((1, len(second))))
    return float(frechet_distances(first, means, covariances)[0])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def confident(probabilities: np.ndarray) -> float:
    """The share of images whose most likely class has probability above CONFIDENCE."""
    return float((probabilities.max(axis=1) > CONFIDENCE).mean())


def coverage(probabilities: np.ndarray) -> float:
    """The normalised entropy of the predicted classes over the classifier's K classes."""
    classes = probabilities.shape[1]
    if classes == 1:
        return 1.0
    shares = np.bincount(probabilities.argmax(axis=1), minlength=classes) / len(probabilities)
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum() / np.log(classes))


def path_jumps(paths: np.ndarray) -> np.ndarray:
    """Each path's (P, steps, 784) largest step as a share of its length: (P,)."""
    steps = np.linalg.norm(np.diff(paths, axis=1), axis=2)  # (P, steps - 1)
    return steps.max(axis=1) / np.maximum(steps.sum(axis=1), 1e-12)
