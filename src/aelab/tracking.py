"""MLflow: runs, tags, models and datasets, run by the logging service of aelab.tracker.

One run per variant: its train stage creates it; its extract stage, the evaluate and the
figures stages continue it. Stage outputs carry no run id (that would make the model files
differ on every run, and DVC hash them); a run is found again by the sha256 of the model's
weights, kept in its tag `aelab.key`. When no run in the store has that key (the model came
from another machine's DVC cache, or mlflow.db was deleted), the stage starts a new run for
the variant, tagged `aelab.restored=true`, and carries on.

Each public function below is a call a stage can make: `tracker.call("log_metrics", ...)`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

# Bound MLflow's HTTP retries (7 retries with growing back-off: minutes) so that a server
# that does not answer stops the stage in about 25 s: 3 tries x 7 s + 1 s and 2 s back-off
# (+ up to 1 s jitter each). MLflow reads these when it starts; a user's own settings win.
# No telemetry from a pipeline run.
for _name, _value in {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "7",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}.items():
    os.environ.setdefault(_name, _value)

import mlflow  # noqa: E402  (after the settings above)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag  # noqa: E402
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_GIT_COMMIT  # noqa: E402

from aelab.errors import AelabError  # noqa: E402
from aelab.io import file_sha256  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# The pickle format is chosen on purpose (see log_model): no warning for every model.
logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
# MLflow registers its local-file dataset source twice and warns that a path is ambiguous.
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")

KEY, VARIANT, RESTORED = "aelab.key", "aelab.variant", "aelab.restored"
MODEL_URI = "aelab.model_uri"
EXP_NAME = "dvc.exp_name"
# MLflow's SQL store looks a dataset up, then inserts it: two stages logging the same data at
# once (queued experiments) both insert, and one fails on the unique key. One at a time.
_NEW_DATASETS = threading.Lock()


class Store:
    """The service's one connection to the tracking store, shared by every stage."""

    def __init__(self, uri: str):
        self.uri = uri
        mlflow.set_tracking_uri(uri)  # for mlflow.pytorch.log_model, which uses the global one
        self.client = MlflowClient(uri)
        self.client.search_experiments(max_results=1)  # fails here if the store does not answer
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()
        self._file = _sqlite_file_id(uri)
        # Logging a model first imports torch and scans every installed package (MLflow
        # checks the pip requirements): seconds, spent once and in the background.
        self.warm_up = threading.Thread(target=_warm_up_model_logging, daemon=True)
        self.warm_up.start()

    def is_stale(self) -> bool:
        """True when the SQLite file was deleted or replaced since it was opened: the open
        connections would go on writing into the deleted file."""
        return self._file is not None and _sqlite_file_id(self.uri) != self._file

    def experiment_id(self, name: str, root: Path) -> str:
        with self._lock:
            if name not in self._experiments:
                self._experiments[name] = self._get_or_create(name, root)
            return self._experiments[name]

    def _get_or_create(self, name: str, root: Path) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if not self.uri.startswith(("http://", "https://", "databricks")):
            # Without a server, MLflow puts artifacts under the current folder: in a queued
            # experiment that is a temporary copy. Keep them beside the store instead.
            location = (root / "mlartifacts" / name).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # another service created it meanwhile
            return self.client.get_experiment_by_name(name).experiment_id


def _sqlite_file_id(uri: str) -> tuple[int, int] | None:
    if not uri.startswith("sqlite:///"):
        return None
    try:
        stat = os.stat(uri.removeprefix("sqlite:///").split("?")[0])
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_dev, stat.st_ino)


class Session:
    """One connected stage: its experiment, where it runs, and the runs it started."""

    def __init__(self, store: Store, experiment: str, stage: str, root: str, cwd: str,
                 exp_name: str | None, git_commit: str | None):  # fmt: skip
        self.store, self.client, self.stage = store, store.client, stage
        self.root, self.cwd = Path(root), Path(cwd)
        self.experiment_id = store.experiment_id(experiment, self.root)
        self.exp_name, self.git_commit = exp_name, git_commit
        self.started: list[str] = []

    def common_tags(self) -> dict[str, str]:
        """Where this stage's part of a run came from."""
        tags = {f"dvc.stage.{self.stage.split('@')[0]}": self.stage}
        if self.git_commit:
            tags[MLFLOW_GIT_COMMIT] = self.git_commit
        if self.exp_name:
            tags[EXP_NAME] = self.exp_name
        return tags

    def path(self, path: str) -> Path:
        """A path the stage gave, relative to its own folder (not the service's)."""
        return self.cwd / path

    def fail_unfinished(self) -> None:
        for run_id in self.started:
            self.client.set_terminated(run_id, "FAILED")
        self.started.clear()


def _warm_up_model_logging() -> None:
    import mlflow.pytorch
    import torch

    with tempfile.TemporaryDirectory() as folder:
        mlflow.pytorch.save_model(
            torch.nn.Identity(),
            f"{folder}/model",
            serialization_format="pickle",
            pip_requirements=_requirements(),
        )


def _requirements() -> list[str]:
    """What loading a logged model needs, pinned to what trained it."""
    import numpy as np
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]


# The calls a stage can make. Each takes the session first, then JSON-able arguments.


