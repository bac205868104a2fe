"""The metric regression gate: compare reports/metrics.json with a git revision.

`dvc metrics diff` shows what changed but has no tolerance and never fails. This module
reads its JSON, applies the `regression:` rules of params.yaml and says, per metric,
whether it got better, stayed within its tolerance, regressed, appeared or disappeared.
Pure functions: the command line is `aelab.cli`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from aelab.params import RegressionRule

# Verdicts; the gate fails on the first two.
REGRESSED, REMOVED = "REGRESSED", "REMOVED"
ADDED, IMPROVED, WITHIN, SAME, UNGATED = "added", "improved", "within tolerance", "same", "no rule"
FAILING = (REGRESSED, REMOVED)
EPSILON = 1e-12  # float noise when a change equals its tolerance exactly


@dataclass(frozen=True)
class Row:
    variant: str
    metric: str
    old: float | None
    new: float | None
    allowed: str  # e.g. "-0.01" (higher is better) or "+0.001" (lower is better); "" if no rule
    verdict: str

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


def rule_for(variant: str, metric: str, rules: dict[str, RegressionRule]) -> RegressionRule | None:
    """The first rule whose pattern matches `variant.metric` or the bare metric name."""
    for pattern, rule in rules.items():
        if fnmatchcase(f"{variant}.{metric}", pattern) or fnmatchcase(metric, pattern):
            return rule
    return None


def judge(old: float | None, new: float | None, rule: RegressionRule | None) -> str:
    if old is None and new is None:
        return SAME  # e.g. ROC AUC without anomalies, before and after
    if new is None:
        return REMOVED
    if old is None:
        return ADDED
    if new == old:
        return SAME
    if rule is None:
        return UNGATED
    worse = old - new if rule.better == "higher" else new - old
    if worse <= 0:
        return IMPROVED
    return WITHIN if worse <= rule.tolerance + EPSILON else REGRESSED


def compare(diff: dict[str, dict], rules: dict[str, RegressionRule]) -> list[Row]:
    """Rows for `dvc metrics diff --all --json`'s entries of one file:
    {"ae.roc_auc": {"old": 0.85, "new": 0.84, ...}, ...}, sorted by variant and metric."""
    rows = []
    for key, values in diff.items():
        variant, _, metric = key.partition(".")
        old, new = _number(values.get("old")), _number(values.get("new"))
        rule = rule_for(variant, metric, rules)
        allowed = (
            "" if rule is None else f"{'-' if rule.better == 'higher' else '+'}{rule.tolerance:g}"
        )
        rows.append(Row(variant, metric, old, new, allowed, judge(old, new, rule)))
    return sorted(rows, key=lambda row: (row.variant, row.metric))


def _number(value: object) -> float | None:
    """DVC gives numbers, or None for a metric missing (or null) on that side."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def failed(rows: list[Row]) -> bool:
    return any(row.verdict in FAILING for row in rows)


def table(rows: list[Row], everything: bool = False) -> str:
    """A markdown table of the rows that changed (all of them with `everything`)."""
    shown = [row for row in rows if everything or row.verdict != SAME]
    if not shown:
        return "No metric changed.\n"
    lines = [
        "| variant | metric | old | new | change | allowed | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in shown:
        change = "" if row.change is None else f"{row.change:+.4g}"
        verdict = f"**{row.verdict}**" if row.verdict in FAILING else row.verdict
        lines.append(
            f"| {row.variant} | {row.metric} | {_cell(row.old)} | {_cell(row.new)} | {change} "
            f"| {row.allowed} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def summary(rows: list[Row]) -> str:
    """One line: how many metrics were compared and what happened to them."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    parts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    outcome = "FAILED" if failed(rows) else "passed"
    return f"aelab check {outcome}: {len(rows)} metrics compared ({parts})"
