"""MLflow, from one process: the log step mirrors the workspace into the tracking store.

`aelab log` (the pipeline's last DVC stage, or by hand) takes the runs that
aelab.tracking.workspace reads off the workspace and gives the store each one it lacks: one run per
variant and the pixel baseline in `tracking.experiment`, one data run in
`tracking.data_experiment`. All MLflow code of aelab is here; stages never import it.

Idempotent: each run is tagged with its content key; a finished run with the same key means
that content is in the store already, and new content gets a new run.
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import mlflow.pyfunc
import numpy as np
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from aelab.analysis.ranking import best_variant
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import file_sha256
from aelab.core.params import ChampionParams
from aelab.models.checkpoints import load_checkpoint
from aelab.tracking.integrity import verified_copy
from aelab.tracking.registry import NAMES, contender, promote
from aelab.tracking.urls import redacted, without_secrets
from aelab.tracking.workspace import RunContent

DB_FILE = "mlflow.db"
KEY, MODEL_URI, EXP_NAME = "aelab.key", "aelab.model_uri", "dvc.exp_name"
ANOMALY_MODEL_URI = "aelab.anomaly_model_uri"  # the run's anomaly detector (aelab.serving.pyfunc)
OWNER = "aelab.owner"  # host:pid of the log step writing the run, to find abandoned runs
# Opens the experiment in the UI's model-training view (runs, models), not the GenAI one.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
BATCH = 1000  # MLflow's limit of params and metrics in one log_batch


def store_home(root: Path) -> Path:
    """The project whose store and artifacts the project at `root` logs to: itself, or,
    for a `dvc exp run --queue` copy (`<project>/.dvc/tmp/exps/<tmp>/`, deleted once the
    experiment ends), the project it was copied from."""
    parts = root.resolve().parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root.resolve()


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI, a relative SQLite path taken from the project (store_home);
    by default an SQLite store in the project's folder."""
    home = store_home(root)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / DB_FILE}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{home / uri.removeprefix('sqlite:///')}"
    return uri


def log_runs(
    root: Path,
    runs: list[RunContent],
    keys: list[str],
    champions: ChampionParams,
    not_registered: str | None = None,
) -> tuple[str, list[str], list[str]]:
    """Log each run of the project at `root` (`keys[i]` the content key of `runs[i]`) that
    the store lacks, then register the champions (aelab.tracking.registry), unless
    `not_registered` says why not; the store's URI, the names of the new runs and what the
    registry did. A failing store is one AelabError."""
    uri = tracking_uri(root)
    try:
        with _store_lock(uri, root):
            new, run_ids = _log_new_runs(uri, root, runs, keys)
            if not_registered:
                return uri, new, [f"registry: nothing registered ({not_registered})"]
            return uri, new, _register_champions(uri, runs, run_ids, champions)
    except AelabError:
        raise
    except Exception as error:  # MLflow, SQLAlchemy, HTTP: all mean "the store failed"
        raise AelabError(describe_failure(uri, error)) from None


