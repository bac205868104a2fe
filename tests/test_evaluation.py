"""aelab.evaluation: every variant's metrics from its features files, the baseline, the
means with intervals and the summary's tie rule."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.data.digits import SplitSet
from aelab.errors import AelabError
from aelab.evaluation import (
    evaluate_seed,
    leaders,
    load_features,
    over_seeds,
    pixel_features,
    pixel_methods,
    summary,
)
from aelab.intervals import resamples
from aelab.io import save_arrays
from aelab.params import EvaluateParams, GmmParams, KnnParams, UmapParams

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


def test_the_summary_has_a_table_per_task_names_winners_or_ties_and_judges_pca():
    params = PARAMS.model_copy(update={"scores": ["recon", "knn"], "clusterers": ["umap"]})
    results = {
        "net": {"roc_auc_recon": 0.90, "roc_auc_knn": 0.93, "ari_all_umap": 0.60,
                "ari_normal_umap": 0.90, "psnr": 20.0, "mse": 0.01, "compression_ratio": 24.5},
        "pca": {"roc_auc_recon": 0.80, "roc_auc_knn": 0.94, "ari_all_umap": 0.45,
                "ari_normal_umap": 0.88, "psnr": 18.0, "mse": 0.02, "compression_ratio": 24.5},
        "pixels": {"roc_auc_recon": None, "roc_auc_knn": 0.92, "ari_all_umap": 0.61,
                   "ari_normal_umap": 0.89},
    }  # fmt: skip
    half_widths = {name: {key: (None if value is None else 0.01) for key, value in row.items()}
                   for name, row in results.items()}  # fmt: skip
    text = summary(results, half_widths, params, pca=["pca"])
    assert text.count("\n## ") == 3  # anomaly, clustering, compression
    assert "| net | 0.9000 ± 0.0100 | 0.9300 ± 0.0100 |" in text
    assert "| pixels | — | 0.9200 ± 0.0100 |" in text
    assert "- **Best ROC AUC:** a tie between pca · knn 0.9400 ± 0.0100, net · knn" in text
    assert "net · knn 0.9300 ± 0.0100, ties with PCA: -0.0100 against pca · knn" in text
    assert ("- **Best ARI, k = 10:** a tie between pixels · umap k=10 0.6100 ± 0.0100, "
            "net · umap k=10 0.6000 ± 0.0100") in text  # fmt: skip
    assert "beats PCA: +0.1500 against pca · umap k=10 0.4500 ± 0.0100, beyond the" in text
    assert "- **Best PSNR:** net 20.00 ± 0.01, +2.00 over pca 18.00 ± 0.01" in text
    assert "| pixels |" not in text.split("## Compression")[1]  # no reconstruction: no row
