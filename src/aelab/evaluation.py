"""Every variant's metrics from its features file, the baselines beside them, and the
summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aelab import metrics
from aelab.io import load_arrays
from aelab.params import EvaluateParams

FEATURE_ARRAYS = tuple(
    f"{part}_{name}"
    for part in ("val", "test")
    for name in ("latent", "error", "label", "is_anomaly")
)

# Summary columns: (metrics.json key, header, higher is better).
HEADLINE = [
    ("ari_all", "ARI (k=10)", True),
    ("ari_normal", "ARI (normal)", True),
    ("roc_auc", "ROC AUC", True),
    ("average_precision", "AP", True),
    ("f1", "F1 @ threshold", True),
    ("mse", "MSE", False),
    ("psnr", "PSNR dB", True),
    ("compression_ratio", "ratio", True),
]


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """What extract@<variant> wrote: for val and test, latents (N, d), reconstruction
    errors, labels and anomaly flags."""
    fix = f"run `dvc repro -f extract@{Path(path).stem}` (or `dvc checkout {path}`)"
    return load_arrays(path, FEATURE_ARRAYS, fix=fix)


def variant_metrics(features: dict[str, np.ndarray], params: EvaluateParams, seed: int) -> dict:
    """All metrics of one variant, flat: the names used in reports/metrics.json and MLflow."""
    test_anomaly = features["test_is_anomaly"]
    return {
        **metrics.clustering(
            features["test_latent"], features["test_label"], test_anomaly, seed, params.n_init
        ),
        **metrics.anomaly_detection(
            features["test_error"], test_anomaly, features["val_error"],
            params.threshold_percentile,
        ),
        **metrics.compression(
            features["test_latent"].shape[1], features["test_error"][~test_anomaly]
        ),
    }  # fmt: skip


def pixel_baseline(images: np.ndarray, labels, is_anomaly, params: EvaluateParams, seed: int):
    """k-means on the raw pixels: the clustering baseline every latent space must beat."""
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255
    return metrics.clustering(pixels, labels, is_anomaly, seed, params.n_init)


def summary_table(results: dict[str, dict]) -> str:
    """Markdown: one row per variant and baseline, the best of each column in bold."""
    best = {}
    for key, _, higher in HEADLINE:
        values = [row[key] for row in results.values() if row.get(key) is not None]
        if values:
            best[key] = max(values) if higher else min(values)
    lines = [
        "| variant | " + " | ".join(header for _, header, _ in HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for name, row in results.items():
        cells = [_cell(row.get(key), best.get(key)) for key, _, _ in HEADLINE]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float | None, best: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return f"**{text}**" if value == best else text
