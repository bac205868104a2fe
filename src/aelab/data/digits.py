"""The one on-disk format of digits that every source produces and every stage reads."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import numpy as np

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import load_arrays, save_arrays

IMAGE_SHAPE = (28, 28)
INPUT_DIM = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]  # a flattened image: 784
SPLITS = ("train", "val", "test")  # the split stage's sets, data/split/<name>.npz


@dataclass(frozen=True)
class Digits:
    """Downloaded digits, as the source ships them."""

    images: np.ndarray  # (N, 28, 28) uint8, 0-255
    labels: np.ndarray  # (N,) uint8, 0-9
    origin: np.ndarray  # (N,) str: "train" or "test", the source's own split

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SplitSet:
    """One of train / val / test after the split."""

    images: np.ndarray  # (N, 28, 28) uint8, 0-255
    labels: np.ndarray  # (N,) uint8, 0-9
    is_anomaly: np.ndarray  # (N,) bool: digit not in split.normal_digits

    def __len__(self) -> int:
        return len(self.labels)


Dataset = TypeVar("Dataset", Digits, SplitSet)


def save(path: str | Path, dataset: Digits | SplitSet) -> None:
    """Write a dataset atomically; the same content always gives the same bytes."""
    save_arrays(path, {field.name: getattr(dataset, field.name) for field in fields(dataset)})


def load(path: str | Path, kind: type[Dataset], fix: str) -> Dataset:
    """Read a dataset written by `save`; a bad file is one AelabError ending with `fix`."""
    names = tuple(field.name for field in fields(kind))
    arrays = load_arrays(path, names, fix)
    dataset = kind(**{name: arrays[name] for name in names})
    problem = _shape_problem(dataset)
    if problem:
        raise AelabError(f"{path}: {problem}; {fix}")
    return dataset


def _shape_problem(dataset: Digits | SplitSet) -> str | None:
    n = len(dataset.labels)
    images = dataset.images
    if images.shape != (n, *IMAGE_SHAPE) or images.dtype != np.uint8:
        return f"images are {images.dtype} {images.shape}, expected uint8 ({n}, 28, 28)"
    if any(len(getattr(dataset, field.name)) != n for field in fields(dataset)):
        return "arrays have different lengths"
    return None


def load_split(root: Path, part: str) -> SplitSet:
    """One of the split stage's outputs in the project at `root`: "train", "val" or "test"."""
    path = paths.split_file(part)
    return load(root / path, SplitSet, fix=f"run `dvc repro -f split` (or `dvc checkout {path}`)")
