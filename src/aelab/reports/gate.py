"""The metric regression gate: compare reports/metrics.json with a git revision.

`dvc metrics diff` shows what changed but has no tolerance and never fails. This module
reads its JSON, applies the `regression:` rules of params.yaml and says, per metric,
whether it got better, stayed within the noise, regressed, appeared or disappeared.
Every metric needs a rule and every rule a metric: a typo in a pattern must not leave a
metric ungated (`better: any` lets a metric move freely, on purpose). The verdicts
compare the means over the seeds, and judge like the summary does: a mean may move the
wrong way by the half-width of the interval of the difference of the two means (from
both means' 95 % half-widths in reports/intervals.json), and never less than the rule's
tolerance. Those intervals are simultaneous: the gate judges hundreds of metrics at once,
and one in forty of them would stray past its own 95 % interval by chance. `run` is
`aelab check`; the rest are pure functions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from statistics import NormalDist

from aelab.analysis.intervals import LEVEL
from aelab.core.errors import AelabError
from aelab.core.params import RegressionRule, load_params
from aelab.core.paths import INTERVALS
from aelab.reports.experiments import tool

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

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


def matches(pattern: str, key: str) -> bool:
    """Whether a rule's pattern matches a `variant.metric` key or its bare metric name."""
    return fnmatchcase(key, pattern) or fnmatchcase(key.partition(".")[2], pattern)


def rule_for(variant: str, metric: str, rules: dict[str, RegressionRule]) -> RegressionRule | None:
    """The first rule whose pattern matches `variant.metric` or the bare metric name."""
    for pattern, rule in rules.items():
        if matches(pattern, f"{variant}.{metric}"):
            return rule
    return None


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
) -> list[Row]:
    """Rows for `dvc metrics diff --all --json`'s entries of the metrics file:
    {"ae.roc_auc": {"old": 0.85, "new": 0.84, ...}, ...}, sorted by variant and metric;
    `half_widths`: the same for the intervals file. Raises AelabError when a rule matches
    no metric or a metric has no rule."""
    check_rules(list(diff), rules)
    half_widths = half_widths or {}
    rule_of = {key: rule_for(*key.partition(".")[::2], rules) for key in diff}
    scale = family_scale(sum(rule.better != "any" for rule in rule_of.values()))
    rows = []
    for key, values in diff.items():
        variant, _, metric = key.partition(".")
        old, new = _number(values.get("old")), _number(values.get("new"))
        rule = rule_of[key]
        halves = half_widths.get(key, {})
        old_half, new_half = _number(halves.get("old")), _number(halves.get("new"))
        chance = scale * noise(old_half, new_half)
        rows.append(Row(variant, metric, old, new, _allowed(rule, chance),
                        judge(old, new, rule, chance), old_half, new_half))  # fmt: skip
    return sorted(rows, key=lambda row: (row.variant, row.metric))


def _allowed(rule: RegressionRule, chance: float) -> str:
    if rule.better == "any":
        return "any"
    return f"{'-' if rule.better == 'higher' else '+'}{max(rule.tolerance, chance):.2g}"


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
        "| variant | metric | old (± 95 %) | new (± 95 %) | change | allowed | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in shown:
        change = "" if row.change is None else f"{row.change:+.4g}"
        verdict = f"**{row.verdict}**" if row.verdict in FAILING else row.verdict
        lines.append(
            f"| {row.variant} | {row.metric} | {_cell(row.old, row.old_half)} "
            f"| {_cell(row.new, row.new_half)} | {change} "
            f"| {row.allowed} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value: float | None, half: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if not half else f"{value:.4g} ± {half:.2g}"


def allowance_note(rows: list[Row]) -> str:
    """What `allowed` means for these rows: the widening of the 95 % noise."""
    judged = sum(row.allowed != "any" for row in rows)
    return (
        f"allowed: the rule's tolerance, or the noise of the difference at 95 % widened "
        f"x{family_scale(judged):.2f} so that the intervals of all {judged} judged metrics "
        "hold together (Bonferroni)\n"
    )


def summary(rows: list[Row]) -> str:
    """One line: how many metrics were compared and what happened to them."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    parts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    outcome = "FAILED" if failed(rows) else "passed"
    return f"aelab check {outcome}: {len(rows)} metrics compared ({parts})"


def run(rev: str, metrics: str, params_file: str, everything: bool) -> int:
    """`aelab check`: print the table and the verdict; 1 when the gate fails, else 0."""
    rules = load_params(params_file).regression
    _check_json(Path(metrics))
    shown = [str(INTERVALS)] if INTERVALS.is_file() else []  # a project may not have one
    diffs = metrics_diff(rev, [metrics, *shown])
    rows = compare(diffs.get(metrics, {}), rules, diffs.get(str(INTERVALS), {}))
    if not rows or all(row.old is None for row in rows):
        raise AelabError(f"{metrics} has no metrics at revision {rev!r}: nothing to compare with")
    print(f"Metrics of the workspace against {rev} ({metrics}):\n")
    print(table(rows, everything))
    print(allowance_note(rows))
    print(summary(rows))
    return 1 if failed(rows) else 0


def _check_json(path: Path) -> None:
    """DVC skips an unreadable metrics file with a warning: that must not pass."""
    try:
        json.loads(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run `dvc repro` first") from None
    except ValueError as error:
        raise AelabError(f"{path}: not valid JSON ({error}); run `dvc repro evaluate`") from None


def _check_revision(rev: str) -> None:
    """DVC reports a revision that is not a commit (a tree, a typo) as an internal error."""
    command = ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
    if tool(command).returncode != 0:
        raise AelabError(
            f"--rev {rev!r} names no commit of this git repository; give a branch, tag or commit"
        )


def metrics_diff(rev: str, files: list[str]) -> dict[str, dict[str, dict]]:
    """`dvc metrics diff --all --json <rev>` for `files`:
    {file: {"variant.metric": {old, new}}}."""
    _check_revision(rev)
    command = ["dvc", "metrics", "diff", rev, "--targets", *files, "--all", "--json"]
    result = tool(command)
    if result.returncode != 0:
        # DVC ends with a "Having any troubles?" line: the reason is its ERROR line.
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        reason = lines[0].removeprefix("ERROR: ") if lines else f"exit {result.returncode}"
        raise AelabError(f"`dvc metrics diff {rev}` failed: {reason}")
    return json.loads(result.stdout or "{}")
