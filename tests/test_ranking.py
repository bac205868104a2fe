"""aelab.analysis.ranking: the best variant, and the tie rules (independent and paired)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aelab.analysis.ranking import best_variant, leaders, paired_leaders


def test_best_variant_is_the_highest_mean_and_none_without_the_metric():
    results = {"a": {"auc": 0.8}, "b": {"auc": 0.9}, "c": {"auc": None}, "pixels": {"auc": 1}}
    assert best_variant(results, "auc", ["a", "b", "c"]) == "b"
    assert best_variant(results, "auc") == "pixels"
    assert best_variant({"a": {"auc": None}}, "auc") is None


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3),
                       st.none() | st.floats(-10, 10), min_size=1))  # fmt: skip
def test_best_variant_has_the_highest_mean_whatever_the_names(means):
    results = {name: {"auc": mean} for name, mean in means.items()}
    scored = [mean for mean in means.values() if mean is not None]
    best = best_variant(results, "auc")
    if not scored:
        assert best is None
    else:
        assert means[best] == max(scored)


def test_a_winner_is_named_only_when_its_interval_clears_the_runner_ups():
    assert leaders({"a": (0.90, 0.01), "b": (0.85, 0.01), "c": (0.5, 0.1)}, True) == ["a"]
    # b's interval [0.87, 0.91] overlaps a's [0.89, 0.91]: a tie; c is clear of a
    assert leaders({"a": (0.90, 0.01), "b": (0.89, 0.02), "c": (0.5, 0.1)}, True) == ["a", "b"]
    # lower is better: the smallest mean leads
    assert leaders({"a": (0.02, 0.001), "b": (0.01, 0.001)}, False) == ["b"]


def test_intervals_that_just_touch_are_a_tie():
    # a: [0.75, 1.25], b: [0.25, 0.75] share 0.75 (exact in binary floating point)
    assert leaders({"b": (0.5, 0.25), "a": (1.0, 0.25)}, True) == ["a", "b"]
    assert leaders({"b": (0.5, 0.25), "a": (1.0, 0.25)}, False) == ["b", "a"]


def test_paired_leaders_keep_every_entry_whose_difference_from_the_best_may_be_zero():
    means = {"a": 0.90, "b": 0.88, "c": 0.85, "d": 0.80}
    # b is close but told apart (its difference is sharp); c is further yet noisier: a tie
    halves = {"b": 0.01, "c": 0.06, "d": 0.10}

    def gap(first: str, second: str) -> tuple[float, float]:
        assert second == "a"  # every entry is judged against the best
        return means[first] - means[second], halves[first]

    assert paired_leaders(means, gap, higher=True) == ["a", "c", "d"]
    halves["d"] = 0.09  # 0.10 apart: clear
    assert paired_leaders(means, gap, higher=True) == ["a", "c"]
    assert paired_leaders({"a": 0.5}, gap, higher=True) == ["a"]
