"""Which variant is best at a metric: by the means alone, by independent intervals
(`leaders`), or by the intervals of paired differences (`paired_leaders`); a difference
inside its interval is a tie. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Callable


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


def paired_leaders(
    means: dict[str, float],
    difference: Callable[[str, str], tuple[float, float]],
    higher: bool,
) -> list[str]:
    """The entries that may be best at one metric, best first: the best mean, then every
    entry whose difference from it (`difference(entry, best)`: its mean and the half-width
    of its 95 % interval, judged paired) has an interval containing 0. Unlike `leaders`,
    which asks two independent intervals to clear each other, the noise both share (the
    test digits) cancels, so an entry may be told apart from the best while its own
    interval still overlaps the best's."""
    ranked = sorted(means, key=means.get, reverse=higher)
    best = ranked[0]
    return [best] + [name for name in ranked[1:] if _contains_zero(*difference(name, best))]


def _contains_zero(gap: float, half_width: float) -> bool:
    return abs(gap) <= half_width
