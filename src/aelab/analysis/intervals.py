"""95 % intervals for metrics measured over several seeds on one finite test set, and for
the difference of two such metrics.

Two independent sources of noise move a metric:
- the seed (initial weights, batch order, noise, k-means' start): seen as the spread of
  the metric across the S seeds' networks, u_seed = sd / √S;
- the test set (1,000 digits on the sample): seen as the spread of the seed-mean metric
  over bootstrap resamples of the test digits, the same resamples for every seed and
  variant, u_test = their sd.
Their standard uncertainties add in quadrature; the interval is the mean ± k u with k the
Student t quantile at the Welch–Satterthwaite degrees of freedom (the GUM's recipe: with
few seeds the seed term is itself uncertain, so k grows; without seed spread k = 1.96).

A difference of two metrics is judged *paired*: every variant is scored on the same test
digits and the same resamples, so its test term is the sd over the resamples of the
difference of the two seed-means (most of the test set's noise cancels). Its seed term is
√(u_seed_a² + u_seed_b²) for two variants (independent networks), or, for two methods
of the same variant (the same networks), the sd of the per-seed differences / √S.

`reports/noise.json` keeps each metric's two terms apart, {variant: {metric: {"seed":
u_seed, "test": u_test, "seeds": S, "dof": ν} or null}}, ν the Welch–Satterthwaite
degrees of freedom of the whole (null: infinite). The half-width in reports/intervals.json
is t(0.975, ν) √(seed² + test²), with ν = (seed² + test²)² (S − 1) / seed⁴. A consumer
that pairs two runs on the same test digits (the gate) drops the test terms and keeps the
seed terms of both. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


def resamples(n: int, count: int, seed: int) -> np.ndarray:
    """(1 + count, n) weights: how many times each of n test digits is drawn. Row 0 is the
    test set itself (all ones), then `count` bootstrap resamples (n draws with replacement)."""
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, np.full(n, 1 / n), size=count)
    return np.vstack([np.ones((1, n)), drawn]).astype(np.float64)


@dataclass(frozen=True)
class Estimate:
    """One metric of one variant over its seeds: what an interval or a paired comparison
    needs. `seeds` (S,): each seed's value on the test set; `resampled` (B,): the mean
    over the seeds on each bootstrap resample of the test digits."""

    seeds: np.ndarray
    resampled: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Estimate:
        """From (S seeds, 1 + B): each seed's metric on the test set (column 0) and on the
        B resamples."""
        values = np.asarray(values, dtype=np.float64)
        return cls(values[:, 0], values[:, 1:].mean(axis=0))

    @property
    def mean(self) -> float:
        return float(self.seeds.mean())

    @property
    def u_seed(self) -> float:
        return _standard_error(self.seeds)

    @property
    def u_test(self) -> float:
        return _sd(self.resampled)

    def half_width(self) -> float:
        return half_width(self.u_test, [(self.u_seed, len(self.seeds) - 1)])

    def noise(self) -> dict[str, float | int | None]:
        """The entry of reports/noise.json: the two standard uncertainties apart."""
        dof = degrees_of_freedom(self.u_test, [(self.u_seed, len(self.seeds) - 1)])
        return {"seed": self.u_seed, "test": self.u_test, "seeds": len(self.seeds),
                "dof": None if math.isinf(dof) else dof}  # fmt: skip


def difference(first: Estimate, second: Estimate, same_networks: bool) -> tuple[float, float]:
    """first's mean minus second's, and the half-width of its paired 95 % interval.
    `same_networks`: two methods of one variant (their seeds pair too), not two variants."""
    u_test = _sd(first.resampled - second.resampled)
    if same_networks:
        seed_terms = [(_standard_error(first.seeds - second.seeds), len(first.seeds) - 1)]
    else:
        seed_terms = [(first.u_seed, len(first.seeds) - 1),
                      (second.u_seed, len(second.seeds) - 1)]  # fmt: skip
    return first.mean - second.mean, half_width(u_test, seed_terms)


def half_width(u_test: float, seed_terms: Iterable[tuple[float, int]]) -> float:
    """k u: u the quadrature sum of the test term (exact degrees of freedom: it comes from
    many resamples) and the seed terms, each (u, its degrees of freedom)."""
    seed_terms = list(seed_terms)
    u = math.hypot(u_test, *(term for term, _ in seed_terms))
    if u == 0:
        return 0.0
    dof = degrees_of_freedom(u_test, seed_terms)
    return float(stats.t.ppf((1 + LEVEL) / 2, dof) * u)


def degrees_of_freedom(u_test: float, seed_terms: Iterable[tuple[float, int]]) -> float:
    """Welch–Satterthwaite: u⁴ / Σ u_i⁴ / ν_i over the seed terms (infinite without seed
    spread)."""
    seed_terms = [(term, dof) for term, dof in seed_terms if term > 0]
    if not seed_terms:
        return math.inf
    u = math.hypot(u_test, *(term for term, _ in seed_terms))
    if len(seed_terms) == 1:  # the usual case, rounded as reports/intervals.json always was
        term, dof = seed_terms[0]
        return u**4 * dof / term**4
    return u**4 / sum(term**4 / dof for term, dof in seed_terms)


def _standard_error(values: np.ndarray) -> float:
    return _sd(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def mean_and_half_width(values: np.ndarray) -> tuple[float, float]:
    """`values` (S seeds, 1 + B): each seed's metric on the test set (column 0) and on the
    B resamples. The mean over seeds and the half-width of its 95 % interval."""
    estimate = Estimate.of(values)
    return estimate.mean, estimate.half_width()


def estimates(per_seed: list[dict]) -> dict[str, Estimate | None]:
    """Each metric's Estimate from each seed's (1 + B,) array of it; None where the metric
    does not apply (e.g. ROC AUC without anomalies) or its mean or interval is not finite."""
    found = {}
    for key, first in per_seed[0].items():
        estimate = None if first is None else Estimate.of(np.stack([s[key] for s in per_seed]))
        finite = estimate is not None and math.isfinite(estimate.mean)
        found[key] = estimate if finite and math.isfinite(estimate.half_width()) else None
    return found


def over_seeds(per_seed: list[dict]) -> tuple[dict, dict]:
    """Each metric's mean over the seeds and the half-width of its 95 % interval, from
    each seed's (1 + B,) array of a metric (None where the metric does not apply, e.g. ROC
    AUC without anomalies: then both are None, as they are for a non-finite result)."""
    found = estimates(per_seed)
    means = {key: None if e is None else e.mean for key, e in found.items()}
    return means, {key: None if e is None else e.half_width() for key, e in found.items()}


def to_arrays(table: dict[str, dict[str, Estimate | None]]) -> dict[str, np.ndarray]:
    """{variant: {metric: Estimate}} as flat arrays for an .npz, per variant
    `<variant>/metrics` (M,), `<variant>/seeds` (M, S) and `<variant>/resampled` (M, B),
    the metrics in sorted order and those without an Estimate left out."""
    arrays = {}
    for variant, row in table.items():
        names = sorted(key for key, estimate in row.items() if estimate is not None)
        arrays[f"{variant}/metrics"] = np.array(names, dtype=str)
        for part in ("seeds", "resampled"):
            rows = [getattr(row[key], part) for key in names]
            arrays[f"{variant}/{part}"] = np.stack(rows) if rows else np.empty((0, 0))
    return arrays


def from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Estimate]]:
    """The inverse of `to_arrays`."""
    variants = sorted(name.removesuffix("/metrics") for name in arrays if name.endswith("/metrics"))
    return {variant: {str(key): Estimate(arrays[f"{variant}/seeds"][i],
                                         arrays[f"{variant}/resampled"][i])
                      for i, key in enumerate(arrays[f"{variant}/metrics"])}
            for variant in variants}  # fmt: skip
