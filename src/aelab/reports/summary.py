"""The summary, reports/summary.md: per task, every variant and baseline with each method's
mean ± the half-width of its 95 % interval, the best (variant, method) or the tie, and
whether a network beats PCA. Rendering only: the numbers come from evaluate's files."""

from __future__ import annotations

from dataclasses import dataclass

from aelab.analysis.ranking import by_mean, leaders
from aelab.core.params import PIXELS, EvaluateParams


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


UNCONVERGED = "†"


def summary(
    results: dict[str, dict], half_widths: dict[str, dict], params: EvaluateParams,
    pca: list[str], unconverged: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Markdown: per task, every variant and baseline with mean ± half-width per method,
    the best (variant, method) or the tie, and whether a network beats PCA (the variants
    in `pca`) beyond the intervals. `unconverged`: variant -> "k of n seeds" that stopped
    at max_epochs; their rows are marked, and a line under each table says so."""
    unconverged = unconverged or {}
    lines = [
        "# Which variant is best at what",
        "",
        "Means over the seeds ± the half-width of a 95 % interval (seed spread and a",
        "bootstrap over the test digits; see the README). A winner is named only where its",
        "interval clears the runner-up's; otherwise the tie lists every (variant, method)",
        "whose interval overlaps the best one's.",
    ]
    for task in tasks(params):
        lines += ["", f"## {task.title}", "", _task_table(task, results, half_widths, unconverged)]
        lines += [_unconverged_line(unconverged), ""] if unconverged else [""]
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
    runner_up = by_mean(cells, higher)[1]
    margin = cells[best[0]][0] - cells[runner_up][0]
    return f"{winner}, {margin:+.{digits}f} over {runner_up} {_value(*cells[runner_up], digits)}"


def _against_pca(networks: dict, baseline: dict, higher: bool) -> str:
    """Whether the best network beats the best PCA beyond both intervals."""
    if not networks or not baseline:
        return "No network or no PCA variant to compare."
    digits = _decimals(mean for mean, _ in [*networks.values(), *baseline.values()])
    net, pca = by_mean(networks, higher)[0], by_mean(baseline, higher)[0]
    gap = networks[net][0] - baseline[pca][0]
    clear = abs(gap) > networks[net][1] + baseline[pca][1]
    ahead = gap > 0 if higher else gap < 0
    verdict = ("beats PCA" if ahead else "loses to PCA") if clear else "ties with PCA"
    reach = "beyond the intervals" if clear else "within the intervals"
    return (f"Network against PCA: the best network, {net} {_value(*networks[net], digits)}, "
            f"{verdict}: {gap:+.{digits}f} against {pca} {_value(*baseline[pca], digits)}, "
            f"{reach}.")  # fmt: skip


def _unconverged_line(unconverged: dict[str, str]) -> str:
    which = ", ".join(f"{name} ({seeds})" for name, seeds in unconverged.items())
    return (
        f"\n{UNCONVERGED} Not converged: {which} stopped at `max_epochs` while the validation "
        "loss still improved; raise it (docs/tuning.md), these rows understate them."
    )


def _task_table(
    task: Task, results: dict[str, dict], half_widths: dict[str, dict], unconverged: dict
) -> str:
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
        mark = f" {UNCONVERGED}" if name in unconverged else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _decimals(values) -> int:
    """4 decimals for scores and errors below 10, 2 for dB and ratios."""
    return 2 if any(v is not None and abs(v) >= 10 for v in values) else 4


def _value(mean: float | None, half: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if not half else f"{mean:.{digits}f} ± {half:.{digits}f}"
