"""The split's invariants, on the real sample and on an MNIST-like source with a test split."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.core.errors import AelabError
from aelab.core.params import SplitParams
from aelab.data.digits import Digits
from aelab.data.sources import load_sample
from aelab.data.split import split_digits, split_stats

PARAMS = SplitParams(normal_digits=[0, 1, 2, 3, 4], val_fraction=0.1, test_fraction=0.2)


def numbered(digits: Digits) -> Digits:
    """The same digits with each image's index written into its first two pixels, so that
    every image is unique and traceable back to its row."""
    images = digits.images.copy()
    index = np.arange(len(digits))
    images[:, 0, 0], images[:, 0, 1] = index % 256, index // 256
    return Digits(images, digits.labels, digits.origin)


def rows(subset) -> set[int]:
    return set((subset.images[:, 0, 0] + 256 * subset.images[:, 0, 1].astype(int)).tolist())


@pytest.fixture(scope="module")
def sample() -> Digits:
    return numbered(load_sample())


def test_sets_are_disjoint_and_cover_the_normal_pool(sample):
    sets = split_digits(sample, PARAMS, seed=0)
    train, val, test = (rows(sets[name]) for name in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    normal_outside_test = {i for i in range(len(sample)) if sample.labels[i] <= 4 and i not in test}
    assert train | val == normal_outside_test


def test_train_and_val_hold_only_normal_digits_test_holds_all(sample):
    sets = split_digits(sample, PARAMS, seed=0)
    for name in ("train", "val"):
        assert set(sets[name].labels.tolist()) == {0, 1, 2, 3, 4}
        assert not sets[name].is_anomaly.any()
    test = sets["test"]
    assert set(test.labels.tolist()) == set(range(10))
    np.testing.assert_array_equal(test.is_anomaly, test.labels >= 5)


def test_split_is_stratified(sample):
    stats = split_stats(split_digits(sample, PARAMS, seed=0))
    assert stats["test"]["digits"] == {str(d): 100 for d in range(10)}
    assert stats["val"]["digits"] == {
        **{str(d): 40 for d in range(5)},
        **{str(d): 0 for d in range(5, 10)},
    }
    assert (stats["train"]["size"], stats["val"]["size"], stats["test"]["size"]) == (
        1800,
        200,
        1000,
    )
    assert stats["test"]["anomalies"] == 500


def test_same_seed_same_split_other_seed_other_split(sample):
    first, again, other = (split_digits(sample, PARAMS, seed) for seed in (7, 7, 8))
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(first[name].images, again[name].images)
    assert rows(first["test"]) != rows(other["test"])
    assert rows(first["val"]) != rows(other["val"])


def test_mnist_like_source_keeps_its_own_test_split(sample):
    origin = np.where(np.arange(len(sample)) % 5 == 0, "test", "train")
    mnist_like = Digits(sample.images, sample.labels, origin)
    sets = split_digits(mnist_like, PARAMS, seed=0)
    assert rows(sets["test"]) == set(np.flatnonzero(origin == "test").tolist())
    assert all(origin[i] == "train" for i in rows(sets["train"]) | rows(sets["val"]))


def test_all_ten_digits_normal_means_no_anomalies(sample):
    params = PARAMS.model_copy(update={"normal_digits": list(range(10))})
    sets = split_digits(sample, params, seed=0)
    assert not any(subset.is_anomaly.any() for subset in sets.values())
    assert set(sets["train"].labels.tolist()) == set(range(10))


def test_digit_too_rare_to_stratify_names_the_key(sample):
    labels = np.array([0] * 10 + [1] + [0], dtype=np.uint8)  # a single "1" in the pool
    origin = np.array(["train"] * 11 + ["test"])
    few = Digits(sample.images[:12], labels, origin)
    params = PARAMS.model_copy(update={"normal_digits": [0, 1]})
    with pytest.raises(AelabError, match=r"split\.val_fraction = 0\.1: cannot split 11 digits"):
        split_digits(few, params, seed=0)
