"""Metric functions against hand-computed cases and against scikit-learn on resampled data."""

from __future__ import annotations

import math
import warnings

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


# Agreement of a table with itself is the special case of ARI (expected = maximum index)
# and NMI (no entropy) when everything is one cluster or every digit is alone: both are 1.
# Against one label, several clusters agree no better than chance, and vice versa: 0.
@pytest.mark.parametrize(
    ("labels", "clusters", "ari", "nmi"),
    [
        ([4] * 6, [7] * 6, 1.0, 1.0),  # one label, one cluster
        (range(6), range(10, 16), 1.0, 1.0),  # every digit alone, in both
        ([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9], 1.0, 1.0),  # the same partition renamed
        ([4] * 6, [0, 1, 0, 1, 0, 1], 0.0, 0.0),  # one label, two clusters
        ([0, 1, 0, 1, 0, 1], [7] * 6, 0.0, 0.0),  # two labels, one cluster
    ],
)
def test_agreement_special_cases_on_every_resample(labels, clusters, ari, nmi):
    weights = np.array([[1.0] * 6, [2, 0, 1, 1, 2, 0], [0, 3, 0, 0, 1, 2]])
    scores = metrics.agreement(np.array(labels), np.array(clusters), weights)
    assert scores["ari"].tolist() == pytest.approx([ari] * 3, abs=1e-12)
    assert scores["nmi"].tolist() == pytest.approx([nmi] * 3, abs=1e-12)


@st.composite
def clusterings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and clusters of n digits (one label or cluster, perfect agreement and empty
    classes in resamples included), with bootstrap weights for them."""
    n = draw(st.integers(2, 20))
    labels = np.array(draw(st.lists(st.integers(0, draw(st.integers(0, 3))), min_size=n,
                                    max_size=n)))  # fmt: skip
    if draw(st.booleans()):  # the same partition under other names
        clusters = np.array(draw(st.permutations(range(4))))[labels] + 10
    else:
        clusters = np.array(draw(st.lists(st.integers(0, draw(st.integers(0, 3))), min_size=n,
                                          max_size=n)))  # fmt: skip
    return labels, clusters, resamples(n, 5, draw(st.integers(0, 2**32 - 1)))


@given(clusterings())
def test_ari_and_nmi_equal_scikit_learns_on_each_resample(drawn_clustering):
    """Row r of the weights counts digit i weights[r, i] times: the same as scikit-learn on
    the test set with each digit repeated that often. Empty classes raise no warning."""
    labels, clusters, weights = drawn_clustering
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agreement = metrics.agreement(labels, clusters, weights)
    for row, counts in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(len(labels)), counts)
        expected = {
            "ari": adjusted_rand_score(labels[drawn], clusters[drawn]),
            "nmi": normalized_mutual_info_score(labels[drawn], clusters[drawn]),
        }
        found = {key: agreement[key][row] for key in expected}
        assert found == pytest.approx(expected, abs=1e-12)


@st.composite
def detections(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Test scores of n digits, both normal and anomalous ones, on a few levels (so that
    normal and anomalous digits tie, with each other and with the threshold), validation
    scores, a percentile and bootstrap weights."""
    n = draw(st.integers(2, 20))
    flags = draw(st.permutations([True, False, *draw(st.lists(st.booleans(), min_size=n - 2,
                                                                max_size=n - 2))]))  # fmt: skip
    levels = st.integers(0, 3).map(float)
    scores = np.array(draw(st.lists(levels, min_size=n, max_size=n)))
    val_scores = np.array(draw(st.lists(levels, min_size=1, max_size=8)))
    percentile = draw(st.sampled_from([0.0, 50.0, 80.0, 95.0, 100.0]) | st.floats(0, 100))
    weights = resamples(n, 5, draw(st.integers(0, 2**32 - 1)))
    return scores, np.array(flags), val_scores, percentile, weights


