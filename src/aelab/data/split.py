"""Split downloaded digits into train / val (normal digits only) and test (all digits)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from aelab.core.errors import AelabError
from aelab.core.params import SplitParams
from aelab.data.digits import SPLITS, Digits, SplitSet


def split_digits(digits: Digits, params: SplitParams, seed: int) -> dict[str, SplitSet]:
    """Seeded, stratified split.

    The test set is the source's own test split when it has one (MNIST-like sources) and
    otherwise a stratified `test_fraction` hold-out of all ten digits (the sample). Of the
    remaining digits only the normal ones are kept, and `val_fraction` of them (stratified)
    become the validation set.
    """
    index = np.arange(len(digits))
    from_test = digits.origin == "test"
    if from_test.any():
        pool, test = index[~from_test], index[from_test]
    else:
        pool, test = _stratified(
            index, digits.labels, params.test_fraction, seed, "split.test_fraction"
        )
    normal = pool[np.isin(digits.labels[pool], params.normal_digits)]
    train, val = _stratified(normal, digits.labels, params.val_fraction, seed, "split.val_fraction")
    is_anomaly = ~np.isin(digits.labels, params.normal_digits)
    return {
        name: SplitSet(digits.images[rows], digits.labels[rows], is_anomaly[rows])
        for name, rows in zip(SPLITS, (train, val, test), strict=True)
    }


def _stratified(
    rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` into (kept, held out) with every digit in the same proportion; sorted."""
    try:
        kept, held_out = train_test_split(
            rows, test_size=fraction, stratify=labels[rows], random_state=seed
        )
    except ValueError as error:  # too few digits for this fraction
        raise AelabError(f"{key} = {fraction}: cannot split {len(rows)} digits ({error})") from None
    return np.sort(kept), np.sort(held_out)


def split_stats(sets: dict[str, SplitSet]) -> dict:
    """Sizes, anomaly counts and per-digit counts of each set (the stage's DVC metrics)."""
    return {
        name: {
            "size": len(subset),
            "anomalies": int(subset.is_anomaly.sum()),
            "digits": {
                str(d): int(n) for d, n in enumerate(np.bincount(subset.labels, minlength=10))
            },
        }
        for name, subset in sets.items()
    }
