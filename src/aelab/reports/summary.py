"""The summary, reports/summary.md: per task, every variant and baseline with each method's
mean ± the half-width of its 95 % interval, the best (variant, method) or the tie, and
whether a network beats PCA. Every verdict judges the paired difference of two entries
(aelab.analysis.intervals.difference): they were scored on the same test digits and the
same resamples, so the test digits' noise largely cancels. Rendering only: the numbers
come from evaluate's data/evaluation/paired.npz."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aelab.analysis.intervals import Estimate, difference
from aelab.analysis.ranking import paired_leaders
from aelab.core.params import PIXELS, EvaluateParams

# {variant: {metric: its Estimate}}; a metric that does not apply is absent.
Estimates = dict[str, dict[str, Estimate]]
Cell = tuple[str, str]  # (variant, metric)


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


KID_OF_SAMPLES = "KID of samples"


def generation_task(samplers: Sequence[str]) -> Task:
    """Fréchet and kernel distances of each sampler's digits and of the interpolations'
    midpoints (lower is better; ranked by the kernel distance, which is unbiased), the
    share named with confidence, the classes' coverage, the jump."""
    distances = {}
    for source in [*samplers, "interp"]:
        distances |= {f"FD {source}": f"fd_{source}", f"KID {source}": f"kid_{source}"}
    return Task(
        "Generation: Fréchet distance (FD) and kernel distance (KID) to the normal test "
        "digits in the digit classifier's features (lower is better; not Inception's). The "
        "KID is unbiased: 0 on average for more samples of the digits themselves, so chance "
        "can take it below 0; the FD is biased upwards. Then the share named with "
        "confidence > 0.9, coverage of the classes, largest interpolation step",
        distances | {f"confident {s}": f"confident_{s}" for s in samplers}
        | {f"coverage {s}": f"coverage_{s}" for s in samplers} | {"jump": "interp_jump"},
        [(KID_OF_SAMPLES, [f"KID {s}" for s in samplers], False),
         ("KID of interpolation midpoints", ["KID interp"], False)],
    )  # fmt: skip


UNCONVERGED = "†"
HEADER = [
    "# Which variant is best at what",
    "",
    "Means over the seeds ± the half-width of a 95 % interval (seed spread and a bootstrap",
    "over the test digits; see the README). Every entry is scored on the same test digits",
    "and resamples, so verdicts judge the *paired* difference, in which that shared noise",
    "largely cancels: an entry ties with the best when the 95 % interval of its difference",
    "from the best holds 0. In brackets: a difference ± the half-width of its interval.",
]