def _log_new_runs(
    uri: str, root: Path, runs: list[RunContent], keys: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The names of the runs logged now, and every run's id (logged now or before)."""
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    names = dict.fromkeys(run.experiment for run in runs)
    experiments = {name: experiment_id(client, name, uri, root) for name in names}
    _fail_abandoned_runs(client, list(experiments.values()))
    provenance = {**_provenance_tags(), OWNER: f"{socket.gethostname()}:{os.getpid()}"}
    new, run_ids = [], {}
    for run, key in zip(runs, keys, strict=True):
        found = _finished_run_with_key(client, experiments[run.experiment], key)
        if found is not None:
            run_ids[run.name] = found
            continue
        tags = {**provenance, **run.tags, KEY: key}
        run_ids[run.name] = _log_run(client, experiments[run.experiment], run, tags)
        new.append(run.name)
    return new, run_ids


def experiment_id(client: MlflowClient, name: str, uri: str, root: Path) -> str:
    """The experiment's id, created with its artifacts under the project's mlartifacts/
    unless a server keeps artifacts itself."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise AelabError(
            f"MLflow experiment {name!r} at {redacted(uri)} is deleted; restore it with `mlflow "
            f"experiments restore --experiment-id {found.experiment_id}` or set another "
            f"name in params.yaml's `tracking:`"
        )
    if found is not None:
        _refuse_artifacts_elsewhere(found, uri, root)
        if found.tags.get(EXPERIMENT_KIND[0]) is None:
            client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
        return found.experiment_id
    location = None
    if not uri.startswith(("http://", "https://", "databricks")):
        location = (store_home(root) / "mlartifacts" / name).as_uri()
    try:
        return client.create_experiment(name, location, tags=dict([EXPERIMENT_KIND]))
    except MlflowException as error:
        # Another process (a second `aelab tune` on a shared study) created it first.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def _refuse_artifacts_elsewhere(experiment: Any, uri: str, root: Path) -> None:
    """A project's own store keeps its artifacts in the project's mlartifacts/. MLflow
    records that folder as an absolute path, so a copied project's store points into the
    original's: logging there would change another project's files."""
    location = experiment.artifact_location
    if not uri.startswith("sqlite:") or not location.startswith("file:"):
        return
    folder = Path(location.removeprefix("file://"))
    if not folder.is_relative_to(store_home(root)):
        raise AelabError(
            f"MLflow experiment {experiment.name!r} in {redacted(uri)} keeps its artifacts in "
            f"{folder}, outside this project (a copied {DB_FILE}?); logging would write into "
            f"another project: delete this project's {DB_FILE} and mlartifacts/ and run "
            f"`aelab log` again (the store is a mirror of the workspace), or set "
            f"MLFLOW_TRACKING_URI"
        )


def _fail_abandoned_runs(client: MlflowClient, experiment_ids: list[str]) -> None:
    """Mark FAILED the runs a log step on this machine left RUNNING when it died (a
    SIGKILL, a power cut): MLflow would show them running forever."""
    host = socket.gethostname()
    running = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'")
    for found in running:
        owner_host, _, pid = found.data.tags.get(OWNER, "").rpartition(":")
        if owner_host == host and pid.isdigit() and not _process_alive(int(pid)):
            client.set_terminated(found.info.run_id, "FAILED")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _finished_run_with_key(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The id of a finished run with that content key, if there is one."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{KEY}` = '{key}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def _provenance_tags() -> dict[str, str]:
    """Where the content came from: the git commit and the DVC experiment, if any."""
    tags = {}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:
        tags[MLFLOW_GIT_COMMIT] = commit.stdout.strip()
    if os.environ.get("DVC_EXP_NAME"):
        tags[EXP_NAME] = os.environ["DVC_EXP_NAME"]
    return tags


def _log_run(client: MlflowClient, experiment_id: str, run: RunContent, tags: dict) -> str:
    """One run: tags, models, params, metrics and histories, datasets, figures; its id.
    FINISHED only when all of it is in; a failure marks it FAILED."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=run.name, tags=tags) as active:
        if run.model is not None:
            log_model(run.at(run.model), run.name, run.at(paths.split_file("val")))
        if run.detector is not None:
            log_detector(run.at(run.detector), f"{run.name}-anomaly")
        _log_values(client, active.info.run_id, run)
        contexts = list(run.datasets)
        datasets = [_dataset(run.at(run.datasets[context]), run.experiment)
                    for context in contexts]  # fmt: skip
        mlflow.log_inputs(datasets, contexts, tags_list=[None] * len(contexts))
        if run.figures:
            _log_figures([run.at(figure) for figure in run.figures])
    return active.info.run_id


def _log_values(client: MlflowClient, run_id: str, run: RunContent) -> None:
    """Params, one value per metric (None, e.g. ROC AUC without anomalies, is left out),
    the per-epoch histories with the epoch as the step, and the timings: few batches."""
    params = [Param(k, json.dumps(v) if isinstance(v, list | dict) else str(v))
              for k, v in run.params.items()]  # fmt: skip
    now = int(time.time() * 1000)
    single = {**run.metrics, **run.timings}
    metrics = [Metric(k, float(v), now, 0) for k, v in single.items() if v is not None]
    metrics += [
        Metric(name, float(value), now, int(row["epoch"]))
        for row in run.history
        for name, value in row.items()
        if name != "epoch"
    ]
    size = BATCH - len(params)
    for start in range(0, max(len(metrics), 1), size):
        client.log_batch(run_id, metrics=metrics[start : start + size],
                         params=params if start == 0 else [])  # fmt: skip


def _dataset(path: Path, experiment: str) -> Any:
    """The digits of an aelab .npz (images, labels) as an MLflow dataset."""
    with np.load(path) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    return mlflow.data.from_numpy(
        images.reshape(len(images), -1), source=str(path.resolve()), targets=labels,
        name=f"{experiment}-{path.stem}", digest=file_sha256(path)[:8],
    )  # fmt: skip


def _log_figures(figures: list[Path]) -> None:
    """The figures under figures/ of the active run, in one call."""
    with tempfile.TemporaryDirectory() as folder:
        for figure in figures:
            shutil.copyfile(figure, Path(folder) / figure.name)
        mlflow.log_artifacts(folder, artifact_path="figures")


def log_model(checkpoint: Path, name: str, digits: Path) -> str:
    """The trained variant `name`, in the active run, as the pyfunc model of
    aelab.serving.encoder_model, which maps images (N, 784) in [0, 1] to codes: the
    checkpoint folder (a state dict) and code, no pickle; two real digits of the split
    file `digits` its input example. Its URI (models:/m-...)."""
    from mlflow.models import infer_signature

    import aelab
    from aelab.serving import encoder_model  # the model's code: the log stage depends on it

    with np.load(digits) as arrays:
        example = arrays["images"][:2].reshape(2, -1).astype(np.float32) / 255
    codes = encoder_model.EncoderModel()
    codes.model = load_checkpoint(checkpoint)
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=encoder_model.__file__,
        artifacts={encoder_model.ARTIFACT: str(checkpoint)},
        signature=infer_signature(example, codes.predict(None, example)),
        input_example=example,
        code_paths=[str(Path(aelab.__file__).parent)],
        pip_requirements=_requirements(),
    )
    mlflow.set_tag(MODEL_URI, info.model_uri)
    return info.model_uri


