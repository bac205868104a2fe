"""What the generate stage drew, data/generated/: per variant and seed the classifier's
reading of each sampler's digits and of the interpolations (<variant>/seed_<k>.npz), and
the real digits' reading (real.npz). evaluate and figures read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aelab.core import paths
from aelab.core.io import load_arrays

REAL_ARRAYS = ("test_features", "val_features", "val_probabilities", "pairs")
INTERP_ARRAYS = ("interp_features", "interp_jump", "interp_paths")


def sampler_arrays(sampler: str) -> tuple[str, ...]:
    return tuple(f"{sampler}_{part}" for part in ("features", "probabilities", "images"))


def load_generated(
    root: Path, variant: str, seed_index: int, samplers: list[str]
) -> dict[str, np.ndarray]:
    wanted = (*INTERP_ARRAYS, *(name for s in samplers for name in sampler_arrays(s)))
    return load_arrays(root / paths.generated_file(variant, seed_index), wanted, fix=FIX)


def load_real(root: Path) -> dict[str, np.ndarray]:
    return load_arrays(root / paths.REAL_FEATURES, REAL_ARRAYS, fix=FIX)


FIX = f"run `dvc repro -f generate` (or `dvc checkout {paths.GENERATED_DIR}`)"
