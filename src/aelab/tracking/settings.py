"""MLflow's settings in aelab's processes, put in place by the entry points that log (the
`aelab` command and the log stage) before they import MLflow: importing aelab changes
nothing of the process. Imports nothing of MLflow: MLflow reads MLFLOW_DISABLE_TELEMETRY
as it loads."""

from __future__ import annotations

import logging
import os
import warnings

# A server that does not answer stops the step in about 25 s (3 tries x 7 s + back-off)
# instead of MLflow's minutes of retries. No telemetry.
MLFLOW_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "7",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # registration reads models back
}
# Loggers that report every migration and request at INFO: only their warnings show.
QUIETED_LOGGERS = ("mlflow", "alembic")
# MLflow's warning for every local dataset source, which the log step names itself.
DATASET_SOURCE_WARNING = "The specified dataset source can be interpreted"


def quiet_mlflow() -> None:
    """Put MLflow's settings into this process (a user's own environment wins), quiet its
    loggers and its dataset-source warning."""
    for name, value in MLFLOW_SETTINGS.items():
        os.environ.setdefault(name, value)
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=DATASET_SOURCE_WARNING)
