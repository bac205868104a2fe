"""aelab.evaluation: every variant's metrics from its features file, and the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.errors import AelabError
from aelab.evaluation import load_features, pixel_baseline, variant_metrics
from aelab.io import save_arrays
from aelab.params import EvaluateParams

PARAMS = EvaluateParams(n_init=2, threshold_percentile=95)


def features(separable: bool) -> dict[str, np.ndarray]:
    """Two clusters of codes; anomalies with large errors when `separable`."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    latent = rng.normal(size=(100, 2)) + labels[:, None] * 10.0
    is_anomaly = labels >= 5
    error = rng.random(100) + (3.0 * is_anomaly if separable else 0.0)
    return {
        "test_latent": latent.astype(np.float32), "test_error": error.astype(np.float32),
        "test_label": labels, "test_is_anomaly": is_anomaly,
        "val_latent": latent[:20], "val_error": rng.random(20).astype(np.float32),
        "val_label": labels[:20], "val_is_anomaly": np.zeros(20, bool),
    }  # fmt: skip


def test_well_separated_codes_and_errors_score_perfectly():
    metrics = variant_metrics(features(separable=True), PARAMS, seed=0)
    assert metrics["ari_all"] == pytest.approx(1.0) and metrics["ari_normal"] == pytest.approx(1.0)
    assert metrics["roc_auc"] == 1.0 and metrics["recall"] == 1.0
    assert metrics["compression_ratio"] == 392.0  # 784 / 2


def test_uninformative_errors_score_near_chance():
    assert 0.3 < variant_metrics(features(separable=False), PARAMS, seed=0)["roc_auc"] < 0.7


def test_the_pixel_baseline_clusters_raw_images():
    labels = np.repeat(np.arange(10), 3)  # ten grey levels, three images each
    images = np.broadcast_to((labels * 25).astype(np.uint8)[:, None, None], (30, 28, 28))
    scores = pixel_baseline(images, labels, labels >= 5, PARAMS, seed=0)
    assert scores["ari_all"] == pytest.approx(1.0) and scores["ari_normal"] == pytest.approx(1.0)


def test_a_features_file_without_an_array_names_it_and_the_fix(tmp_path):
    path = tmp_path / "ae.npz"
    save_arrays(path, {k: v for k, v in features(True).items() if k != "val_error"})
    with pytest.raises(AelabError, match=r"missing arrays \['val_error'\]; run `dvc repro -f "
                                         r"extract@ae`"):  # fmt: skip
        load_features(path)
