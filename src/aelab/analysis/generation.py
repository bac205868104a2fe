"""What generated digits are worth, in the features of the lab's digit classifier: pure
functions of arrays, no I/O.

- the Fréchet distance between two sets of features, each summarised by its mean and
  covariance (Heusel et al. 2017's formula, here in a digit classifier's 64 features: not
  an Inception FID, comparable only within the lab);
- the kernel distance (KID, Bińkowski et al. 2018, *Demystifying MMD GANs*): the unbiased
  estimate of the squared maximum mean discrepancy with the polynomial kernel
  k(x, y) = (x·y / d + 1)³, in the same features. Unlike the FD, whose plug-in estimate
  is biased upwards by an amount that depends on the number of samples, its expectation
  is the population distance (0 for two samples of the same digits, so it can come out
  slightly negative);
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


def polynomial_kernel(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """KID's kernel between (n, d) and (m, d) features: (x·y / d + 1)³, (n, m)."""
    return (first @ second.T / first.shape[1] + 1) ** 3


# Kernel matrices are built this many columns at a time: memory stays (n, BLOCK) for the
# 7,000 test digits of full MNIST.
BLOCK = 1024


def kernel_reference(reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """KID's term of the (m, d) reference features alone under each row w of `weights`
    (R, m) (bootstrap counts: the unbiased estimator on the multiset they draw): the mean
    kernel over distinct pairs, (wᵀ K w − Σ_i w_i K_ii) / (M (M − 1)) with M = Σ w, (R,)."""
    quadratic = np.zeros(len(weights))
    for start in range(0, len(reference), BLOCK):
        columns = slice(start, start + BLOCK)
        part = polynomial_kernel(reference, reference[columns])  # (m, block)
        quadratic += ((weights @ part) * weights[:, columns]).sum(axis=1)
    diagonal = (np.einsum("ij,ij->i", reference, reference) / reference.shape[1] + 1) ** 3
    totals = weights.sum(axis=1)
    return (quadratic - weights @ diagonal) / (totals * (totals - 1))


def kernel_distances(
    features: np.ndarray, reference: np.ndarray, weights: np.ndarray, own_term: np.ndarray
) -> np.ndarray:
    """KID of the (n, d) `features` to the (m, d) `reference` features under each row of
    `weights` (R, m), `own_term` the reference's (kernel_reference): (R,). Unbiased: the
    generated features' mean kernel over distinct pairs, plus the reference's, minus twice
    the mean cross kernel."""
    n = len(features)
    within, across = 0.0, np.zeros(len(reference))  # across: Σ_i k(x_i, y_j) per y_j
    for start in range(0, n, BLOCK):
        rows = features[start : start + BLOCK]
        within += polynomial_kernel(rows, features).sum()
        across += polynomial_kernel(rows, reference).sum(axis=0)
    diagonal = ((np.einsum("ij,ij->i", features, features) / features.shape[1] + 1) ** 3).sum()
    own = (within - diagonal) / (n * (n - 1))
    return own + own_term - 2 * (weights @ across) / (n * weights.sum(axis=1))


def kernel_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The KID between two (n, d) sets of features."""
    weights = np.ones((1, len(second)))
    return float(kernel_distances(first, second, weights, kernel_reference(second, weights))[0])


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
