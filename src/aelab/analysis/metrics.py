"""The three jobs of the article, as pure functions of extracted features (no I/O).

Clustering: how well clusters found in the codes (analysis.clusterers) agree with the true
digits (ARI, NMI).
Anomaly detection: how well a score (analysis.scores) singles out the digits that are "not
a normal digit".
Compression: how much smaller the code is, and what the reconstruction loses.

Every score is computed for many weightings of the test digits at once: `weights` (R, n)
says how often each digit counts, row 0 being the test set itself (all ones) and the
others bootstrap resamples (analysis.intervals). Each metric is then an (R,) array. The
formulas are scikit-learn's (the tests compare them on resampled data); written over the
rows at once because a bootstrap calls them hundreds of times per variant.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_curve

from aelab.data.digits import INPUT_DIM

UINT8_BYTES, FLOAT32_BYTES, FLOAT16_BYTES = 1, 4, 2


def agreement(labels: np.ndarray, clusters: np.ndarray, weights: np.ndarray) -> dict:
    """ARI and NMI (arithmetic normalisation, scikit-learn's default) of `clusters` against
    `labels` for each row of `weights` (R, N): two (R,) arrays."""
    _, label_ids = np.unique(labels, return_inverse=True)
    _, cluster_ids = np.unique(clusters, return_inverse=True)
    width = cluster_ids.max() + 1
    cells = np.zeros((len(labels), (label_ids.max() + 1) * width))
    cells[np.arange(len(labels)), label_ids * width + cluster_ids] = 1
    table = (weights @ cells).reshape(len(weights), -1, width)  # (R, labels, clusters)
    return {"ari": _ari(table), "nmi": _nmi(table)}


def _ari(table: np.ndarray) -> np.ndarray:
    def pairs(counts: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return (counts * (counts - 1) / 2).sum(axis=axes)

    total = table.sum(axis=(1, 2))
    both = pairs(table, (1, 2))
    rows, columns = pairs(table.sum(axis=2), (1,)), pairs(table.sum(axis=1), (1,))
    expected = rows * columns / (total * (total - 1) / 2)
    top = (rows + columns) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top == expected, 1.0, (both - expected) / (top - expected))


def _nmi(table: np.ndarray) -> np.ndarray:
    p = table / table.sum(axis=(1, 2), keepdims=True)
    p_rows, p_columns = p.sum(axis=2, keepdims=True), p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mutual = np.where(p > 0, p * np.log(p / (p_rows * p_columns)), 0).sum(axis=(1, 2))
    entropy = _entropy(p_rows) + _entropy(p_columns)
    single = ((p_rows > 0).sum(axis=(1, 2)) == 1) & ((p_columns > 0).sum(axis=(1, 2)) == 1)
    return np.where(single, 1.0, mutual / np.maximum(entropy / 2, np.finfo(float).eps))


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0).sum(axis=(1, 2))


ANOMALY_KEYS = ("roc_auc", "average_precision", "threshold", "precision", "recall", "f1")


def threshold(val_scores: np.ndarray, percentile: float) -> float:
    """Scores above this are anomalies: the validation digits' `percentile` (the article's
    95th)."""
    return float(np.percentile(val_scores, percentile))


def anomaly_detection(
    test_scores: np.ndarray,
    is_anomaly: np.ndarray,
    val_scores: np.ndarray,
    percentile: float,
    weights: np.ndarray,
) -> dict[str, np.ndarray | None]:
    """ROC AUC and average precision of `test_scores` for the anomalous digits, and
    precision, recall and F1 when everything above the validation set's `percentile`
    (the article's 95th) is called an anomaly. All None when no digit is anomalous."""
    if not is_anomaly.any() or is_anomaly.all():
        return dict.fromkeys(ANOMALY_KEYS)
    cut = threshold(val_scores, percentile)
    positive, negative = weights * is_anomaly, weights * ~is_anomaly
    flagged = test_scores > cut
    hits, false_alarms = positive @ flagged, negative @ flagged
    missed = positive.sum(axis=1) - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(hits + false_alarms > 0, hits / (hits + false_alarms), 0.0)
        recall = hits / (hits + missed)
        f1 = np.where(hits > 0, 2 * hits / (2 * hits + false_alarms + missed), 0.0)
    return {
        **_ranking(test_scores, positive, negative),
        "threshold": np.full(len(weights), cut),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _ranking(scores: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> dict:
    """ROC AUC (ties count half) and average precision (scikit-learn's step-wise sum) of
    `scores`, with `positive` and `negative` (R, N) the weight of each digit in each class."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of equal scores
    pos = np.add.reduceat(positive[:, order], starts, axis=1)  # (R, groups), ascending score
    neg = np.add.reduceat(negative[:, order], starts, axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    below = np.cumsum(neg, axis=1) - neg
    roc_auc = (pos * (below + neg / 2)).sum(axis=1) / (n_pos * n_neg)
    hits, alarms = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)
    flagged = hits + alarms
    precision = np.divide(hits, flagged, out=np.zeros_like(hits), where=flagged > 0)
    average_precision = (pos[:, ::-1] / n_pos[:, None] * precision).sum(axis=1)
    return {"roc_auc": roc_auc, "average_precision": average_precision}


def roc_points(test_scores: np.ndarray, is_anomaly: np.ndarray) -> list[dict[str, float]]:
    """The ROC curve as (fpr, tpr) points; empty when there is nothing to detect."""
    if not is_anomaly.any() or is_anomaly.all():
        return []
    fpr, tpr, _ = roc_curve(is_anomaly, test_scores)
    return [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)]


def compression(latent_dim: int, normal_errors: np.ndarray, weights: np.ndarray) -> dict:
    """`compression_ratio`: input dim / latent dim (the article's 784/32 = 24.5).
    `mse`, `psnr`: of the reconstructions of the normal test digits (`normal_errors`, with
    `weights` (R, normal digits)), pixels in [0, 1].
    `storage_ratio_*`: bytes of a uint8 image over bytes of its code as float32 / float16."""
    mse = weights @ normal_errors.astype(np.float64) / weights.sum(axis=1)
    constant = np.ones(len(weights))
    return {
        "compression_ratio": constant * INPUT_DIM / latent_dim,
        "mse": mse,
        "psnr": np.array([psnr(value) for value in mse], dtype=float),
        "storage_ratio_float32": constant * INPUT_DIM * UINT8_BYTES / (latent_dim * FLOAT32_BYTES),
        "storage_ratio_float16": constant * INPUT_DIM * UINT8_BYTES / (latent_dim * FLOAT16_BYTES),
    }


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(peak^2 / MSE); infinite for MSE 0."""
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)
