"""aelab.analysis.ranking: the best variant, and the tie rule of the summary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aelab.analysis.ranking import best_variant, leaders


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
