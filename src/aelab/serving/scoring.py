"""`aelab score`: new images through an anomaly detector, one row each."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import numpy as np
import pandas as pd

from aelab.serving.images import read_inputs

COLUMNS = ("input", "score", "is_anomaly", "cluster")
Predict = Callable[[np.ndarray], pd.DataFrame]  # images (N, 784) -> a row of answers each
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MiB and more: mapped, and unmapped when freed


def score(sources: list[str], load_predictor: Callable[[], Predict], resize: bool) -> pd.DataFrame:
    """Each image's input (path, or `file[i]` in an array), score, is_anomaly and cluster,
    by the detector `load_predictor` loads (aelab.cli: the workspace's, a detector folder
    or an MLflow model). Bad input stops before the model loads."""
    hold_the_mmap_threshold()
    inputs = read_inputs(sources, resize)
    answers = load_predictor()(inputs.images)
    return pd.DataFrame({"input": inputs.names, **{c: answers[c] for c in COLUMNS[1:]}})


def hold_the_mmap_threshold() -> None:
    """glibc's malloc raises its mmap threshold (up to 32 MiB) each time a mapped block is
    freed; the network's per-batch arrays (13 MB each) then come from the heap, whose freed
    holes it keeps: scoring 100,000 digits kept 0 to 600 MB more, varying from run to run.
    A fixed threshold keeps them mapped, and returned when freed. Not glibc: nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError, TypeError):  # no C library found, or no mallopt in it
        pass
