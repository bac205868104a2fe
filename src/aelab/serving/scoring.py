"""`aelab score`: new images through an anomaly detector, one row each."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from aelab.serving.images import read_inputs

COLUMNS = ("input", "score", "is_anomaly", "cluster")
Predict = Callable[[np.ndarray], pd.DataFrame]  # images (N, 784) -> a row of answers each


def score(sources: list[str], load_predictor: Callable[[], Predict], resize: bool) -> pd.DataFrame:
    """Each image's input (path, or `file[i]` in an array), score, is_anomaly and cluster,
    by the detector `load_predictor` loads (aelab.cli: the workspace's, a detector folder
    or an MLflow model). Bad input stops before the model loads."""
    inputs = read_inputs(sources, resize)
    answers = load_predictor()(inputs.images)
    return pd.DataFrame({"input": inputs.names, **{c: answers[c] for c in COLUMNS[1:]}})
