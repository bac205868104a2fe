"""The summary, reports/summary.md: per task, every variant and baseline with each method's
mean ± the half-width of its 95 % interval, the best (variant, method) or the tie, and
whether a network beats PCA. Rendering only: the numbers come from evaluate's files."""

from __future__ import annotations

from collections.abc import Sequence
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


def tasks(params: EvaluateParams, samplers: Sequence[str] = ()) -> list[Task]:
    """The three jobs of the article, each with the chosen methods, and its theme,
    generation, with the chosen samplers (none: no generation table)."""
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
    ] + ([generation_task(samplers)] if samplers else [])  # fmt: skip


def generation_task(samplers: Sequence[str]) -> Task:
    """Fréchet distances of each sampler's digits and of the interpolations' midpoints
    (lower is better), the share named with confidence, the classes' coverage, the jump."""
    distances = {f"FD {s}": f"fd_{s}" for s in samplers} | {"FD interp": "fd_interp"}
    return Task(
        "Generation: Fréchet distance to the normal test digits in the digit classifier's "
        "features (lower is better; not an Inception FID), share named with confidence > "
        "0.9, coverage of the classes, largest interpolation step",
        distances | {f"confident {s}": f"confident_{s}" for s in samplers}
        | {f"coverage {s}": f"coverage_{s}" for s in samplers} | {"jump": "interp_jump"},
        [("FD of samples", [f"FD {s}" for s in samplers], False),
         ("FD of interpolation midpoints", ["FD interp"], False)],
    )  # fmt: skip


UNCONVERGED = "†"


def summary(
    results: dict[str, dict], half_widths: dict[str, dict], params: EvaluateParams,
    pca: list[str], unconverged: dict[str, str] | None = None,
    samplers: Sequence[str] = (), kinds: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Markdown: per task, every variant and baseline with mean ± half-width per method,
    the best (variant, method) or the tie, and whether a network beats PCA (the variants
    in `pca`) beyond the intervals. `unconverged`: variant -> "k of n seeds" that stopped
    at max_epochs; their rows are marked, and a line under each table says so.
    `samplers`: the generation table's; `kinds`: variant -> kind, for its claims."""
    unconverged = unconverged or {}
    lines = [
        "# Which variant is best at what",
        "",
        "Means over the seeds ± the half-width of a 95 % interval (seed spread and a",
        "bootstrap over the test digits; see the README). A winner is named only where its",
        "interval clears the runner-up's; otherwise the tie lists every (variant, method)",
        "whose interval overlaps the best one's.",
    ]
    for task in tasks(params, samplers):
        lines += ["", f"## {task.title}", "", _task_table(task, results, half_widths, unconverged)]
        lines += [_unconverged_line(unconverged), ""] if unconverged else [""]
        if task.verdicts[0][0] == "FD of samples":
            lines += [_floor_line(results, half_widths), ""]
        for what, headers, higher in task.verdicts:
            cells = _cells(task, headers, results, half_widths)
            if cells:
                networks = {c: v for c, v in cells.items() if _variant(c) not in [*pca, PIXELS]}
                baseline = {c: v for c, v in cells.items() if _variant(c) in pca}
                lines += [f"- **Best {what}:** {_best(cells, higher)}",
                          f"  - {_against_pca(networks, baseline, higher)}"]  # fmt: skip
    if samplers:
        lines += ["", "What the numbers say about the article's claims:", "",
                  *claims(results, half_widths, kinds or {})]  # fmt: skip
    return "\n".join(lines) + "\n"


def _floor_line(results: dict, half_widths: dict) -> str:
    real, half = results.get(PIXELS, {}), half_widths.get(PIXELS, {})
    if real.get("fd_real") is None:
        return "Floor: no real digits measured."
    floor = _value(real["fd_real"], half["fd_real"], 2)
    return (
        f"Floor: the real validation digits are at FD {floor} from the test digits "
        f"(confident {real['confident_real']:.2f}, coverage {real['coverage_real']:.2f}): "
        "finite samples of the same digits are not at 0."
    )


def claims(results: dict, half_widths: dict, kinds: dict[str, str]) -> list[str]:
    """One line per claim of the article, each a comparison of two cells with intervals:
    a plain autoencoder cannot generate from nothing; its latent space may not be
    continuous; the VAE's prior gives it the power to generate."""
    plain = next((n for n, kind in kinds.items() if kind == "ae"), None)
    vae = next((n for n, kind in kinds.items() if kind == "vae"), None)

    def cell(name: str | None, key: str) -> tuple[str, tuple[float, float]] | None:
        value = results.get(name, {}).get(key) if name else None
        return None if value is None else (f"{name} {key}", (value, half_widths[name][key]))

    return [
        "- *A plain autoencoder cannot generate from nothing:* "
        + _compare(cell(plain, "fd_gmm"), cell(vae, "fd_prior"),
                   "with a mixture fitted on its codes it does"),
        "- *Its latent space may not be continuous:* "
        + _compare(cell(plain, "fd_interp"), cell(vae, "fd_interp"),
                   "the midpoints between two digits' codes"),
        "- *The VAE's prior gives it the power to generate:* "
        + _compare(cell(vae, "fd_prior"), cell(vae, "fd_gmm"),
                   "its prior against a mixture fitted on its own codes"),
    ]  # fmt: skip


def _compare(first, second, what: str) -> str:
    """`what`: first's FD against second's, beyond the intervals or a tie."""
    if first is None or second is None:
        return f"{what}: not measured (a variant or sampler is missing)."
    (a, (mean_a, half_a)), (b, (mean_b, half_b)) = first, second
    gap = mean_a - mean_b
    verdict = ("ties with" if abs(gap) <= half_a + half_b
               else "beats" if gap < 0 else "loses to")  # fmt: skip
    return (
        f"{what}: {a} {_value(mean_a, half_a, 2)} {verdict} {b} "
        f"{_value(mean_b, half_b, 2)} (lower is better)."
    )


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
    # Fréchet distances in hundredths whatever their size: their intervals are that coarse.
    digits = {key: 2 if key.startswith("fd_") else
              _decimals(row.get(key) for row in results.values())
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
