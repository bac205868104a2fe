"""Every variant's metrics from its seeds' features files, as means with 95 % intervals,
the baselines beside them, and the summary: which variant is best at what, or a tie."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from aelab import metrics
from aelab.intervals import mean_and_half_width
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
    variant = Path(path).parent.name  # data/features/<variant>/seed_<k>.npz
    fix = f"run `dvc repro -f extract@{variant}` (or `dvc checkout {Path(path).parent}`)"
    return load_arrays(path, FEATURE_ARRAYS, fix=fix)


def variant_metrics(
    features: dict[str, np.ndarray], params: EvaluateParams, seed: int, weights: np.ndarray
) -> dict[str, np.ndarray | None]:
    """All metrics of one seed's network, flat (the names of reports/metrics.json and
    MLflow), each an (R,) array over the test-set weightings `weights` (aelab.intervals)."""
    test_anomaly = features["test_is_anomaly"]
    return {
        **metrics.clustering(
            features["test_latent"], features["test_label"], test_anomaly, seed, params.n_init,
            weights,
        ),
        **metrics.anomaly_detection(
            features["test_error"], test_anomaly, features["val_error"],
            params.threshold_percentile, weights,
        ),
        **metrics.compression(
            features["test_latent"].shape[1], features["test_error"][~test_anomaly],
            weights[:, ~test_anomaly],
        ),
    }  # fmt: skip


def pixel_baseline(images, labels, is_anomaly, params: EvaluateParams, seed: int, weights):
    """k-means on the raw pixels: the clustering baseline every latent space must beat."""
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255
    return metrics.clustering(pixels, labels, is_anomaly, seed, params.n_init, weights)


def over_seeds(per_seed: list[dict]) -> tuple[dict, dict]:
    """Each metric's mean over the seeds and the half-width of its 95 % interval (None
    where the metric is, e.g. ROC AUC without anomalies)."""
    means, half_widths = {}, {}
    for key, first in per_seed[0].items():
        if first is None:
            means[key] = half_widths[key] = None
            continue
        mean, half = mean_and_half_width(np.stack([seed[key] for seed in per_seed]))
        finite = math.isfinite(mean) and math.isfinite(half)
        means[key], half_widths[key] = (mean, half) if finite else (None, None)
    return means, half_widths


def leaders(column: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """The variants that may be best at one metric, given (mean, half-width) per variant:
    the best mean alone when its interval clears the runner-up's, otherwise it and every
    variant whose interval overlaps its own (a tie), best first."""
    ranked = _ranked(column, higher)
    best_mean, best_half = column[ranked[0]]
    return [ranked[0]] + [
        name for name in ranked[1:]
        if abs(column[name][0] - best_mean) <= column[name][1] + best_half
    ]  # fmt: skip


def _ranked(column: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """The variants by mean, best first."""
    return sorted(column, key=lambda name: column[name][0], reverse=higher)


def summary(results: dict[str, dict], half_widths: dict[str, dict]) -> str:
    """Markdown: per metric, the winner and its margin or the tie; then every variant and
    baseline with mean ± half-width."""
    lines = [
        "## Which variant is best at what",
        "",
        "Means over the seeds ± the half-width of a 95 % interval (seed spread and a",
        "bootstrap over the test digits; see the README). A winner is named only where its",
        "interval clears the runner-up's; otherwise the tie lists every variant whose",
        "interval overlaps the best one's.",
        "",
        "| metric | best | margin over the runner-up |",
        "|---|---|---|",
    ]
    for key, header, higher in HEADLINE:
        column = {name: (row[key], half_widths[name][key]) for name, row in results.items()
                  if row.get(key) is not None}  # fmt: skip
        if column:
            best, margin = _verdict(column, higher)
            lines.append(f"| {header} | {best} | {margin} |")
    lines += ["", "## Every variant", "", table(results, half_widths)]
    return "\n".join(lines)


def _verdict(column: dict[str, tuple[float, float]], higher: bool) -> tuple[str, str]:
    """(the best, its margin over the runner-up) for the summary's first table."""
    digits = _decimals(mean for mean, _ in column.values())
    best = leaders(column, higher)
    if len(set(column.values())) == 1 and len(column) > 1:
        return f"all equal: {_value(*next(iter(column.values())), digits)}", "—"
    if len(best) > 1:
        return "tie: " + ", ".join(f"{n} {_value(*column[n], digits)}" for n in best), "—"
    winner = f"{best[0]} {_value(*column[best[0]], digits)}"
    if len(column) == 1:
        return winner, "—"
    runner_up = _ranked(column, higher)[1]
    margin = column[best[0]][0] - column[runner_up][0]
    return winner, f"{margin:+.{digits}f} over {runner_up} {_value(*column[runner_up], digits)}"


def table(results: dict[str, dict], half_widths: dict[str, dict]) -> str:
    """One row per variant and baseline: each headline metric as mean ± half-width."""
    lines = [
        "| variant | " + " | ".join(header for _, header, _ in HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    digits = {key: _decimals(row.get(key) for row in results.values()) for key, _, _ in HEADLINE}
    for name, row in results.items():
        cells = [_value(row.get(key), half_widths[name].get(key), digits[key])
                 for key, _, _ in HEADLINE]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _decimals(values) -> int:
    """4 decimals for scores and errors below 10, 2 for dB and ratios."""
    return 2 if any(v is not None and abs(v) >= 10 for v in values) else 4


def _value(mean: float | None, half: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if not half else f"{mean:.{digits}f} ± {half:.{digits}f}"
