"""The metric regression gate: compare reports/metrics.json with a git revision.

`dvc metrics diff` shows what changed but has no tolerance and never fails. This module
reads its JSON, applies the `regression:` rules of params.yaml and says, per metric,
whether it got better, stayed within the noise, regressed, appeared or disappeared.
Every metric needs a rule and every rule a metric: a typo in a pattern must not leave a
metric ungated (`better: any` lets a metric move freely, on purpose).

How far a mean over the seeds may move the wrong way depends on what changed upstream of
it (aelab.reports.provenance reads both revisions' dvc.lock):
- exact: its data is byte-identical, so only evaluation code or params moved it; no
  noise: the rule's tolerance alone.
- paired: its data changed, but both runs were scored on the same test digits: the seed
  terms of both runs (reports/noise.json), u = √(seed_old² + seed_new²) at the
  Welch–Satterthwaite degrees of freedom; the test set's term cancels.
- unpaired: the test digits changed, or nothing is known: the interval of the difference
  of two independent means, from both 95 % half-widths (reports/intervals.json).
The noise is made simultaneous over the metrics whose inputs changed (Bonferroni): one in
forty of them would stray past its own 95 % interval by chance. The rule's tolerance is
always the floor. `run` is `aelab check`; the rest are pure functions.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from statistics import NormalDist

from aelab.analysis.intervals import LEVEL, half_width
from aelab.core.errors import AelabError
from aelab.core.params import RegressionRule, load_params
from aelab.core.paths import DVC_LOCK, INTERVALS
from aelab.core.paths import NOISE as NOISE_FILE
from aelab.reports.experiments import tool
from aelab.reports.provenance import (
    EXACT,
    PAIRED,
    UNPAIRED,
    Provenance,
    Revision,
    cache_listing,
    git_file,
    judge_bases,
    read_stages,
    workspace_file,
)

# Verdicts; the gate fails on the first three.
REGRESSED, REMOVED, NOT_FINITE = "REGRESSED", "REMOVED", "NOT FINITE"
ADDED, IMPROVED, SAME = "added", "improved", "same"
WITHIN, NOISE = "within tolerance", "within noise"
FREE = "changed (better: any)"
FAILING = (REGRESSED, REMOVED, NOT_FINITE)
EPSILON = 1e-12  # float noise when a change equals its tolerance exactly


@dataclass(frozen=True)
class Row:
    variant: str
    metric: str
    old: float | None
    new: float | None
    allowed: str  # "-0.01" (higher is better), "+0.001" (lower is better) or "any"
    verdict: str
    old_half: float | None = None  # half-widths of the 95 % intervals, when known
    new_half: float | None = None
    basis: str = UNPAIRED  # exact, paired or unpaired: what the allowance came from
    allowance: float | None = None  # how far it may move the wrong way (None: any way)
    family: str = ""  # the pattern of its regression rule

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


def matches(pattern: str, key: str) -> bool:
    """Whether a rule's pattern matches a `variant.metric` key or its bare metric name."""
    return fnmatchcase(key, pattern) or fnmatchcase(key.partition(".")[2], pattern)


def rule_for(variant: str, metric: str, rules: dict[str, RegressionRule]) -> RegressionRule | None:
    """The first rule whose pattern matches `variant.metric` or the bare metric name."""
    pattern = pattern_for(variant, metric, rules)
    return None if pattern is None else rules[pattern]


def pattern_for(variant: str, metric: str, rules: dict[str, RegressionRule]) -> str | None:
    """The pattern of that rule: the metric's family."""
    return next((pattern for pattern in rules if matches(pattern, f"{variant}.{metric}")), None)


def check_rules(keys: list[str], rules: dict[str, RegressionRule]) -> None:
    """One AelabError line for a rule that matches no metric or a metric without a rule."""
    for pattern in rules:
        if not any(matches(pattern, key) for key in keys):
            raise AelabError(
                f"regression rule {pattern!r} in params.yaml matches no metric; "
                "correct its name or delete it"
            )
    ungated = [key for key in keys if not any(matches(pattern, key) for pattern in rules)]
    if ungated:
        more = f" (and {len(ungated) - 1} more)" if len(ungated) > 1 else ""
        raise AelabError(
            f"metric {ungated[0]!r}{more} has no regression rule in params.yaml; add one "
            "(`better: any` lets it change freely)"
        )


def noise(old_half: float | None, new_half: float | None) -> float:
    """Half-width of the 95 % interval of the difference of two independent means, from
    the half-widths of theirs (0 when neither is known)."""
    return math.hypot(old_half or 0.0, new_half or 0.0)


