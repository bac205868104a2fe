"""The tuner's trials in MLflow: one run per finished trial in the `aelab-tuning`
experiment, with the trial's values, its validation MSE, its training seconds and its curve
(the mean validation MSE per epoch, as the pruner saw it), so studies are compared in the
same UI as the pipeline."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from aelab.core.errors import AelabError
from aelab.tracking.store import describe_failure, experiment_id, tracking_uri
from aelab.tracking.urls import redacted

EXPERIMENT = "aelab-tuning"


class TrialLogger:
    """An Optuna callback: log each trial as it finishes, to the store of the project at
    `root`."""

    def __init__(self, root: Path, variant: str, storage: str):
        self.root, self.variant, self.storage = root, variant, storage
        self.uri = tracking_uri(root)
        self.client = MlflowClient(self.uri)
        self.experiment = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            self._log(study, trial)
        except AelabError:
            raise
        except Exception as error:  # MLflow, SQLAlchemy, HTTP: all mean "the store failed"
            raise AelabError(describe_failure(self.uri, error)) from None

    def _log(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.experiment is None:
            self.experiment = experiment_id(self.client, EXPERIMENT, self.uri, self.root)
        tags = {"aelab.variant": self.variant, "optuna.study": study.study_name,
                "optuna.storage": redacted(self.storage), "optuna.trial": str(trial.number),
                "optuna.state": trial.state.name}  # fmt: skip
        run = self.client.create_run(
            self.experiment, run_name=f"{self.variant} trial {trial.number}", tags=tags
        )
        start = int(trial.datetime_start.timestamp() * 1000)
        curve = [Metric("val_mse", value, start, step)
                 for step, value in sorted(trial.intermediate_values.items())]  # fmt: skip
        # Not pruned (Optuna gives a pruned trial its last reported value) nor diverged.
        finished = (trial.state == optuna.trial.TrialState.COMPLETE
                    and trial.value is not None and math.isfinite(trial.value))  # fmt: skip
        final = [Metric("best_val_mse", trial.value, start, 0),
                 Metric("train_seconds", trial.user_attrs["train_seconds"], start, 0)
                 ] if finished else []  # fmt: skip
        self.client.log_batch(
            run.info.run_id,
            metrics=curve + final,
            params=[Param(key, str(value)) for key, value in trial.params.items()],
            tags=[RunTag(f"aelab.{key}", str(value)) for key, value in trial.user_attrs.items()],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED" if finished else "KILLED")
