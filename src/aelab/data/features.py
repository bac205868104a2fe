"""The features file of one trained network, data/features/<variant>/seed_<k>.npz: for the
train, val and test digits, the codes, the reconstruction errors, the labels and the
anomaly flags. extract@<variant> writes it (`save_features`); evaluate, detector and
figures read it (`load_features`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aelab.core.io import load_arrays, save_arrays
from aelab.core.paths import features_dir
from aelab.data.digits import SPLITS, SplitSet

COLUMNS = ("latent", "error", "label", "is_anomaly")
ARRAYS = tuple(f"{part}_{column}" for part in SPLITS for column in COLUMNS)


def save_features(
    path: str | Path, encoded: dict[str, dict[str, np.ndarray]], sets: dict[str, SplitSet]
) -> None:
    """`encoded[part]`: the codes (N, d) and reconstruction errors (N,) of `sets[part]`'s
    digits, for every part of SPLITS."""
    arrays = {}
    for part in SPLITS:
        arrays |= {f"{part}_latent": encoded[part]["latent"],
                   f"{part}_error": encoded[part]["error"],
                   f"{part}_label": sets[part].labels,
                   f"{part}_is_anomaly": sets[part].is_anomaly}  # fmt: skip
    save_arrays(path, arrays)


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """A features file: `<part>_<column>` for every part and column; missing or damaged,
    one error naming the stage that writes it."""
    variant = Path(path).parent.name  # data/features/<variant>/seed_<k>.npz
    fix = f"run `dvc repro -f extract@{variant}` (or `dvc checkout {features_dir(variant)}`)"
    return load_arrays(path, ARRAYS, fix=fix)