def start_run(
    session: Session,
    name: str,
    params: dict[str, Any],
    tags: dict[str, str] | None = None,
    variant: bool = True,
) -> str:
    """A new run named `name` (a variant or baseline; else a data stage), with its params
    and tags."""
    all_tags = {**session.common_tags(), **({VARIANT: name} if variant else {}), **(tags or {})}
    run = session.client.create_run(session.experiment_id, run_name=name, tags=all_tags)
    session.started.append(run.info.run_id)
    session.client.log_batch(
        run.info.run_id, params=[Param(k, _param_text(v)) for k, v in params.items()]
    )
    return run.info.run_id


def find_run(
    session: Session,
    name: str,
    key: str,
    params: dict[str, Any],
    tags: dict[str, str],
    restored: bool = True,
) -> str:
    """The newest run of variant `name` whose key is `key` (in this DVC experiment, if any);
    else a new run, tagged restored unless `restored` is False (the pixel baseline's run
    is always created here)."""
    found = session.client.search_runs(
        [session.experiment_id],
        filter_string=f"tags.`{VARIANT}` = '{name}' and tags.`{KEY}` = '{key}'",
        order_by=["attributes.start_time DESC"],
    )
    for run in found:
        if run.data.tags.get(EXP_NAME) == session.exp_name:
            session.client.log_batch(
                run.info.run_id, tags=[RunTag(k, v) for k, v in session.common_tags().items()]
            )
            return run.info.run_id
    return start_run(
        session, name, params, {**tags, KEY: key, **({RESTORED: "true"} if restored else {})}
    )


def set_key(session: Session, run_id: str, key: str) -> None:
    """The sha256 by which later stages find this run (see the module's docstring)."""
    session.client.set_tag(run_id, KEY, key)


def set_tags(session: Session, run_id: str, tags: dict[str, str]) -> None:
    session.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def log_history(session: Session, run_id: str, history: list[dict[str, float]]) -> None:
    """Per-epoch losses as metric histories, the epoch as the step."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, int(row["epoch"]))
        for row in history
        for name, value in row.items()
        if name != "epoch"
    ]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        session.client.log_batch(run_id, metrics=metrics[start : start + 1000])


def log_metrics(
    session: Session, run_id: str, metrics: dict[str, float | None], only_missing: bool = False
) -> None:
    """One value per metric (None, e.g. ROC AUC without anomalies, is left out); with
    `only_missing`, just those the run does not have yet."""
    have = session.client.get_run(run_id).data.metrics if only_missing else {}
    now = int(time.time() * 1000)
    batch = [
        Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and k not in have
    ]
    session.client.log_batch(run_id, metrics=batch)


def log_dataset(session: Session, run_id: str, path: str, name: str, context: str) -> None:
    """The digits of an aelab .npz (images, labels) as a dataset input of the run."""
    import numpy as np

    with np.load(session.path(path)) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    dataset = mlflow.data.from_numpy(
        images.reshape(len(images), -1), source=str(session.path(path)), targets=labels,
        name=name, digest=file_sha256(session.path(path))[:8],
    )  # fmt: skip
    entity = DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
    with _NEW_DATASETS:
        session.client.log_inputs(run_id, datasets=[entity])


def log_model(session: Session, run_id: str, checkpoint: str, examples: str) -> str:
    """The trained variant as an MLflow PyTorch model that maps images to latent codes."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    import aelab
    from aelab.checkpoints import load_checkpoint
    from aelab.models import Encoder

    session.store.warm_up.join()
    encoder = Encoder(load_checkpoint(session.path(checkpoint))).eval()
    with np.load(
        session.path(examples)
    ) as arrays:  # two real digits of an aelab .npz as the input example
        example = arrays["images"][:2].reshape(2, -1).astype(np.float32) / 255
    with torch.no_grad():
        codes = encoder(torch.from_numpy(example)).numpy()
    info = mlflow.pytorch.log_model(
        encoder,
        name="model",
        run_id=run_id,
        signature=infer_signature(example, codes),
        input_example=example,
        # Pickled modules load in a second, torch.export's format takes seconds to write;
        # the aelab code travels with the model so it loads anywhere.
        serialization_format="pickle",
        code_paths=[str(Path(aelab.__file__).parent)],
        pip_requirements=_requirements(),
    )
    session.client.set_tag(run_id, MODEL_URI, info.model_uri)
    return info.model_uri


def log_artifacts(session: Session, run_id: str, paths: list[str], folder: str) -> None:
    for path in paths:
        session.client.log_artifact(run_id, str(session.path(path)), artifact_path=folder)


def finish(session: Session) -> None:
    """The stage succeeded: its new runs are FINISHED."""
    for run_id in session.started:
        session.client.set_terminated(run_id, "FINISHED")
    session.started.clear()


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


COMMANDS = {
    f.__name__: f
    for f in (start_run, find_run, set_key, set_tags, log_history, log_metrics, log_dataset,
              log_model, log_artifacts, finish)
}  # fmt: skip


def describe_failure(uri: str, error: BaseException) -> str:
    """One line naming the store and what went wrong."""
    if isinstance(error, AelabError):  # a bad file the stage handed over: its own message
        return str(error)
    reason = " ".join(str(error).split())
    tries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
    timeout = os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    if "timed out" in reason:  # MLflow's own text buries this under the retry report
        reason = f"no answer: timed out {tries} times after {timeout} s"
    elif "Connection refused" in reason:
        reason = f"connection refused ({tries} tries)"
    else:
        reason = f"{type(error).__name__}: {reason[:300]}{'...' if len(reason) > 300 else ''}"
    return (
        f"MLflow tracking at {uri} failed: {reason}. Start the tracking server or fix "
        f"MLFLOW_TRACKING_URI (or set AELAB_TRACKING=off to run untracked)"
    )