def paired_noise(old: dict, new: dict) -> float:
    """Half-width of the 95 % interval of the difference of two means scored on the same
    test digits, from their reports/noise.json entries: only the seeds differ, so the
    seed terms of both, at the Welch–Satterthwaite degrees of freedom."""
    terms = [(entry["seed"], entry["seeds"] - 1) for entry in (old, new)]
    return half_width(0.0, terms)


def seed_terms(entry: object) -> bool:
    """Whether a reports/noise.json entry has a seed term a pairing can use: a spread
    measured over two seeds or more (one seed's spread is unknown, not zero)."""
    return (isinstance(entry, dict) and isinstance(entry.get("seeds"), int)
            and entry["seeds"] >= 2 and _number(entry.get("seed")) is not None)  # fmt: skip


def family_scale(judged: int) -> float:
    """How much wider than a 95 % interval each of `judged` intervals must be for all of
    them to hold together with 95 % probability (Bonferroni: each at 1 - 5 % / judged;
    normal quantiles, the half-widths' own being unknown here)."""
    quantile = NormalDist().inv_cdf
    tail = (1 - LEVEL) / 2
    return quantile(1 - tail / max(judged, 1)) / quantile(1 - tail)


def judge(old: float | None, new: float | None, rule: RegressionRule, noise: float = 0.0) -> str:
    """The verdict on a mean that went from `old` to `new`; `noise`: how far it may move
    the wrong way by chance (see `noise`). The rule's tolerance is the floor."""
    if new is not None and not math.isfinite(new):
        return NOT_FINITE  # NaN or infinity: never an improvement
    if old is not None and not math.isfinite(old):
        old = None  # a broken baseline: judge the new value as added
    if old is None and new is None:
        return SAME  # e.g. ROC AUC without anomalies, before and after
    if new is None:
        return REMOVED
    if old is None:
        return ADDED
    if new == old:
        return SAME
    if rule.better == "any":
        return FREE
    worse = old - new if rule.better == "higher" else new - old
    if worse <= 0:
        return IMPROVED
    if worse <= rule.tolerance + EPSILON:
        return WITHIN
    return NOISE if worse <= noise + EPSILON else REGRESSED


def compare(
    diff: dict[str, dict],
    rules: dict[str, RegressionRule],
    half_widths: dict[str, dict] | None = None,
    provenance: Provenance | None = None,
    noises: dict[str, dict] | None = None,
) -> list[Row]:
    """Rows for `dvc metrics diff --all --json`'s entries of the metrics file:
    {"ae.roc_auc": {"old": 0.85, "new": 0.84, ...}, ...}, sorted by variant and metric;
    `half_widths`: the same for the intervals file, `noises` for the noise file's entries
    ({"ae.roc_auc": {"old": {"seed": ..., "seeds": 3, ...}, "new": ...}}); `provenance`:
    which variants' inputs changed (without it, every metric is judged unpaired). Raises
    AelabError when a rule matches no metric or a metric has no rule."""
    check_rules(list(diff), rules)
    half_widths, noises = half_widths or {}, noises or {}
    provenance = provenance or Provenance({})
    family_of = {key: pattern_for(*key.partition(".")[::2], rules) for key in diff}
    basis_of = {key: _basis(provenance.basis(key.partition(".")[0]), noises.get(key, {}))
                for key in diff}  # fmt: skip
    changed = [key for key, values in diff.items() if basis_of[key] != EXACT
               and rules[family_of[key]].better != "any" and _both(values)]  # fmt: skip
    scale = family_scale(len(changed))
    rows = []
    for key, values in diff.items():
        variant, _, metric = key.partition(".")
        old, new = _number(values.get("old")), _number(values.get("new"))
        rule, basis = rules[family_of[key]], basis_of[key]
        halves = half_widths.get(key, {})
        old_half, new_half = _number(halves.get("old")), _number(halves.get("new"))
        chance = scale * _chance(basis, old_half, new_half, noises.get(key, {}))
        allowance = None if rule.better == "any" else max(rule.tolerance, chance)
        rows.append(Row(variant, metric, old, new, _allowed(rule, allowance),
                        judge(old, new, rule, chance), old_half, new_half, basis, allowance,
                        family_of[key]))  # fmt: skip
    return sorted(rows, key=lambda row: (row.variant, row.metric))


def _basis(variant_basis: str, terms: dict) -> str:
    """A paired metric needs both runs' seed terms; without them, the unpaired rule."""
    if variant_basis == PAIRED and not all(seed_terms(terms.get(side)) for side in ("old", "new")):
        return UNPAIRED
    return variant_basis


