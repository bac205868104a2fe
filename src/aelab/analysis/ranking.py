"""Which variant is best at a metric, given means and the half-widths of their 95 %
intervals: a difference inside the intervals is a tie. Pure functions, no I/O."""

from __future__ import annotations


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
    ranked = by_mean(column, higher)
    best_mean, best_half = column[ranked[0]]
    return [ranked[0]] + [
        name for name in ranked[1:]
        if abs(column[name][0] - best_mean) <= column[name][1] + best_half
    ]  # fmt: skip


def by_mean(column: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """The variants by mean, best first."""
    return sorted(column, key=lambda name: column[name][0], reverse=higher)
