"""aelab.reports.evaluation: one seed's network judged on every task from its features, and
the raw-pixel baseline."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis.intervals import resamples
from aelab.core.params import EvaluateParams, GmmParams, KnnParams, UmapParams
from aelab.data.digits import SplitSet
from aelab.reports.evaluation import (
    Reference,
    evaluate_seed,
    pixel_features,
    pixel_methods,
    real_floor,
)

PARAMS = EvaluateParams(
    n_init=2, threshold_percentile=95, bootstrap=20, scores=["recon", "knn", "gmm"],
    clusterers=["kmeans", "gmm"], normalize_codes=False, knn=KnnParams(k=1),
    gmm=GmmParams(components=2, covariance="diag"), umap=UmapParams(n_neighbors=10, n_epochs=50),
)  # fmt: skip
WEIGHTS = resamples(100, 20, seed=0)


def features(separable: bool) -> dict[str, np.ndarray]:
    """Ten clusters of codes, 5-9 anomalous; the training codes are the normal clusters.
    The anomalies have large errors when `separable`."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    latent = rng.normal(size=(100, 2)) + labels[:, None] * 10.0
    is_anomaly = labels >= 5
    error = rng.random(100) + (3.0 * is_anomaly if separable else 0.0)
    normal = latent[~is_anomaly]
    return {
        "test_latent": latent.astype(np.float32), "test_error": error.astype(np.float32),
        "test_label": labels, "test_is_anomaly": is_anomaly,
        "val_latent": normal[:20], "val_error": rng.random(20).astype(np.float32),
        "val_label": labels[:20], "val_is_anomaly": np.zeros(20, bool),
        "train_latent": normal + rng.normal(scale=0.1, size=normal.shape),
        "train_error": rng.random(50).astype(np.float32),
        "train_label": labels[~is_anomaly], "train_is_anomaly": np.zeros(50, bool),
    }  # fmt: skip


def test_well_separated_codes_and_errors_score_perfectly():
    judged = evaluate_seed(features(separable=True), PARAMS, seed=0, weights=WEIGHTS)
    metrics = judged.metrics
    assert metrics["ari_all_kmeans"][0] == pytest.approx(1.0)
    assert metrics["ari_normal_kmeans"][0] == pytest.approx(1.0)
    assert metrics["ari_normal_gmm"][0] == pytest.approx(1.0)
    for score in ("recon", "knn", "gmm"):  # the anomalies' codes are far from the training ones
        assert (metrics[f"roc_auc_{score}"] == 1.0).all(), score
    assert (metrics["recall_recon"] == 1.0).all()
    assert (metrics["compression_ratio"] == 392.0).all()  # 784 / 2


def test_uninformative_errors_score_near_chance_and_leave_the_other_scores_alone():
    separable = evaluate_seed(features(separable=True), PARAMS, 0, WEIGHTS).metrics
    metrics = evaluate_seed(features(separable=False), PARAMS, seed=0, weights=WEIGHTS).metrics
    assert 0.3 < metrics["roc_auc_recon"][0] < 0.7
    assert (metrics["roc_auc_knn"] == separable["roc_auc_knn"]).all()


def test_a_new_score_never_changes_the_reconstruction_metrics():
    only_recon = PARAMS.model_copy(update={"scores": ["recon"]})
    one = evaluate_seed(features(True), only_recon, 0, WEIGHTS).metrics
    every = evaluate_seed(features(True), PARAMS, 0, WEIGHTS).metrics
    for key in ("mse", "psnr", "roc_auc_recon", "f1_recon"):
        assert (one[key] == every[key]).all()
    assert "roc_auc_knn" not in one


def test_the_same_seed_gives_identical_metrics():
    first, again = (evaluate_seed(features(True), PARAMS, 3, WEIGHTS).metrics for _ in "ab")
    assert all(np.array_equal(first[key], again[key]) for key in first if first[key] is not None)


def test_the_pixel_baseline_scores_and_clusters_raw_images_without_mixtures():
    labels = np.repeat(np.arange(10), 3)  # ten grey levels, three images each
    images = np.broadcast_to((labels * 25).astype(np.uint8)[:, None, None], (30, 28, 28))
    is_anomaly = labels >= 5
    splits = {part: SplitSet(images[keep], labels[keep], is_anomaly[keep])
              for part, keep in (("train", ~is_anomaly), ("val", ~is_anomaly),
                                 ("test", np.ones(30, bool)))}  # fmt: skip
    methods = pixel_methods(PARAMS)
    assert methods.scores == ["recon", "knn"] and methods.clusterers == ["kmeans"]
    metrics = evaluate_seed(pixel_features(splits), methods, 0, np.ones((1, 30))).metrics
    assert metrics["ari_all_kmeans"] == pytest.approx([1.0])
    assert metrics["ari_normal_kmeans"] == pytest.approx([1.0])
    assert metrics["roc_auc_knn"] == pytest.approx([1.0])  # grey levels never trained on
    assert metrics["roc_auc_recon"] is None and "psnr" not in metrics  # nothing reconstructs


def test_the_real_digits_floor_of_the_test_digits_themselves_by_hand():
    # The same two digits, features 0 and 1 (d = 1, k(x, y) = (x y + 1)^3): FD 0. KID: the
    # distinct pairs of each side give k(0, 1) = 1 twice, the cross mean takes every pair,
    # (1 + 1 + 1 + 8) / 4 = 2.75: 1 + 1 - 5.5 = -3.5. Unbiased: below 0 by chance.
    features = np.array([[0.0], [1.0]])
    reference = Reference.of(features, np.ones((1, 2)))
    floor = real_floor({"val_features": features, "val_probabilities": np.eye(2)}, reference)
    assert floor["fd_real"] == pytest.approx([0.0], abs=1e-12)
    assert floor["kid_real"] == pytest.approx([-3.5])
    assert floor["confident_real"] == pytest.approx([1.0])
    assert floor["coverage_real"] == pytest.approx([1.0])