def _chance(basis: str, old_half: float | None, new_half: float | None, terms: dict) -> float:
    """How far the mean may move by chance at 95 %, before the Bonferroni widening."""
    if basis == EXACT:
        return 0.0
    if basis == PAIRED:
        return paired_noise(terms["old"], terms["new"])
    return noise(old_half, new_half)


def _both(values: dict) -> bool:
    return _number(values.get("old")) is not None and _number(values.get("new")) is not None


def _allowed(rule: RegressionRule, allowance: float | None) -> str:
    if allowance is None:
        return "any"
    return f"{'-' if rule.better == 'higher' else '+'}{allowance:.2g}"


def _number(value: object) -> float | None:
    """DVC gives numbers (NaN and infinity included), or None for a metric missing (or
    null) on that side."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def failed(rows: list[Row]) -> bool:
    return any(row.verdict in FAILING for row in rows)


def table(rows: list[Row], everything: bool = False) -> str:
    """A markdown table of the rows that changed (all of them with `everything`)."""
    shown = [row for row in rows if everything or row.verdict != SAME]
    if not shown:
        return "No metric changed.\n"
    lines = [
        "| variant | metric | old (± 95 %) | new (± 95 %) | change | allowed | judged | verdict |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for row in shown:
        change = "" if row.change is None else f"{row.change:+.4g}"
        judged = "—" if row.change is None else row.basis
        verdict = f"**{row.verdict}**" if row.verdict in FAILING else row.verdict
        lines.append(
            f"| {row.variant} | {row.metric} | {_cell(row.old, row.old_half)} "
            f"| {_cell(row.new, row.new_half)} | {change} "
            f"| {row.allowed} | {judged} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value: float | None, half: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if not half else f"{value:.4g} ± {half:.2g}"


def _compared(rows: list[Row]) -> list[Row]:
    """The rows judged by a rule on two values: what an allowance applies to."""
    return [row for row in rows if row.allowance is not None and row.change is not None]


def allowance_note(rows: list[Row]) -> str:
    """What `allowed` means for these rows: the three bases and the widening."""
    changed = sum(row.basis != EXACT for row in _compared(rows))
    exact = (
        "allowed: exact: every input byte-identical (only evaluation code or params "
        "changed), the rule's tolerance alone"
    )
    if not changed:
        return f"{exact}.\n"
    return (
        f"{exact}; paired: the same test digits, the seed noise of both runs; unpaired: "
        f"both intervals. The noise at 95 % is widened x{family_scale(changed):.2f} so that "
        f"the intervals of the {changed} judged metrics whose inputs changed hold together "
        "(Bonferroni); the tolerance is the floor.\n"
    )


def power(rows: list[Row]) -> str:
    """Per rule (family of metrics) and basis, the smallest move the wrong way the gate
    catches in this comparison: the median of the metrics' allowances, and their number."""
    families: dict[str, list[Row]] = {}
    for row in _compared(rows):
        families.setdefault(row.family, []).append(row)
    if not families:
        return ""
    lines = [
        "| family | exact | paired | unpaired |",
        "|---|---:|---:|---:|",
    ]
    for family, members in sorted(families.items()):
        sign = "+" if members[0].allowed.startswith("+") else "-"
        cells = []
        for basis in (EXACT, PAIRED, UNPAIRED):
            allowances = [row.allowance for row in members if row.basis == basis]
            median = f"{sign}{statistics.median(allowances):.2g}" if allowances else ""
            cells.append(f"{median} ({len(allowances)})" if allowances else "—")
        lines.append(f"| {family} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[Row]) -> str:
    """One line: how many metrics were compared and what happened to them."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    parts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    outcome = "FAILED" if failed(rows) else "passed"
    return f"aelab check {outcome}: {len(rows)} metrics compared ({parts})"


def too_few_same(rows: list[Row], min_same: float) -> str:
    """A line when fewer than `min_same` of the metrics came out the same, else ""."""
    same = sum(row.verdict == SAME for row in rows)
    if same >= min_same * len(rows):
        return ""
    return (
        f"aelab check FAILED: {same} of {len(rows)} metrics ({same / len(rows):.1%}) came out "
        f"the same, fewer than --min-same {min_same:g} asks: this run does not reproduce the "
        "revision's reports (docs/gate.md: What reproduces across machines)"
    )


def run(root: Path, rev: str, metrics: str, params_file: str | Path, everything: bool,
        min_same: float = 0) -> int:  # fmt: skip
    """`aelab check` of the project at `root` (`metrics` a path in it): print the table and
    the verdict; 1 when the gate fails, else 0.
    `min_same`: the share of metrics that must come out the same (a reproduction check:
    an unchanged clone rerun on another machine, as CI does)."""
    rules = load_params(params_file).regression
    _check_json(root, metrics)
    shown = [str(INTERVALS)] if (root / INTERVALS).is_file() else []  # it may have none
    diffs = metrics_diff(root, rev, [metrics, *shown])
    found = diffs.get(metrics, {})
    provenance = provenance_of(root, rev, metrics, {key.partition(".")[0] for key in found})
    noises = _paired_entries(_json(git_file(root, rev, NOISE_FILE.as_posix())),
                             _json(workspace_file(root, NOISE_FILE.as_posix())))  # fmt: skip
    rows = compare(found, rules, diffs.get(str(INTERVALS), {}), provenance, noises)
    if not rows or all(row.old is None for row in rows):
        raise AelabError(f"{metrics} has no metrics at revision {rev!r}: nothing to compare with")
    print(f"Metrics of the workspace against {rev} ({metrics}):\n")
    print(table(rows, everything))
    print(allowance_note(rows) + fallbacks(rev, rows, provenance, noises))
    print(
        "What fails here: a move the wrong way beyond (the median over the rule's metrics, "
        f"and how many)\n\n{power(rows)}"
    )
    print(summary(rows))
    shortfall = too_few_same(rows, min_same)
    if shortfall:
        print(shortfall)
    return 1 if failed(rows) or shortfall else 0


def provenance_of(root: Path, rev: str, metrics: str, variants: set[str]) -> Provenance:
    """Which variants' inputs changed between `rev` and the workspace (dvc.lock of both)."""
    path, lock = Path(metrics).as_posix(), DVC_LOCK.as_posix()
    old = Revision(read_stages(git_file(root, rev, lock)), git_file(root, rev, path))
    new = Revision(read_stages(workspace_file(root, lock)), workspace_file(root, path))
    return judge_bases(old, new, path, variants, cache_listing(root))


def fallbacks(rev: str, rows: list[Row], provenance: Provenance, noises: dict) -> str:
    """A line for each reason the gate fell back to the unpaired rule, if any."""
    lines = []
    if provenance.unknown:
        lines.append(f"Every metric is judged unpaired: {provenance.unknown}.")
    demoted = [row for row in _compared(rows) if row.basis == UNPAIRED
               and provenance.basis(row.variant) == PAIRED]  # fmt: skip
    if demoted:
        missing = not any(terms.get("old") for terms in noises.values())
        reason = (
            f"{rev} has no {NOISE_FILE.as_posix()}"
            if missing
            else "a run has no seed spread for them (one seed, or null in noise.json)"
        )
        many = "metrics" if len(demoted) > 1 else "metric"
        lines.append(f"{len(demoted)} {many} whose inputs changed judged unpaired (both "
                     f"intervals, the rule before pairing): {reason}.")  # fmt: skip
    return "".join(f"{line}\n" for line in lines)


def _json(text: bytes | None) -> dict:
    try:
        found = json.loads(text) if text is not None else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _paired_entries(old: dict, new: dict) -> dict[str, dict]:
    """Two {variant: {metric: entry}} files as {"variant.metric": {"old": .., "new": ..}}."""
    entries: dict[str, dict] = {}
    for side, found in (("old", old), ("new", new)):
        for variant, row in found.items():
            for metric, entry in row.items() if isinstance(row, dict) else ():
                entries.setdefault(f"{variant}.{metric}", {})[side] = entry
    return entries


def _check_json(root: Path, path: str) -> None:
    """DVC skips an unreadable metrics file with a warning: that must not pass."""
    try:
        json.loads((root / path).read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run `dvc repro` first") from None
    except ValueError as error:
        raise AelabError(f"{path}: not valid JSON ({error}); run `dvc repro evaluate`") from None


def _check_revision(root: Path, rev: str) -> None:
    """DVC reports a revision that is not a commit (a tree, a typo) as an internal error."""
    command = ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
    if tool(root, command).returncode != 0:
        raise AelabError(
            f"--rev {rev!r} names no commit of this git repository; give a branch, tag or commit"
        )


def metrics_diff(root: Path, rev: str, files: list[str]) -> dict[str, dict[str, dict]]:
    """`dvc metrics diff --all --json <rev>` for `files` of the project at `root`:
    {file: {"variant.metric": {old, new}}}."""
    _check_revision(root, rev)
    command = ["dvc", "metrics", "diff", rev, "--targets", *files, "--all", "--json"]
    result = tool(root, command)
    if result.returncode != 0:
        # DVC ends with a "Having any troubles?" line: the reason is its ERROR line.
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        reason = lines[0].removeprefix("ERROR: ") if lines else f"exit {result.returncode}"
        raise AelabError(f"`dvc metrics diff {rev}` failed: {reason}")
    return json.loads(result.stdout or "{}")
