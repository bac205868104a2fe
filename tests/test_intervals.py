"""aelab.analysis.intervals: resampling weights, the 95 % interval, its two terms apart and
the paired difference, against cases by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis.intervals import (
    Estimate,
    difference,
    from_arrays,
    mean_and_half_width,
    over_seeds,
    resamples,
    to_arrays,
)
from aelab.analysis.ranking import leaders, paired_leaders


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


def test_the_seed_and_test_terms_kept_apart_rebuild_the_interval():
    # The three seeds of the case above: u_seed = 0.02/sqrt(3), u_test = 0.02/sqrt(2), dof 12.5.
    values = np.array([[0.80, 0.80, 0.82], [0.82, 0.80, 0.82], [0.84, 0.83, 0.85]])
    noise = Estimate.of(values).noise()
    assert noise["seeds"] == 3
    assert noise["seed"] == pytest.approx(0.02 / np.sqrt(3))
    assert noise["test"] == pytest.approx(0.02 / np.sqrt(2))
    assert noise["dof"] == pytest.approx(12.5)
    rebuilt = 2.16919 * np.hypot(noise["seed"], noise["test"])  # t(0.975, 12.5)
    assert rebuilt == pytest.approx(mean_and_half_width(values)[1], rel=1e-5)
    assert Estimate.of(np.array([[0.5, 0.4, 0.6]])).noise()["dof"] is None  # no seed spread


# Two variants on the same resamples: the test digits move both seed-means alike (+-0.05),
# so their own intervals are wide and overlap, while their difference hardly moves.
BETTER = Estimate(np.array([0.90, 0.92, 0.94]), np.array([0.87, 0.97]))  # seed sd 0.02
WORSE = Estimate(np.array([0.86, 0.87, 0.88]), np.array([0.82, 0.92]))  # seed sd 0.01


def test_the_paired_difference_of_two_variants_computed_by_hand():
    # Resampled differences 0.05 and 0.05: the test term is 0. Seed terms 0.02/sqrt(3) and
    # 0.01/sqrt(3): u^2 = 0.0005/3; Welch-Satterthwaite dof = (0.0005/3)^2 /
    # ((0.0004/3)^2/2 + (0.0001/3)^2/2) = 0.25/0.085 = 2.94118; t(0.975, 2.94118) = 3.218759.
    gap, half = difference(BETTER, WORSE, same_networks=False)
    assert gap == pytest.approx(0.05)
    assert half == pytest.approx(3.218759 * np.sqrt(0.0005 / 3), rel=1e-6)  # 0.04155


def test_the_unpaired_rule_calls_a_tie_where_the_paired_one_names_a_winner():
    # Alone: u = sqrt(0.0004/3 + 0.1^2/2) = 0.07165 (dof 2964.5) and sqrt(0.0001/3 + 0.005)
    # = 0.07095 (dof 45602): half-widths 0.1405 and 0.1391, far more than the 0.05 apart.
    column = {name: (e.mean, e.half_width()) for name, e in (("a", BETTER), ("b", WORSE))}
    assert column["a"][1] == pytest.approx(0.140483, rel=1e-4)
    assert column["b"][1] == pytest.approx(0.139055, rel=1e-4)
    assert leaders(column, higher=True) == ["a", "b"]
    paired = {"a": BETTER, "b": WORSE}
    means = {name: e.mean for name, e in paired.items()}

    def gap(first: str, second: str) -> tuple[float, float]:
        return difference(paired[first], paired[second], same_networks=False)

    assert paired_leaders(means, gap, higher=True) == ["a"]  # 0.05 > 0.0416
    assert paired_leaders(means, gap, higher=False) == ["b"]


def test_two_methods_of_one_variant_pair_over_the_seeds_too():
    # The same three networks: per-seed differences 0.02, 0.03, 0.01 (sd 0.01, u 0.01/sqrt(3),
    # 2 dof); resampled differences 0.02, 0.03 (u_test 0.01/sqrt(2)). As in the three-seed
    # case above: u^2 = 0.0001 * 5/6, dof 12.5, t = 2.16919.
    first = Estimate(np.array([0.90, 0.92, 0.94]), np.array([0.91, 0.93]))
    second = Estimate(np.array([0.88, 0.89, 0.93]), np.array([0.89, 0.90]))
    gap, half = difference(first, second, same_networks=True)
    assert gap == pytest.approx(0.02)
    assert half == pytest.approx(2.16919 * np.sqrt(0.0001 * 5 / 6), rel=1e-5)  # 0.0198
    # As two variants, the seeds' spreads add instead of cancelling: u_seed
    # sqrt(0.0004/3 + 0.0007/3) = 0.01915 alone, so the interval holds 0.
    unpaired_gap, unpaired_half = difference(first, second, same_networks=False)
    assert unpaired_gap == pytest.approx(0.02) and unpaired_half > 0.02


def test_one_seed_and_no_spread_leave_the_difference_exact():
    one = Estimate(np.array([0.5]), np.array([0.4, 0.6]))
    other = Estimate(np.array([0.3]), np.array([0.2, 0.4]))
    assert difference(one, other, same_networks=True) == pytest.approx((0.2, 0.0))
    assert difference(one, other, same_networks=False) == pytest.approx((0.2, 0.0))


def test_estimates_round_trip_through_flat_arrays():
    table = {"ae": {"auc": BETTER, "psnr": WORSE, "ap": None}, "pixels": {"auc": None}}
    arrays = to_arrays(table)
    assert list(arrays["ae/metrics"]) == ["auc", "psnr"]
    assert arrays["ae/seeds"].shape == (2, 3) and arrays["ae/resampled"].shape == (2, 2)
    back = from_arrays(arrays)
    assert set(back) == {"ae", "pixels"} and back["pixels"] == {}
    np.testing.assert_array_equal(back["ae"]["psnr"].seeds, WORSE.seeds)
    np.testing.assert_array_equal(back["ae"]["auc"].resampled, BETTER.resampled)
