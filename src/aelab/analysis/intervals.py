"""95 % intervals for metrics measured over several seeds on one finite test set.

Two independent sources of noise move a metric:
- the seed (initial weights, batch order, noise, k-means' start): seen as the spread of
  the metric across the S seeds' networks;
- the test set (1,000 digits on the sample): seen as the spread of the seed-mean metric
  over bootstrap resamples of the test digits, the same resamples for every seed and
  variant.
Their standard uncertainties add in quadrature; the interval is the mean ± k u with k the
Student t quantile at the Welch–Satterthwaite degrees of freedom (the GUM's recipe: with
few seeds the seed term is itself uncertain, so k grows; without seed spread k = 1.96).
Pure functions, no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVEL = 0.95


def resamples(n: int, count: int, seed: int) -> np.ndarray:
    """(1 + count, n) weights: how many times each of n test digits is drawn. Row 0 is the
    test set itself (all ones), then `count` bootstrap resamples (n draws with replacement)."""
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, np.full(n, 1 / n), size=count)
    return np.vstack([np.ones((1, n)), drawn]).astype(np.float64)


def mean_and_half_width(values: np.ndarray) -> tuple[float, float]:
    """`values` (S seeds, 1 + B): each seed's metric on the test set (column 0) and on the
    B resamples. The mean over seeds and the half-width of its 95 % interval."""
    values = np.asarray(values, dtype=np.float64)
    seeds, on_test = len(values), values[:, 0]
    mean = float(on_test.mean())
    u_test = float(values[:, 1:].mean(axis=0).std(ddof=1))  # the seed-mean, resampled
    u_seed = float(on_test.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else 0.0
    u = math.hypot(u_test, u_seed)
    if u == 0:
        return mean, 0.0
    dof = math.inf if u_seed == 0 else u**4 * (seeds - 1) / u_seed**4
    return mean, float(stats.t.ppf((1 + LEVEL) / 2, dof) * u)


def over_seeds(per_seed: list[dict]) -> tuple[dict, dict]:
    """Each metric's mean over the seeds and the half-width of its 95 % interval, from
    each seed's (1 + B,) array of a metric (None where the metric does not apply, e.g. ROC
    AUC without anomalies: then both are None, as they are for a non-finite result)."""
    means, half_widths = {}, {}
    for key, first in per_seed[0].items():
        if first is None:
            means[key] = half_widths[key] = None
            continue
        mean, half = mean_and_half_width(np.stack([seed[key] for seed in per_seed]))
        finite = math.isfinite(mean) and math.isfinite(half)
        means[key], half_widths[key] = (mean, half) if finite else (None, None)
    return means, half_widths
