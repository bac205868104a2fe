"""MLflow, from one process: the log step mirrors the workspace into the tracking store.

`aelab log` (the pipeline's last DVC stage, or by hand) reads what the stages left in the
workspace (params, dvc.lock, metrics files, models, histories, figures) and gives the store
one run per variant and the pixel baseline in `tracking.experiment`, and one data run in
`tracking.data_experiment`. Stages never import this module.

Idempotent: each run is tagged with a content key, the sha256 of everything it carries but
provenance (commit, DVC experiment) and wall-clock timings. A finished run with the same key
means that content is in the store already; new content gets a new run. The keys are the
step's DVC output (reports/logged.json): deterministic, so dvc.lock stays clean, and absent
from a fresh clone, so its first `dvc repro` fills an empty store.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aelab import paths
from aelab.errors import AelabError
from aelab.io import file_sha256, save_json
from aelab.params import PIXELS, Params

# A server that does not answer stops the step in about 25 s (3 tries x 7 s + back-off)
# instead of MLflow's minutes of retries. A user's own settings win. No telemetry.
for _name, _value in {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "7",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}.items():
    os.environ.setdefault(_name, _value)

import mlflow  # noqa: E402  (after the settings above)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# The pickle format is chosen on purpose (see log_model): no warning for every model.
logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")

DISABLE = "AELAB_TRACKING"  # =off: the log step logs nothing
DB_FILE = "mlflow.db"
KEY, VARIANT, MODEL_URI, EXP_NAME = "aelab.key", "aelab.variant", "aelab.model_uri", "dvc.exp_name"
# Opens the experiment in the UI's model-training view (runs, models), not the GenAI one.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
DATA_RUN = "data"
SHOWN_SECTIONS = ("data", "split", "evaluate")  # params.yaml sections a variant run shows
BATCH = 1000  # MLflow's limit of metrics per log_batch


def project_root(cwd: Path | None = None) -> Path:
    """The project folder, also from inside a `dvc exp run --queue` copy
    (`<project>/.dvc/tmp/exps/<tmp>/`, deleted once the experiment ends)."""
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI, a relative SQLite path taken from the project root; by default
    an SQLite store in the project folder."""
    root = root or project_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / DB_FILE}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{root / uri.removeprefix('sqlite:///')}"
    return uri


def tracking_enabled() -> bool:
    return os.environ.get(DISABLE, "on").lower() not in ("off", "0", "false", "no")


CONTENT_FIELDS = ("experiment", "name", "params", "metrics", "tags", "history")


@dataclass
class RunContent:
    """Everything one run carries; `key()` hashes all of it but `timings`."""

    experiment: str
    name: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    tags: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    datasets: dict[str, Path] = field(default_factory=dict)  # context -> aelab .npz
    figures: list[Path] = field(default_factory=list)
    model: Path | None = None  # a checkpoint folder
    timings: dict[str, float] = field(default_factory=dict)

    def key(self) -> str:
        """sha256 of the content: the fields, and the bytes of the files it logs."""
        files = [*self.datasets.values(), *self.figures]
        if self.model is not None:
            files.append(self.model / paths.CONFIG)  # holds the weights' sha256
        content = {
            **{name: getattr(self, name) for name in CONTENT_FIELDS},
            "datasets": sorted(self.datasets),
            "files": {str(f): file_sha256(f) for f in files},
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


# What the workspace holds: pure reads, no MLflow.


def workspace_runs(params: Params) -> list[RunContent]:
    """The runs that reflect the workspace: each variant, the pixel baseline, the data."""
    evaluation = _read_json(paths.METRICS, "evaluate")
    missing = [name for name in [*params.variants, PIXELS] if name not in evaluation]
    if missing:
        raise AelabError(f"{paths.METRICS} has no metrics of {missing}; run `dvc repro evaluate`")
    data_tags = {
        "data.source": params.data.source,
        "data.sha256": file_sha256(paths.split_file("train")),
    }
    runs = [_variant_run(params, name, evaluation[name], data_tags) for name in params.variants]
    pixels = RunContent(
        params.tracking.experiment,
        PIXELS,
        params={"kind": PIXELS, **_sections(params, *SHOWN_SECTIONS)},
        metrics=evaluation[PIXELS],
        tags={**data_tags, VARIANT: PIXELS},
        datasets={"evaluation": paths.split_file("test")},
    )
    return [*runs, pixels, _data_run(params)]


def _variant_run(params: Params, name: str, evaluation: dict, data_tags: dict) -> RunContent:
    model = paths.model_dir(name)
    trained = _read_json(paths.train_report(name), f"train@{name}")
    history = _read_history(model / paths.HISTORY, name)
    return RunContent(
        params.tracking.experiment,
        name,
        params={**params.variant(name).model_dump(), **_sections(params, *SHOWN_SECTIONS)},
        metrics={**trained, **evaluation},
        tags={**data_tags, VARIANT: name},
        history=history,
        datasets={"training": paths.split_file("train"), "evaluation": paths.split_file("test")},
        figures=[f for f in paths.figures_of(name, params.variants) if f.is_file()],
        model=model,
        timings=_read_timings(name),
    )


def _data_run(params: Params) -> RunContent:
    stats = _read_json(paths.SPLIT_STATS, "split")
    files = {part: paths.split_file(part) for part in ("train", "val", "test")}
    checksums = {f"sha256.{part}": file_sha256(path) for part, path in files.items()}
    return RunContent(
        params.tracking.data_experiment,
        DATA_RUN,
        params=_sections(params, "data", "split"),
        metrics=_flatten(stats),
        tags={**checksums, "sha256.raw": file_sha256(paths.RAW_DIGITS)},
        datasets={"training": files["train"], "validation": files["val"], "testing": files["test"]},
    )


def _sections(params: Params, *sections: str) -> dict[str, Any]:
    """The seed and the given params.yaml sections, as `section.key` params of a run."""
    flat: dict[str, Any] = {"seed": params.seed}
    for section in sections:
        for key, value in getattr(params, section).model_dump().items():
            flat[f"{section}.{key}"] = value
    return flat


def _flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"size": 9}} -> {"train_size": 9}: nested figures as metric names."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        flat |= _flatten(value, f"{name}_") if isinstance(value, dict) else {name: value}
    return flat


