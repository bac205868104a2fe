"""The three jobs of the article, as pure functions of extracted features (no I/O).

Clustering: k-means on the latents against the true digits (ARI, NMI).
Anomaly detection: the reconstruction error as a score for "not a normal digit".
Compression: how much smaller the code is, and what the reconstruction loses.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    normalized_mutual_info_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from aelab.data.digits import INPUT_DIM

UINT8_BYTES, FLOAT32_BYTES, FLOAT16_BYTES = 1, 4, 2


def cluster_scores(
    features: np.ndarray, labels: np.ndarray, k: int, seed: int, n_init: int
) -> tuple[dict[str, float], np.ndarray]:
    """k-means with k clusters on `features` (N, d): ARI and NMI against `labels`, and the
    cluster of each row."""
    clusters = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)
    scores = {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }
    return scores, clusters


def clustering(
    features: np.ndarray, labels: np.ndarray, is_anomaly: np.ndarray, seed: int, n_init: int
) -> dict[str, float]:
    """`*_all`: k = 10 on every test digit (the article's protocol). `*_normal`: k = the
    number of normal digits, on the normal test digits only."""
    everything, _ = cluster_scores(features, labels, 10, seed, n_init)
    normal = ~is_anomaly
    k_normal = len(np.unique(labels[normal]))
    only_normal, _ = cluster_scores(features[normal], labels[normal], k_normal, seed, n_init)
    return {
        "ari_all": everything["ari"],
        "nmi_all": everything["nmi"],
        "ari_normal": only_normal["ari"],
        "nmi_normal": only_normal["nmi"],
    }


ANOMALY_KEYS = ("roc_auc", "average_precision", "threshold", "precision", "recall", "f1")


def anomaly_detection(
    test_scores: np.ndarray, is_anomaly: np.ndarray, val_scores: np.ndarray, percentile: float
) -> dict[str, float | None]:
    """ROC AUC and average precision of `test_scores` for the anomalous digits, and
    precision, recall and F1 when everything above the validation set's `percentile`
    (the article's 95th) is called an anomaly. All None when no digit is anomalous."""
    if not is_anomaly.any() or is_anomaly.all():
        return dict.fromkeys(ANOMALY_KEYS)
    threshold = float(np.percentile(val_scores, percentile))
    flagged = test_scores > threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_anomaly, flagged, average="binary", zero_division=0
    )
    return {
        "roc_auc": float(roc_auc_score(is_anomaly, test_scores)),
        "average_precision": float(average_precision_score(is_anomaly, test_scores)),
        "threshold": threshold,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def roc_points(test_scores: np.ndarray, is_anomaly: np.ndarray) -> list[dict[str, float]]:
    """The ROC curve as (fpr, tpr) points; empty when there is nothing to detect."""
    if not is_anomaly.any() or is_anomaly.all():
        return []
    fpr, tpr, _ = roc_curve(is_anomaly, test_scores)
    return [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)]


def compression(latent_dim: int, normal_errors: np.ndarray) -> dict[str, float | None]:
    """`compression_ratio`: input dim / latent dim (the article's 784/32 = 24.5).
    `mse`, `psnr`: of the reconstructions of the normal test digits, pixels in [0, 1].
    `storage_ratio_*`: bytes of a uint8 image over bytes of its code as float32 / float16."""
    mse = float(np.mean(normal_errors))
    return {
        "compression_ratio": INPUT_DIM / latent_dim,
        "mse": mse,
        "psnr": psnr(mse),
        "storage_ratio_float32": INPUT_DIM * UINT8_BYTES / (latent_dim * FLOAT32_BYTES),
        "storage_ratio_float16": INPUT_DIM * UINT8_BYTES / (latent_dim * FLOAT16_BYTES),
    }


def psnr(mse: float, peak: float = 1.0) -> float | None:
    """Peak signal-to-noise ratio in dB: 10 log10(peak^2 / MSE); None (infinite) for MSE 0."""
    return None if mse == 0 else 10 * math.log10(peak**2 / mse)
