"""aelab.analysis.scores: the density scores on synthetic codes with a known answer (an
outlier far away from well-separated blobs)."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis import scores
from aelab.core.params import EvaluateParams, GmmParams, KnnParams, UmapParams

PARAMS = EvaluateParams(
    n_init=3, threshold_percentile=95, bootstrap=20, scores=["recon", "knn", "gmm"],
    clusterers=["kmeans", "gmm", "umap"], normalize_codes=False, knn=KnnParams(k=1),
    gmm=GmmParams(components=2, covariance="full"), umap=UmapParams(n_neighbors=10, n_epochs=50),
)  # fmt: skip


def blobs(k: int = 2, n_per: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k tight blobs 20 apart in 4-D, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    return np.eye(k, 4)[labels] * 20 + rng.normal(size=(len(labels), 4)), labels


@pytest.mark.parametrize("score", ["knn", "gmm"])
def test_a_far_outlier_scores_above_every_code_like_the_training_ones(score):
    train, _ = blobs(seed=0)
    near, _ = blobs(seed=1)
    judged = {"test": np.vstack([near, [[0, 0, 0, 100.0]]])}
    found = scores.density_scores(train, judged, score, PARAMS, seed=0)["test"]
    assert found.shape == (len(near) + 1,)
    assert found[-1] > found[:-1].max()


def test_knn_scores_the_distance_to_the_kth_nearest_training_code():
    train = np.array([[0.0], [1.0], [3.0]])
    assert scores.knn_distance(train, np.array([[0.0], [10.0]]), k=2).tolist() == [1.0, 9.0]


def test_normalized_codes_have_unit_length_and_keep_their_direction():
    codes = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]])
    assert scores.prepared(codes, True).tolist() == [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]]
    assert scores.prepared(codes, False).tolist() == codes.tolist()