def log_detector(folder: Path, name: str) -> str:
    """The anomaly detector in `folder` (detector/), in the active run, as the pyfunc model
    of aelab.serving.pyfunc; its URI."""
    import aelab
    from aelab.serving import pyfunc  # the model's code: imported, so the log stage depends on it

    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=pyfunc.__file__,
        artifacts={pyfunc.ARTIFACT: str(folder)},
        code_paths=[str(Path(aelab.__file__).parent)],
        pip_requirements=_requirements("scikit-learn", "pandas", "pillow"),
    )
    mlflow.set_tag(ANOMALY_MODEL_URI, info.model_uri)
    return info.model_uri


def load_detector(uri: str, root: Path) -> Any:
    """The registered anomaly detector at `uri` (models:/aelab-anomaly@champion, or
    /<version>), from the tracking store (MLFLOW_TRACKING_URI or that of the project at
    `root`), loaded from a copy whose digest is the one recorded at registration; anything
    else is one AelabError, before any of its code is imported."""
    store = tracking_uri(root)
    mlflow.set_tracking_uri(store)
    # The copy outlives this call: the model's code (its code/ folder) imports from it.
    folder = Path(tempfile.mkdtemp(prefix="aelab-model-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        copy = verified_copy(MlflowClient(), uri, NAMES["anomaly"], folder)
        return mlflow.pyfunc.load_model(str(copy))
    except AelabError:
        raise
    except Exception as error:  # MLflow, HTTP, files: all mean "no such model here"
        reason = " ".join(str(error).split())[:300]
        raise AelabError(
            f"--model {uri}: cannot load it ({without_secrets(reason, store)}); give a "
            f"models:/ URI of the store at {redacted(store)} (MLFLOW_TRACKING_URI), or "
            f"a detector folder"
        ) from None


def _requirements(*more: str) -> list[str]:
    """What loading a logged model needs, pinned to what trained it."""
    return [f"{name}=={version(name).split('+')[0]}" for name in ("torch", "numpy", *more)]


def _register_champions(
    uri: str, runs: list[RunContent], run_ids: dict[str, str], champions: ChampionParams
) -> list[str]:
    """Each task's best variant as a contender for the registry's champion (tracking.registry):
    the detector's variant for aelab-anomaly, the best by `champions.encoder` for
    aelab-encoder. A task without a measured contender (no anomalies) is left alone."""
    client = MlflowClient(uri)
    variants = {run.name: run for run in runs if run.model is not None}
    chosen = {
        "anomaly": next((run.name for run in runs if run.detector is not None), None),
        "encoder": best_variant({n: r.metrics for n, r in variants.items()}, champions.encoder),
    }
    lines = []
    for task, (name, metric, tag) in {
        "anomaly": (chosen["anomaly"], champions.anomaly, ANOMALY_MODEL_URI),
        "encoder": (chosen["encoder"], champions.encoder, MODEL_URI),
    }.items():
        if name is None or variants[name].metrics.get(metric) is None:
            continue
        model_uri = client.get_run(run_ids[name]).data.tags[tag]
        lines.append(promote(client, contender(task, name, metric, variants[name].metrics,
                                               model_uri)))  # fmt: skip
    return lines


LOCKS = ".aelab"  # in the project: the log locks of servers, shared by its users


@contextmanager
def _store_lock(uri: str, root: Path) -> Iterator[None]:
    """One log step at a time per store (queued experiments finish together): each looks
    for the runs it would add only once the one before has added them, so two at once add
    each run once."""
    path = store_lock_file(uri, root)
    lock = FileLock(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as error:
        raise AelabError(describe_failure(uri, error)) from None
    try:
        yield
    finally:
        lock.release()


def store_lock_file(uri: str, root: Path) -> Path:
    """The log lock of the store at `uri`: of an SQLite store, a file beside the database
    (every process that opens the database finds it; never the database itself, which a
    lock file's opening may truncate); of a server, lock_file(uri, root)."""
    if _is_sqlite(uri):
        return Path(uri.removeprefix("sqlite:///").split("?")[0] + ".lock")
    return lock_file(uri, root)


def _is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def lock_file(uri: str, root: Path) -> Path:
    """The log lock of the server at `uri`: a file in the project (every user of the
    project opens the same one; a lock in each user's home would keep no two users apart),
    named after the server's identity, so two spellings of one server share it."""
    identity = server_identity(uri)
    name = f"log-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.lock"
    return store_home(root) / LOCKS / name


def server_identity(uri: str) -> str:
    """A server's scheme, host and port, the host resolved: http://localhost:5000 and
    http://127.0.0.1:5000 are one server. Every loopback address is this machine; a host
    that does not resolve is its name."""
    parts = urlsplit(uri)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # not a number: the connection will say so
        port = 0
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        found = set()
    addresses = [ipaddress.ip_address(address.split("%")[0]) for address in found]
    if addresses and any(address.is_loopback for address in addresses):
        host = "loopback"
    elif addresses:
        host = str(min(addresses, key=lambda address: (address.version, address.packed)))
    return f"{scheme}://{host}:{port}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def describe_failure(uri: str, error: BaseException) -> str:
    """One line naming the store and what went wrong."""
    reason = " ".join(str(error).split())
    tries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() + 1  # what MLflow used: set or its default
    timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()
    if "timed out" in reason:  # MLflow's own text buries this under the retry report
        reason = f"no answer within {timeout} s ({tries} tries)"
    elif "Connection refused" in reason:
        reason = f"connection refused ({tries} tries)"
    else:
        reason = f"{type(error).__name__}: {reason[:300]}{'...' if len(reason) > 300 else ''}"
    return (
        f"MLflow tracking at {redacted(uri)} failed: {without_secrets(reason, uri)}. Start the "
        f"tracking server or fix MLFLOW_TRACKING_URI, then run `aelab log` (or set "
        f"AELAB_TRACKING=off to skip logging)"
    )
