"""Metric functions against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aelab import metrics
from aelab.evaluation import summary_table


def blobs(n_per: int = 20, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k tight, far-apart clusters in 4-D and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    centres = np.eye(k, 4) * 100
    return centres[labels] + rng.normal(scale=0.1, size=(len(labels), 4)), labels


def test_perfect_clustering_scores_one():
    features, labels = blobs()
    scores, clusters = metrics.cluster_scores(features, labels, 3, seed=0, n_init=3)
    assert scores == {"ari": 1.0, "nmi": 1.0}
    assert len(set(zip(clusters, labels, strict=True))) == 3


def test_clustering_of_noise_scores_about_zero():
    rng = np.random.default_rng(0)
    scores, _ = metrics.cluster_scores(rng.normal(size=(300, 4)), rng.integers(0, 3, 300), 3, 0, 3)
    assert abs(scores["ari"]) < 0.05


def test_clustering_uses_k_of_the_normal_digits_on_normal_digits_only():
    features, labels = blobs(k=4)
    is_anomaly = labels == 3
    scores = metrics.clustering(features, labels, is_anomaly, seed=0, n_init=3)
    assert scores["ari_normal"] == 1.0  # k = 3 on the three normal blobs
    assert scores["ari_all"] < 1.0  # k = 10 splits the four blobs further


def test_separable_scores_give_roc_auc_one_and_the_right_counts():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    is_anomaly = np.array([False, False, False, True, True, True])
    val_scores = np.linspace(0, 0.5, 101)  # 95th percentile: 0.475
    result = metrics.anomaly_detection(scores, is_anomaly, val_scores, percentile=95)
    assert result["roc_auc"] == 1.0 and result["average_precision"] == 1.0
    assert result["threshold"] == pytest.approx(0.475)
    assert (result["precision"], result["recall"], result["f1"]) == (1.0, 1.0, 1.0)


def test_threshold_counts_by_hand():
    scores = np.array([0.1, 0.6, 0.3, 0.9, 0.2, 0.7])
    is_anomaly = np.array([False, False, False, True, True, True])
    result = metrics.anomaly_detection(scores, is_anomaly, np.array([0.5]), percentile=95)
    # flagged (> 0.5): 0.6 (normal), 0.9, 0.7 (anomalous): precision 2/3, recall 2/3
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    # pairs (anomalous, normal) ranked right: 0.9 > all 3, 0.7 > 3, 0.2 > 1 of 3 -> 7/9
    assert result["roc_auc"] == pytest.approx(7 / 9)


def test_no_anomalous_digit_gives_nulls_not_a_crash():
    scores = np.array([0.1, 0.2, 0.3])
    result = metrics.anomaly_detection(scores, np.zeros(3, bool), scores, 95)
    assert set(result) == set(metrics.ANOMALY_KEYS) and set(result.values()) == {None}
    assert metrics.roc_points(scores, np.zeros(3, bool)) == []


def test_roc_points_run_from_zero_to_one():
    points = metrics.roc_points(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
    assert points[0] == {"fpr": 0.0, "tpr": 0.0} and points[-1] == {"fpr": 1.0, "tpr": 1.0}


def test_psnr_of_a_known_error():
    assert metrics.psnr(0.01) == pytest.approx(20.0)
    assert metrics.psnr(0.001) == pytest.approx(30.0)
    assert metrics.psnr(0.0) is None


def test_compression_of_the_articles_network():
    result = metrics.compression(32, np.array([0.01, 0.03]))
    assert result["compression_ratio"] == 24.5
    assert result["mse"] == pytest.approx(0.02)
    assert result["psnr"] == pytest.approx(10 * math.log10(50))
    assert result["storage_ratio_float32"] == 784 / 128
    assert result["storage_ratio_float16"] == 784 / 64


def test_summary_marks_the_best_of_each_column():
    table = summary_table({
        "a": {"roc_auc": 0.9, "mse": 0.02, "ari_all": 0.3},
        "b": {"roc_auc": 0.8, "mse": 0.01, "ari_all": 0.5},
        "pixels": {"ari_all": 0.4},
    })  # fmt: skip
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "**0.9000**" in rows["a"] and "**0.0100**" in rows["b"] and "**0.5000**" in rows["b"]
    assert "—" in rows["pixels"]
