"""Every variant's metrics from its seeds' features files, as means with 95 % intervals,
the baselines beside them, and the summary: which variant is best at what, or a tie."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aelab import latent, metrics
from aelab.data.digits import SplitSet
from aelab.intervals import mean_and_half_width
from aelab.io import load_arrays
from aelab.params import PIXELS, EvaluateParams

PARTS = ("train", "val", "test")  # scores are fit on the training codes, judged on the test
FEATURE_ARRAYS = tuple(
    f"{part}_{name}" for part in PARTS for name in ("latent", "error", "label", "is_anomaly")
)


@dataclass(frozen=True)
class SeedEvaluation:
    """One seed's network judged: its metrics ((R,) arrays over the test-set weightings)
    and its anomaly scores ({score: {"val": .., "test": ..}}, None where one does not
    apply)."""

    metrics: dict[str, np.ndarray | None]
    scores: dict[str, dict[str, np.ndarray] | None]


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """What extract@<variant> wrote: for train, val and test, latents (N, d), reconstruction
    errors, labels and anomaly flags."""
    variant = Path(path).parent.name  # data/features/<variant>/seed_<k>.npz
    fix = f"run `dvc repro -f extract@{variant}` (or `dvc checkout {Path(path).parent}`)"
    return load_arrays(path, FEATURE_ARRAYS, fix=fix)


def pixel_features(splits: dict[str, SplitSet]) -> dict[str, np.ndarray]:
    """The raw-pixel baseline as features: each image is its own code (pixels in [0, 1]),
    and there is no reconstruction."""
    features = {}
    for part, split in splits.items():
        features[f"{part}_latent"] = split.images.reshape(len(split.images), -1) / np.float32(255)
        features[f"{part}_label"], features[f"{part}_is_anomaly"] = split.labels, split.is_anomaly
    return features


def pixel_methods(params: EvaluateParams) -> EvaluateParams:
    """The methods that apply to raw pixels: all but `gmm`. A full-covariance mixture of
    784-d pixels has millions of parameters for a few thousand digits, and costs more than
    every network's mixtures together."""
    return params.model_copy(update={
        "scores": [name for name in params.scores if name != "gmm"],
        "clusterers": [name for name in params.clusterers if name != "gmm"],
    })  # fmt: skip


def evaluate_seed(
    features: dict[str, np.ndarray], params: EvaluateParams, seed: int, weights: np.ndarray
) -> SeedEvaluation:
    """All metrics of one seed's network (or a baseline), flat: the names of
    reports/metrics.json and MLflow, each method's name last (`roc_auc_knn`,
    `ari_all_umap`)."""
    test_anomaly = features["test_is_anomaly"]
    scores = anomaly_scores(features, params, seed)
    results = {**anomaly_metrics(scores, test_anomaly, params.threshold_percentile, weights),
               **clustering(features, params, seed, weights)}  # fmt: skip
    if "test_error" in features:  # a network or PCA: it reconstructs
        results |= metrics.compression(
            features["test_latent"].shape[1], features["test_error"][~test_anomaly],
            weights[:, ~test_anomaly],
        )  # fmt: skip
    return SeedEvaluation(results, scores)


def anomaly_scores(
    features: dict[str, np.ndarray], params: EvaluateParams, seed: int
) -> dict[str, dict[str, np.ndarray] | None]:
    """Each chosen score of the val and test digits. The density scores are fit on the
    training codes. None where a score does not apply (`recon` without a reconstruction)
    or there is nothing to detect."""
    if not features["test_is_anomaly"].any():
        return dict.fromkeys(params.scores)
    codes = {part: latent.prepared(features[f"{part}_latent"], params.normalize_codes)
             for part in PARTS}  # fmt: skip
    scores = {}
    for name in params.scores:
        if name == "recon":  # the article's: the reconstruction error
            errors = "test_error" in features
            scores[name] = {p: features[f"{p}_error"] for p in ("val", "test")} if errors else None
        else:
            judged = {"val": codes["val"], "test": codes["test"]}
            scores[name] = latent.density_scores(codes["train"], judged, name, params, seed)
    return scores


