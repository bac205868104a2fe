"""aelab.evaluation: every variant's metrics from its features files, the baseline, the
means with intervals and the summary's tie rule."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.errors import AelabError
from aelab.evaluation import (
    leaders,
    load_features,
    over_seeds,
    pixel_baseline,
    summary,
    variant_metrics,
)
from aelab.intervals import resamples
from aelab.io import save_arrays
from aelab.params import EvaluateParams

PARAMS = EvaluateParams(n_init=2, threshold_percentile=95, bootstrap=20)
WEIGHTS = resamples(100, 20, seed=0)


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
    metrics = variant_metrics(features(separable=True), PARAMS, seed=0, weights=WEIGHTS)
    assert metrics["ari_all"][0] == pytest.approx(1.0)
    assert metrics["ari_normal"][0] == pytest.approx(1.0)
    assert (metrics["roc_auc"] == 1.0).all() and (metrics["recall"] == 1.0).all()
    assert (metrics["compression_ratio"] == 392.0).all()  # 784 / 2


def test_uninformative_errors_score_near_chance():
    metrics = variant_metrics(features(separable=False), PARAMS, seed=0, weights=WEIGHTS)
    assert 0.3 < metrics["roc_auc"][0] < 0.7


def test_the_mean_over_seeds_and_its_interval_widen_with_the_seed_spread():
    steady = [{"auc": np.array([0.8, 0.79, 0.81])}] * 3
    spread = [{"auc": np.array([v, v - 0.01, v + 0.01])} for v in (0.7, 0.8, 0.9)]
    (mean, half), (mean2, half2) = (
        (over_seeds(per_seed)[0]["auc"], over_seeds(per_seed)[1]["auc"])
        for per_seed in (steady, spread)
    )
    assert mean == pytest.approx(0.8) and mean2 == pytest.approx(0.8)
    assert half == pytest.approx(1.959964 * 0.0141421, rel=1e-4)  # the test set's term only
    assert half2 > 0.2  # t(2) x 0.1/sqrt(3) alone is 0.248
    assert over_seeds([{"roc_auc": None}]) == ({"roc_auc": None}, {"roc_auc": None})


def test_the_pixel_baseline_clusters_raw_images():
    labels = np.repeat(np.arange(10), 3)  # ten grey levels, three images each
    images = np.broadcast_to((labels * 25).astype(np.uint8)[:, None, None], (30, 28, 28))
    scores = pixel_baseline(images, labels, labels >= 5, PARAMS, 0, np.ones((1, 30)))
    assert scores["ari_all"] == pytest.approx([1.0]) and scores["ari_normal"] == pytest.approx(
        [1.0]
    )


def test_a_features_file_without_an_array_names_it_and_the_fix(tmp_path):
    path = tmp_path / "data" / "features" / "ae" / "seed_1.npz"
    save_arrays(path, {k: v for k, v in features(True).items() if k != "val_error"})
    with pytest.raises(AelabError, match=r"missing arrays \['val_error'\]; run `dvc repro -f "
                                         r"extract@ae`"):  # fmt: skip
        load_features(path)


def test_a_winner_is_named_only_when_its_interval_clears_the_runner_ups():
    assert leaders({"a": (0.90, 0.01), "b": (0.85, 0.01), "c": (0.5, 0.1)}, True) == ["a"]
    # b's interval [0.87, 0.91] overlaps a's [0.89, 0.91]: a tie; c is clear of a
    assert leaders({"a": (0.90, 0.01), "b": (0.89, 0.02), "c": (0.5, 0.1)}, True) == ["a", "b"]
    # lower is better: the smallest mean leads
    assert leaders({"a": (0.02, 0.001), "b": (0.01, 0.001)}, False) == ["b"]


def test_the_summary_says_tie_or_names_the_winner_with_its_margin():
    results = {"a": {"roc_auc": 0.90, "psnr": 20.0}, "b": {"roc_auc": 0.89, "psnr": 18.0},
               "pixels": {"roc_auc": None, "psnr": None}}  # fmt: skip
    half_widths = {"a": {"roc_auc": 0.02, "psnr": 0.5}, "b": {"roc_auc": 0.02, "psnr": 0.5},
                   "pixels": {"roc_auc": None, "psnr": None}}  # fmt: skip
    rows = {line.split("|")[1].strip(): line for line in summary(results, half_widths).splitlines()
            if line.startswith("|")}  # fmt: skip
    assert "tie: a 0.9000 ± 0.0200, b 0.8900 ± 0.0200" in rows["ROC AUC"]
    assert "a 20.00 ± 0.50 | +2.00 over b 18.00 ± 0.50" in rows["PSNR dB"]
    assert "—" in rows["pixels"]
