"""Metric functions against hand-computed cases and against scikit-learn on resampled data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    normalized_mutual_info_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from aelab.analysis import metrics
from aelab.analysis.intervals import resamples

ONE = np.ones((1, 6))  # the test set itself, each digit once


def test_perfect_clustering_scores_one():
    labels = np.repeat(np.arange(3), 20)
    clusters = (labels + 1) % 3  # the same partition under other names
    scores = metrics.agreement(labels, clusters, np.ones((1, len(labels))))
    assert scores == {"ari": [1.0], "nmi": [1.0]}


def test_clustering_of_noise_scores_about_zero():
    rng = np.random.default_rng(0)
    scores = metrics.agreement(rng.integers(0, 3, 300), rng.integers(0, 3, 300), np.ones((1, 300)))
    assert abs(scores["ari"][0]) < 0.05


@given(st.integers(0, 2**32 - 1))
def test_every_score_equals_scikit_learns_on_each_resample(seed):
    """Row r of the weights counts digit i weights[r, i] times: the same as scikit-learn on
    the test set with each digit repeated that often."""
    rng = np.random.default_rng(seed)
    n = 60
    labels, clusters = rng.integers(0, 4, n), rng.integers(0, 3, n)
    is_anomaly = rng.random(n) < 0.4
    is_anomaly[:2] = [True, False]
    scores = rng.integers(0, 8, n) / 8.0 + 0.3 * is_anomaly  # ties on purpose
    weights = resamples(n, 5, seed)
    agreement = metrics.agreement(labels, clusters, weights)
    detection = metrics.anomaly_detection(scores, is_anomaly, rng.random(20), 80, weights)
    for row, counts in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(n), counts)
        if is_anomaly[drawn].all() or not is_anomaly[drawn].any():
            continue  # scikit-learn's AUC is undefined on one class
        y, s = is_anomaly[drawn], scores[drawn]
        flagged = s > detection["threshold"][row]
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, flagged, average="binary", zero_division=0
        )
        expected = {
            "ari": adjusted_rand_score(labels[drawn], clusters[drawn]),
            "nmi": normalized_mutual_info_score(labels[drawn], clusters[drawn]),
            "roc_auc": roc_auc_score(y, s),
            "average_precision": average_precision_score(y, s),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
        found = {key: ({**agreement, **detection})[key][row] for key in expected}
        assert found == pytest.approx(expected, abs=1e-12)


def test_separable_scores_give_roc_auc_one_and_the_right_counts():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    is_anomaly = np.array([False, False, False, True, True, True])
    val_scores = np.linspace(0, 0.5, 101)  # 95th percentile: 0.475
    result = metrics.anomaly_detection(scores, is_anomaly, val_scores, 95, ONE)
    assert result["roc_auc"] == [1.0] and result["average_precision"] == [1.0]
    assert result["threshold"] == pytest.approx([0.475])
    assert (result["precision"], result["recall"], result["f1"]) == ([1.0], [1.0], [1.0])


def test_threshold_counts_by_hand():
    scores = np.array([0.1, 0.6, 0.3, 0.9, 0.2, 0.7])
    is_anomaly = np.array([False, False, False, True, True, True])
    result = metrics.anomaly_detection(scores, is_anomaly, np.array([0.5]), 95, ONE)
    # flagged (> 0.5): 0.6 (normal), 0.9, 0.7 (anomalous): precision 2/3, recall 2/3
    assert result["precision"] == pytest.approx([2 / 3]) and result["recall"] == pytest.approx(
        [2 / 3]
    )
    # pairs (anomalous, normal) ranked right: 0.9 > all 3, 0.7 > 3, 0.2 > 1 of 3 -> 7/9
    assert result["roc_auc"] == pytest.approx([7 / 9])
    # Weights that count 0.2 twice and 0.6 not at all: normals {0.1, 0.3}, anomalies
    # {0.9, 0.2, 0.2, 0.7}; pairs ranked right 2 + 1 + 1 + 2 = 6 of 2 x 4
    twice = np.array([[1.0, 0, 1, 1, 2, 1]])
    assert metrics.anomaly_detection(scores, is_anomaly, np.array([0.5]), 95, twice)[
        "roc_auc"
    ] == pytest.approx([6 / 8])


def test_no_anomalous_digit_gives_nulls_not_a_crash():
    scores = np.array([0.1, 0.2, 0.3])
    result = metrics.anomaly_detection(scores, np.zeros(3, bool), scores, 95, np.ones((1, 3)))
    assert set(result) == set(metrics.ANOMALY_KEYS) and set(result.values()) == {None}
    assert metrics.roc_points(scores, np.zeros(3, bool)) == []


def test_roc_points_run_from_zero_to_one():
    points = metrics.roc_points(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
    assert points[0] == {"fpr": 0.0, "tpr": 0.0} and points[-1] == {"fpr": 1.0, "tpr": 1.0}


def test_psnr_of_a_known_error():
    assert metrics.psnr(0.01) == pytest.approx(20.0)
    assert metrics.psnr(0.001) == pytest.approx(30.0)
    assert metrics.psnr(0.0) == math.inf


def test_compression_of_the_articles_network():
    result = metrics.compression(32, np.array([0.01, 0.03]), np.array([[1.0, 1], [3, 1]]))
    assert result["compression_ratio"].tolist() == [24.5, 24.5]
    assert result["mse"] == pytest.approx([0.02, 0.015])  # the second row counts 0.01 thrice
    assert result["psnr"][0] == pytest.approx(10 * math.log10(50))
    assert result["storage_ratio_float32"][0] == 784 / 128
    assert result["storage_ratio_float16"][0] == 784 / 64