def anomaly_metrics(scores, is_anomaly, percentile: float, weights) -> dict:
    """`roc_auc_<score>`, `average_precision_<score>`, ... of each score (aelab.metrics)."""
    results = {}
    for name, pair in scores.items():
        values = (metrics.anomaly_detection(pair["test"], is_anomaly, pair["val"], percentile,
                                            weights)
                  if pair else dict.fromkeys(metrics.ANOMALY_KEYS))  # fmt: skip
        results |= {f"{key}_{name}": value for key, value in values.items()}
    return results


def clustering(features, params: EvaluateParams, seed: int, weights) -> dict:
    """ARI and NMI of each clusterer: `*_all_<clusterer>` with k = 10 on every test digit
    (the article's protocol), `*_normal_<clusterer>` with k = the number of normal digits
    on the normal test digits only. The clusters are found once, on the test set; the
    resamples re-weigh the digits, not the clustering."""
    codes, labels = features["test_latent"], features["test_label"]
    results = {}
    for protocol, subset in (("all", np.ones(len(labels), bool)),
                             ("normal", ~features["test_is_anomaly"])):  # fmt: skip
        if protocol == "normal" and subset.all():  # nothing anomalous: the same clustering
            results |= {key.replace("_all_", "_normal_"): v for key, v in results.items()}
            break
        found = clusters_of(codes[subset], len(np.unique(labels[subset])), params, seed)
        for method in params.clusterers:
            agreed = metrics.agreement(labels[subset], found[method], weights[:, subset])
            results[f"ari_{protocol}_{method}"] = agreed["ari"]
            results[f"nmi_{protocol}_{method}"] = agreed["nmi"]
    return results


def clusters_of(codes: np.ndarray, k: int, params: EvaluateParams, seed: int) -> dict:
    """Each chosen clusterer's k clusters of `codes` (k-means on the codes as they are, the
    others on the prepared ones), and under "map" the 2-D UMAP they were found on, when
    `umap` is chosen."""
    prepared = latent.prepared(codes, params.normalize_codes)
    mapped = latent_map(codes, params, seed) if "umap" in params.clusterers else None
    found = {method: latent.clusters(method, codes if method == "kmeans" else prepared, k,
                                     params, seed, mapped)
             for method in params.clusterers}  # fmt: skip
    return found if mapped is None else {**found, "map": mapped}


def latent_map(codes: np.ndarray, params: EvaluateParams, seed: int) -> np.ndarray:
    """The 2-D UMAP of `codes`, prepared as every method but k-means sees them."""
    prepared = latent.prepared(codes, params.normalize_codes)
    return latent.umap_map(prepared, params.umap.n_neighbors, params.umap.n_epochs, seed)


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


def best_variant(
    results: dict[str, dict], metric: str, variants: list[str] | None = None
) -> str | None:
    """Of `variants` (default: all of `results`), the one with the highest mean `metric`;
    None when none has it (no digit is anomalous, say)."""
    scored = {name: results[name].get(metric) for name in variants or results}
    scored = {name: value for name, value in scored.items() if value is not None}
    return max(scored, key=scored.get) if scored else None


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


@dataclass(frozen=True)
class Task:
    """One table of the summary: a column per method, a row per variant and baseline, and
    the verdicts drawn from it: (what, the columns judged together, higher is better)."""

    title: str
    columns: dict[str, str]  # header -> metrics.json key
    verdicts: list[tuple[str, list[str], bool]]
    by_method: bool = True  # the columns are methods: name them beside the variant


def tasks(params: EvaluateParams) -> list[Task]:
    """The three jobs of the article, each with the chosen methods."""
    all_digits = {f"{m} k=10": f"ari_all_{m}" for m in params.clusterers}
    normal = {f"{m} normal": f"ari_normal_{m}" for m in params.clusterers}
    return [
        Task("Anomaly detection: ROC AUC of each score on the test digits",
             {score: f"roc_auc_{score}" for score in params.scores},
             [("ROC AUC", list(params.scores), True)]),
        Task("Clustering: ARI of each clusterer against the true digits (k = 10 on every "
             "test digit; k = the normal digits' count on the normal ones)",
             all_digits | normal,
             [("ARI, k = 10", list(all_digits), True),
              ("ARI, normal digits", list(normal), True)]),
        Task("Compression: the normal test digits through the code",
             {"ratio": "compression_ratio", "MSE": "mse", "PSNR dB": "psnr"},
             [("PSNR", ["PSNR dB"], True)], by_method=False),
    ]  # fmt: skip


