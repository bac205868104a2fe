"""aelab.analysis.intervals: resampling weights and the 95 % interval, against cases by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis.intervals import mean_and_half_width, over_seeds, resamples


def test_resamples_start_with_the_test_set_and_draw_n_digits_each():
    weights = resamples(50, 30, seed=1)
    assert weights.shape == (31, 50)
    assert (weights[0] == 1).all()
    assert (weights.sum(axis=1) == 50).all()
    assert (weights[1:] != 1).any()
    assert np.array_equal(weights, resamples(50, 30, seed=1))  # seeded


def test_the_interval_of_three_seeds_computed_by_hand():
    # Seeds on the test set: 0.80, 0.82, 0.84 -> mean 0.82, sd 0.02, u_seed = 0.02/sqrt(3).
    # Seed means on two resamples: 0.81, 0.83 -> u_test = sd = 0.02/sqrt(2).
    # u^2 = 0.0004/3 + 0.0004/2 = 0.0004 * 5/6; Welch-Satterthwaite dof
    # = u^4 (3 - 1) / u_seed^4 = (5/6)^2 * 2 / (1/3)^2 = 12.5; t(0.975, 12.5) = 2.16919.
    values = np.array([[0.80, 0.80, 0.82], [0.82, 0.80, 0.82], [0.84, 0.83, 0.85]])
    mean, half = mean_and_half_width(values)
    assert mean == pytest.approx(0.82)
    assert half == pytest.approx(2.16919 * np.sqrt(0.0004 * 5 / 6), rel=1e-5)


def test_one_seed_leaves_the_test_set_term_at_196_standard_errors():
    values = np.array([[0.5, 0.4, 0.6]])  # resamples 0.4, 0.6: sd 0.141421
    mean, half = mean_and_half_width(values)
    assert (mean, half) == pytest.approx((0.5, 1.959964 * 0.141421), rel=1e-5)


def test_a_constant_metric_has_no_width():
    assert mean_and_half_width(np.full((3, 5), 24.5)) == (24.5, 0.0)


def test_the_mean_over_seeds_and_its_interval_widen_with_the_seed_spread():
    steady = [{"auc": np.array([0.8, 0.79, 0.81])}] * 3
    spread = [{"auc": np.array([v, v - 0.01, v + 0.01])} for v in (0.7, 0.8, 0.9)]
    (mean, half), (mean2, half2) = (
        (over_seeds(per_seed)[0]["auc"], over_seeds(per_seed)[1]["auc"])
        for per_seed in (steady, spread)
    )
    assert mean == pytest.approx(0.8) and mean2 == pytest.approx(0.8)
    assert half == pytest.approx(1.959964 * 0.0141421, rel=1e-4)  # the test set's term only
    assert half2 > 0.2  # t(2) x 0.1/sqrt(3) alone is 0.248
    assert over_seeds([{"roc_auc": None}]) == ({"roc_auc": None}, {"roc_auc": None})


def test_two_seeds_have_a_seed_term_with_one_degree_of_freedom():
    # Seeds 0.8 and 0.9, each the same on every resample: u_test = 0 (both resampled seed
    # means are 0.85), u_seed = sd(0.8, 0.9) / sqrt(2) = 0.05, dof = 1, t(0.975, 1) = 12.7062.
    values = np.array([[0.8, 0.8, 0.8], [0.9, 0.9, 0.9]])
    assert mean_and_half_width(values) == pytest.approx((0.85, 12.7062 * 0.05), rel=1e-5)


def test_a_standard_uncertainty_of_exactly_one_is_not_taken_for_none():
    # One seed, resamples 0, 1, 2: sd 1 = u, so the half-width is 1.96 x 1.
    assert mean_and_half_width(np.array([[1.0, 0.0, 1.0, 2.0]])) == pytest.approx((1.0, 1.959964))


def test_a_metric_that_does_not_apply_leaves_the_next_ones_in_place():
    per_seed = [{"roc_auc": None, "mse": np.array([1.0, 2.0, 3.0])}]
    means, half_widths = over_seeds(per_seed)
    assert means == {"roc_auc": None, "mse": 1.0}
    assert half_widths["roc_auc"] is None and half_widths["mse"] > 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(
    "per_seed",
    [
        [{"x": np.array([1.0, np.nan, 2.0])}, {"x": np.array([3.0, 1.0, 2.0])}],  # NaN width
        [{"x": np.array([np.inf, 1.0, 2.0])}, {"x": np.array([3.0, 1.0, 2.0])}],  # PSNR of 0
    ],
)
def test_a_non_finite_mean_or_half_width_gives_none_for_both(per_seed):
    assert over_seeds(per_seed) == ({"x": None}, {"x": None})