def _read_json(path: Path, stage: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run `dvc repro {stage}` first") from None
    except ValueError as error:
        raise AelabError(f"{path}: not valid JSON ({error}); run `dvc repro -f {stage}`") from None


def _read_history(path: Path, name: str) -> list[dict[str, float]]:
    if not path.is_file():
        raise AelabError(f"{path}: file not found; run `dvc repro train@{name}` first")
    table = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return [{column: float(row[column]) for column in table.dtype.names} for row in table]


def _read_timings(name: str) -> dict[str, float]:
    try:
        return json.loads(paths.timing_file(name).read_text())
    except (OSError, ValueError):  # not there (another machine trained it) or damaged
        return {}


def dvc_output_hashes(lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """The md5 dvc.lock records for each output: how to find it in DVC's cache."""
    try:
        stages = yaml.load(lock.read_text(), Loader=yaml.CSafeLoader)["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


# The store.


def log_workspace(params: Params) -> dict[str, str]:
    """Make the store reflect the workspace; write and return the content keys."""
    runs = workspace_runs(params)
    keys = {f"{run.experiment}/{run.name}": run.key() for run in runs}
    if not tracking_enabled():
        print(f"log: {DISABLE}=off, nothing logged; `aelab log` logs this workspace later")
    else:
        uri = tracking_uri()
        try:
            with _store_lock(uri):
                new = _log_runs(uri, runs, keys)
        except AelabError:
            raise
        except Exception as error:  # MLflow, SQLAlchemy, HTTP: all mean "the store failed"
            raise AelabError(describe_failure(uri, error)) from None
        print(f"log: {len(new)} new run(s) in {uri}, {len(runs) - len(new)} already there"
              + (f": {', '.join(new)}" if new else ""))  # fmt: skip
    save_json(paths.LOGGED, keys)
    return keys


def _log_runs(uri: str, runs: list[RunContent], keys: dict[str, str]) -> list[str]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiments = {name: _experiment_id(client, name, uri) for name in {r.experiment for r in runs}}
    provenance = _provenance_tags()
    lock_hashes = dvc_output_hashes()
    new = []
    for run in runs:
        key, experiment_id = keys[f"{run.experiment}/{run.name}"], experiments[run.experiment]
        if _finished_run_with_key(client, experiment_id, key):
            continue
        tags = {**provenance, **run.tags, KEY: key}
        if str(run.model) in lock_hashes:
            tags["dvc.md5.model"] = lock_hashes[str(run.model)]
        _log_run(client, experiment_id, run, tags)
        new.append(run.name)
    return new


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created with its artifacts under the project's mlartifacts/
    unless a server keeps artifacts itself."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise AelabError(
            f"MLflow experiment {name!r} at {uri} is deleted; restore it with `mlflow "
            f"experiments restore --experiment-id {found.experiment_id}` or set another "
            f"name in params.yaml's `tracking:`"
        )
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND[0]) is None:
            client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
        return found.experiment_id
    location = None
    if not uri.startswith(("http://", "https://", "databricks")):
        location = (project_root() / "mlartifacts" / name).as_uri()
    return client.create_experiment(name, location, tags=dict([EXPERIMENT_KIND]))


def _finished_run_with_key(client: MlflowClient, experiment_id: str, key: str) -> bool:
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{KEY}` = '{key}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return bool(found)


def _provenance_tags() -> dict[str, str]:
    """Where the content came from: the git commit and the DVC experiment, if any."""
    tags = {}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:
        tags[MLFLOW_GIT_COMMIT] = commit.stdout.strip()
    if os.environ.get("DVC_EXP_NAME"):
        tags[EXP_NAME] = os.environ["DVC_EXP_NAME"]
    return tags


def _log_run(client: MlflowClient, experiment_id: str, run: RunContent, tags: dict) -> None:
    """One run: params, tags, model, metrics and histories, datasets, figures. FINISHED only
    when all of it is in; a failure marks it FAILED."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=run.name, tags=tags) as active:
        run_id = active.info.run_id
        client.log_batch(run_id, params=[Param(k, _text(v)) for k, v in run.params.items()])
        if run.model is not None:
            log_model(run.model, run.name)
        _log_metrics(client, run_id, run)
        for context, path in run.datasets.items():
            _log_dataset(path, f"{run.experiment}-{path.stem}", context)
        for figure in run.figures:
            mlflow.log_artifact(str(figure), artifact_path="figures")


def _log_metrics(client: MlflowClient, run_id: str, run: RunContent) -> None:
    """One value per metric (None, e.g. ROC AUC without anomalies, is left out), the
    per-epoch histories with the epoch as the step, and the timings."""
    now = int(time.time() * 1000)
    single = {**run.metrics, **run.timings}
    metrics = [Metric(k, float(v), now, 0) for k, v in single.items() if v is not None]
    metrics += [
        Metric(name, float(value), now, int(row["epoch"]))
        for row in run.history
        for name, value in row.items()
        if name != "epoch"
    ]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def _log_dataset(path: Path, name: str, context: str) -> None:
    """The digits of an aelab .npz (images, labels) as a dataset input of the active run."""
    with np.load(path) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    dataset = mlflow.data.from_numpy(
        images.reshape(len(images), -1), source=str(path.resolve()), targets=labels,
        name=name, digest=file_sha256(path)[:8],
    )  # fmt: skip
    mlflow.log_input(dataset, context=context)


def log_model(checkpoint: Path, name: str) -> str:
    """The trained variant `name`, in the active run, as an MLflow PyTorch model that maps
    images (N, 784) in [0, 1] to codes; its URI (models:/m-...)."""
    import mlflow.pytorch  # imports torch: only when there is a model to log
    import torch
    from mlflow.models import infer_signature

    import aelab
    from aelab.checkpoints import load_checkpoint
    from aelab.models import Encoder

    encoder = Encoder(load_checkpoint(checkpoint)).eval()
    with np.load(paths.split_file("val")) as arrays:  # two real digits as the input example
        example = arrays["images"][:2].reshape(2, -1).astype(np.float32) / 255
    with torch.no_grad():
        codes = encoder(torch.from_numpy(example)).numpy()
    info = mlflow.pytorch.log_model(
        encoder,
        name=name,
        signature=infer_signature(example, codes),
        input_example=example,
        # Pickled modules load in a second, torch.export's format takes seconds to write;
        # the aelab code travels with the model so it loads anywhere.
        serialization_format="pickle",
        code_paths=[str(Path(aelab.__file__).parent)],
        pip_requirements=_requirements(),
    )
    mlflow.set_tag(MODEL_URI, info.model_uri)
    return info.model_uri


def _requirements() -> list[str]:
    """What loading a logged model needs, pinned to what trained it."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """One log step at a time per SQLite store (queued experiments finish together): SQLite
    has one writer, and MLflow's first use of a new file creates its tables."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///").split("?")[0])
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        database.touch()  # an empty file is an empty SQLite database
    except OSError as error:
        raise AelabError(describe_failure(uri, error)) from None
    with open(database, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a BSD lock: SQLite's own locks are POSIX ones
        yield


def describe_failure(uri: str, error: BaseException) -> str:
    """One line naming the store and what went wrong."""
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
        f"MLFLOW_TRACKING_URI, then run `aelab log` (or set {DISABLE}=off to skip logging)"
    )