def summary(
    estimates: Estimates, params: EvaluateParams, pca: list[str],
    unconverged: dict[str, str] | None = None, samplers: Sequence[str] = (),
    kinds: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Markdown: per task, every variant and baseline with mean ± half-width per method,
    the best (variant, method) or the tie, and whether a network beats PCA (the variants
    in `pca`), each judged on the paired difference. `unconverged`: variant -> "k of n
    seeds" that stopped at max_epochs; their rows are marked, and a line under each table
    says so. `samplers`: the generation table's; `kinds`: variant -> kind, for its claims."""
    unconverged = unconverged or {}
    lines = list(HEADER)
    for task in tasks(params, samplers):
        lines += ["", f"## {task.title}", "", _task_table(task, estimates, unconverged)]
        lines += [_unconverged_line(unconverged), ""] if unconverged else [""]
        if task.verdicts[0][0] == KID_OF_SAMPLES:
            lines += [_floor_line(estimates), ""]
        for what, headers, higher in task.verdicts:
            cells = _cells(task, headers, estimates)
            if cells:
                networks = {c: v for c, v in cells.items() if v[0] not in [*pca, PIXELS]}
                baseline = {c: v for c, v in cells.items() if v[0] in pca}
                lines += [f"- **Best {what}:** {_best(cells, estimates, higher)}",
                          f"  - {_against_pca(networks, baseline, estimates, higher)}"]  # fmt: skip
    if samplers:
        lines += ["", "What the numbers say about the article's claims:", "",
                  *claims(estimates, kinds or {})]  # fmt: skip
    return "\n".join(lines) + "\n"


def _floor_line(estimates: Estimates) -> str:
    real = estimates.get(PIXELS, {})
    if "fd_real" not in real or "kid_real" not in real:
        return "Floor: no real digits measured."
    fd, kid = _shown(real["fd_real"], 2), _shown(real["kid_real"], 2)
    confident, coverage = real["confident_real"].mean, real["coverage_real"].mean
    return (
        f"Floor: the real validation digits are at FD {fd} and KID {kid} from the test "
        f"digits (confident {confident:.2f}, coverage {coverage:.2f}): finite samples of the "
        "same digits are not at FD 0, and their KID is 0 only on average."
    )


def claims(estimates: Estimates, kinds: dict[str, str]) -> list[str]:
    """One line per claim of the article, each a paired comparison of two kernel
    distances: a plain autoencoder cannot generate from nothing; its latent space may not
    be continuous; the VAE's prior gives it the power to generate."""
    plain = next((n for n, kind in kinds.items() if kind == "ae"), None)
    vae = next((n for n, kind in kinds.items() if kind == "vae"), None)

    def cell(name: str | None, key: str) -> Cell | None:
        return (name, key) if name and key in estimates.get(name, {}) else None

    def compare(first: Cell | None, second: Cell | None, what: str) -> str:
        return _compare(first, second, estimates, what)

    return [
        "- *A plain autoencoder cannot generate from nothing:* "
        + compare(cell(plain, "kid_gmm"), cell(vae, "kid_prior"),
                  "with a mixture fitted on its codes it does"),
        "- *Its latent space may not be continuous:* "
        + compare(cell(plain, "kid_interp"), cell(vae, "kid_interp"),
                  "the midpoints between two digits' codes"),
        "- *The VAE's prior gives it the power to generate:* "
        + compare(cell(vae, "kid_prior"), cell(vae, "kid_gmm"),
                  "its prior against a mixture fitted on its own codes"),
    ]  # fmt: skip


def _compare(first: Cell | None, second: Cell | None, estimates: Estimates, what: str) -> str:
    """`what`: first's distance against second's, by the paired difference, or a tie."""
    if first is None or second is None:
        return f"{what}: not measured (a variant or sampler is missing)."
    gap, half = _difference(estimates, first, second)
    verdict = "ties with" if abs(gap) <= half else "beats" if gap < 0 else "loses to"
    return (
        f"{what}: {' '.join(first)} {_shown(_estimate(estimates, first), 2)} {verdict} "
        f"{' '.join(second)} {_shown(_estimate(estimates, second), 2)} "
        f"({gap:+.2f} ± {half:.2f}; lower is better)."
    )


def _cells(task: Task, headers: list[str], estimates: Estimates) -> dict[str, Cell]:
    """{"variant · method": (variant, metric)} over the judged columns, without gaps."""
    cells = {}
    for name, row in estimates.items():
        for header in headers:
            key = task.columns[header]
            if key in row:
                cells[f"{name} · {header}" if task.by_method else name] = (name, key)
    return cells


def _estimate(estimates: Estimates, cell: Cell) -> Estimate:
    return estimates[cell[0]][cell[1]]


def _difference(estimates: Estimates, first: Cell, second: Cell) -> tuple[float, float]:
    """first minus second, paired: over the seeds too when both are the same variant's
    networks."""
    return difference(_estimate(estimates, first), _estimate(estimates, second),
                      same_networks=first[0] == second[0])  # fmt: skip


def _best(cells: dict[str, Cell], estimates: Estimates, higher: bool) -> str:
    """The winner and its margin over the runner-up, or the tie and its size."""
    means = {label: _estimate(estimates, cell).mean for label, cell in cells.items()}
    digits = _decimals(means.values())

    def gap(label: str, other: str) -> tuple[float, float]:
        return _difference(estimates, cells[label], cells[other])

    def shown(label: str) -> str:
        return f"{label} {_shown(_estimate(estimates, cells[label]), digits)}"

    best = paired_leaders(means, gap, higher)
    if len(best) > 1:
        tied = [shown(best[0])] + [f"{shown(c)} ({_gap(*gap(c, best[0]), digits)})"
                                   for c in best[1:6]]  # fmt: skip
        more = f" and {len(best) - 6} more" if len(best) > 6 else ""
        return f"a tie among {len(best)}: {', '.join(tied)}{more}"
    if len(cells) == 1:
        return shown(best[0])
    runner_up = sorted(means, key=means.get, reverse=higher)[1]
    return f"{shown(best[0])}, {_gap(*gap(best[0], runner_up), digits)} over {shown(runner_up)}"


def _against_pca(
    networks: dict[str, Cell], baseline: dict[str, Cell], estimates: Estimates, higher: bool
) -> str:
    """Whether the best network beats the best PCA, by their paired difference."""
    if not networks or not baseline:
        return "No network or no PCA variant to compare."
    cells = networks | baseline
    means = {label: _estimate(estimates, cell).mean for label, cell in cells.items()}
    digits = _decimals(means.values())
    net = max(networks, key=means.get) if higher else min(networks, key=means.get)
    pca = max(baseline, key=means.get) if higher else min(baseline, key=means.get)
    gap, half = _difference(estimates, networks[net], baseline[pca])
    clear = abs(gap) > half
    ahead = gap > 0 if higher else gap < 0
    verdict = ("beats PCA" if ahead else "loses to PCA") if clear else "ties with PCA"
    reach = "beyond" if clear else "within"
    return (f"Network against PCA: the best network, {net} "
            f"{_shown(_estimate(estimates, networks[net]), digits)}, {verdict}: "
            f"{_gap(gap, half, digits)} against {pca} "
            f"{_shown(_estimate(estimates, baseline[pca]), digits)}, {reach} the interval of "
            "the paired difference.")  # fmt: skip


def _unconverged_line(unconverged: dict[str, str]) -> str:
    which = ", ".join(f"{name} ({seeds})" for name, seeds in unconverged.items())
    return (
        f"\n{UNCONVERGED} Not converged: {which} stopped at `max_epochs` while the validation "
        "loss still improved; raise it (docs/tuning.md), these rows understate them."
    )


def _task_table(task: Task, estimates: Estimates, unconverged: dict) -> str:
    """One row per variant and baseline that has any of the task's metrics."""
    lines = [
        "| variant | " + " | ".join(task.columns) + " |",
        "|---|" + "---:|" * len(task.columns),
    ]
    # Distances in hundredths whatever their size: their intervals are that coarse.
    digits = {key: 2 if key.startswith(("fd_", "kid_")) else
              _decimals(row[key].mean for row in estimates.values() if key in row)
              for key in task.columns.values()}  # fmt: skip
    for name, row in estimates.items():
        if not any(key in row for key in task.columns.values()):
            continue
        cells = [_shown(row.get(key), digits[key]) for key in task.columns.values()]
        mark = f" {UNCONVERGED}" if name in unconverged else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _decimals(values) -> int:
    """4 decimals for scores and errors below 10, 2 for dB and ratios."""
    return 2 if any(v is not None and abs(v) >= 10 for v in values) else 4


def _shown(estimate: Estimate | None, digits: int) -> str:
    """mean ± half-width, or — for a metric that does not apply."""
    if estimate is None:
        return "—"
    mean, half = estimate.mean, estimate.half_width()
    return f"{mean:.{digits}f}" if not half else f"{mean:.{digits}f} ± {half:.{digits}f}"


def _gap(gap: float, half: float, digits: int) -> str:
    return f"{gap:+.{digits}f} ± {half:.{digits}f}"