def summary(
    results: dict[str, dict], half_widths: dict[str, dict], params: EvaluateParams,
    pca: list[str],
) -> str:  # fmt: skip
    """Markdown: per task, every variant and baseline with mean ± half-width per method,
    the best (variant, method) or the tie, and whether a network beats PCA (the variants
    in `pca`) beyond the intervals."""
    lines = [
        "# Which variant is best at what",
        "",
        "Means over the seeds ± the half-width of a 95 % interval (seed spread and a",
        "bootstrap over the test digits; see the README). A winner is named only where its",
        "interval clears the runner-up's; otherwise the tie lists every (variant, method)",
        "whose interval overlaps the best one's.",
    ]
    for task in tasks(params):
        lines += ["", f"## {task.title}", "", _task_table(task, results, half_widths), ""]
        for what, headers, higher in task.verdicts:
            cells = _cells(task, headers, results, half_widths)
            if cells:
                networks = {c: v for c, v in cells.items() if _variant(c) not in [*pca, PIXELS]}
                baseline = {c: v for c, v in cells.items() if _variant(c) in pca}
                lines += [f"- **Best {what}:** {_best(cells, higher)}",
                          f"  - {_against_pca(networks, baseline, higher)}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _cells(task: Task, headers: list[str], results: dict, half_widths: dict) -> dict:
    """{"variant · method": (mean, half-width)} over the judged columns, without gaps."""
    cells = {}
    for name, row in results.items():
        for header in headers:
            key = task.columns[header]
            if row.get(key) is not None:
                label = f"{name} · {header}" if task.by_method else name
                cells[label] = (row[key], half_widths[name][key])
    return cells


def _variant(cell: str) -> str:
    return cell.split(" · ")[0]


def _best(cells: dict[str, tuple[float, float]], higher: bool) -> str:
    """The winner and its margin over the runner-up, or the tie."""
    digits = _decimals(mean for mean, _ in cells.values())
    best = leaders(cells, higher)
    if len(best) > 1:
        shown = ", ".join(f"{c} {_value(*cells[c], digits)}" for c in best[:6])
        more = f" and {len(best) - 6} more" if len(best) > 6 else ""
        return f"a tie between {shown}{more}"
    winner = f"{best[0]} {_value(*cells[best[0]], digits)}"
    if len(cells) == 1:
        return winner
    runner_up = _ranked(cells, higher)[1]
    margin = cells[best[0]][0] - cells[runner_up][0]
    return f"{winner}, {margin:+.{digits}f} over {runner_up} {_value(*cells[runner_up], digits)}"


def _against_pca(networks: dict, baseline: dict, higher: bool) -> str:
    """Whether the best network beats the best PCA beyond both intervals."""
    if not networks or not baseline:
        return "No network or no PCA variant to compare."
    digits = _decimals(mean for mean, _ in [*networks.values(), *baseline.values()])
    net, pca = _ranked(networks, higher)[0], _ranked(baseline, higher)[0]
    gap = networks[net][0] - baseline[pca][0]
    clear = abs(gap) > networks[net][1] + baseline[pca][1]
    ahead = gap > 0 if higher else gap < 0
    verdict = ("beats PCA" if ahead else "loses to PCA") if clear else "ties with PCA"
    reach = "beyond the intervals" if clear else "within the intervals"
    return (f"Network against PCA: the best network, {net} {_value(*networks[net], digits)}, "
            f"{verdict}: {gap:+.{digits}f} against {pca} {_value(*baseline[pca], digits)}, "
            f"{reach}.")  # fmt: skip


def _task_table(task: Task, results: dict[str, dict], half_widths: dict[str, dict]) -> str:
    """One row per variant and baseline that has any of the task's metrics."""
    lines = [
        "| variant | " + " | ".join(task.columns) + " |",
        "|---|" + "---:|" * len(task.columns),
    ]
    digits = {key: _decimals(row.get(key) for row in results.values())
              for key in task.columns.values()}  # fmt: skip
    for name, row in results.items():
        if all(row.get(key) is None for key in task.columns.values()):
            continue
        cells = [_value(row.get(key), half_widths[name].get(key), digits[key])
                 for key in task.columns.values()]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _decimals(values) -> int:
    """4 decimals for scores and errors below 10, 2 for dB and ratios."""
    return 2 if any(v is not None and abs(v) >= 10 for v in values) else 4


def _value(mean: float | None, half: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if not half else f"{mean:.{digits}f} ± {half:.{digits}f}"