# A resample with digits of one class only: ROC AUC and average precision divide 0 by 0
# (NaN, and that row is skipped below).
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
@given(detections())
def test_anomaly_scores_equal_scikit_learns_on_each_resample(drawn_detection):
    """As for the agreement; rows whose digits are all of one class are skipped
    (scikit-learn's AUC is undefined there). Everything above the threshold is flagged."""
    scores, is_anomaly, val_scores, percentile, weights = drawn_detection
    detection = metrics.anomaly_detection(scores, is_anomaly, val_scores, percentile, weights)
    compared = 0
    for row, counts in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(len(scores)), counts)
        if is_anomaly[drawn].all() or not is_anomaly[drawn].any():
            continue
        y, s = is_anomaly[drawn], scores[drawn]
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, s > detection["threshold"][row], average="binary", zero_division=0
        )
        expected = {
            "roc_auc": roc_auc_score(y, s),
            "average_precision": average_precision_score(y, s),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
        found = {key: detection[key][row] for key in expected}
        assert found == pytest.approx(expected, abs=1e-12)
        compared += 1
    assert compared >= 1  # row 0, the test set itself, has both classes


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


def test_a_score_equal_to_the_threshold_is_not_flagged():
    scores = np.array([0.2, 0.5, 0.5, 0.9])
    is_anomaly = np.array([False, False, True, True])
    result = metrics.anomaly_detection(scores, is_anomaly, np.array([0.5]), 95, np.ones((1, 4)))
    # only 0.9 is above 0.5: one hit, no false alarm, one of two anomalies missed
    assert result["threshold"].tolist() == [0.5]
    assert (result["precision"], result["recall"]) == ([1.0], [0.5])
    assert result["f1"] == pytest.approx([2 / 3])


@pytest.mark.parametrize(
    ("val_score", "precision", "recall", "f1"),
    [
        (1.0, 0.0, 0.0, 0.0),  # nothing flagged: scikit-learn's zero_division=0
        (0.85, 1.0, 1 / 3, 0.5),  # one digit flagged, an anomaly: 2 x 1 / (2 + 0 + 2)
        (0.75, 0.5, 1 / 3, 0.4),  # one hit, one false alarm: 2 x 1 / (2 + 1 + 2)
    ],
)
def test_precision_recall_and_f1_when_few_digits_are_flagged(val_score, precision, recall, f1):
    scores = np.array([0.1, 0.7, 0.3, 0.9, 0.2, 0.8])
    is_anomaly = np.array([False, True, False, True, True, False])
    result = metrics.anomaly_detection(scores, is_anomaly, np.array([val_score]), 95, ONE)
    found = [result[key][0] for key in ("precision", "recall", "f1")]
    assert found == pytest.approx([precision, recall, f1])


def test_no_hit_gives_zero_precision_and_f1():
    scores = np.array([0.1, 0.2, 0.9, 0.3])
    is_anomaly = np.array([True, True, False, False])
    # row 0: 0.9 is a false alarm; row 1 (a resample of the normal 0.3 alone): nothing
    # flagged and nothing to find, where precision and F1 are still 0 (scikit-learn's
    # zero_division=0)
    weights = np.array([[1.0, 1, 1, 1], [0, 0, 0, 4]])
    with np.errstate(divide="ignore", invalid="ignore"):  # ROC AUC of row 1: 0 / 0
        result = metrics.anomaly_detection(scores, is_anomaly, np.array([0.5]), 95, weights)
    assert [result[key][0] for key in ("precision", "recall", "f1")] == [0.0, 0.0, 0.0]
    assert (result["precision"][1], result["f1"][1]) == (0.0, 0.0)


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
    assert metrics.psnr(0.01, peak=2.0) == pytest.approx(10 * math.log10(400))  # 4 / 0.01
    assert metrics.psnr(1.0, peak=255.0) == pytest.approx(48.1308, abs=1e-4)


def test_compression_of_the_articles_network():
    result = metrics.compression(32, np.array([0.01, 0.03]), np.array([[1.0, 1], [3, 1]]))
    assert result["compression_ratio"].tolist() == [24.5, 24.5]
    assert result["mse"] == pytest.approx([0.02, 0.015])  # the second row counts 0.01 thrice
    assert result["psnr"][0] == pytest.approx(10 * math.log10(50))
    assert result["storage_ratio_float32"][0] == 784 / 128
    assert result["storage_ratio_float16"][0] == 784 / 64
