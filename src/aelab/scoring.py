"""`aelab score`: new images through the anomaly detector, one row each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from aelab import detector, paths
from aelab.images import read_inputs

COLUMNS = ("input", "score", "is_anomaly", "cluster")


def score(sources: list[str], model: str | None, resize: bool) -> pd.DataFrame:
    """Each image's input (path, or `file[i]` in an array), score, is_anomaly and cluster,
    by the workspace's detector or `model` (a detector folder or an MLflow model URI)."""
    inputs = read_inputs(sources, resize)  # bad input stops before the model loads
    answers = predictor(model)(inputs.images)
    return pd.DataFrame({"input": inputs.names, **{c: answers[c] for c in COLUMNS[1:]}})


def predictor(model: str | None) -> Callable[[np.ndarray], pd.DataFrame]:
    if model is None or (Path(model) / paths.DETECTOR_CONFIG).is_file():
        return detector.load(model or paths.DETECTOR_DIR).answers
    from aelab import tracking  # imports mlflow: only for an MLflow model

    return tracking.load_pyfunc(model).predict
