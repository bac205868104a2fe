"""MLflow tracking: what the log step leaves in a real store after a real `dvc repro`, its
idempotence and its failures; and, in this process, aelab.tracking.store's own functions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
import torch
import yaml
import zc.lockfile
from helpers import VENV_BIN, free_port, run, set_params, stages_run, variant_names
from mlflow import MlflowClient

from aelab.cli import main
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import file_sha256
from aelab.core.params import load_params
from aelab.models.checkpoints import load_checkpoint
from aelab.serving import detector
from aelab.tracking import log as log_step
from aelab.tracking.store import log_runs, store_home, tracking_uri
from aelab.tracking.workspace import workspace_runs

KIND_TAG = "mlflow.experimentKind"


def store_of(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def runs_by_name(uri: str, experiment: str) -> dict[str, list]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {uri}"
    runs: dict[str, list] = {}
    for run_ in client.search_runs([found.experiment_id], max_results=1000):
        runs.setdefault(run_.info.run_name, []).append(run_)
    return runs


def current_runs(project: Path, uri: str, experiment: str) -> dict[str, object]:
    """The run of each name whose content key reports/logged.json records: the workspace's
    (a store that logged earlier workspaces holds older runs too)."""
    keys = json.loads((project / paths.LOGGED).read_text())
    found = {}
    for name, runs in runs_by_name(uri, experiment).items():
        current = [
            r for r in runs if r.data.tags.get("aelab.key") == keys.get(f"{experiment}/{name}")
        ]
        assert len(current) <= 1, (name, "logged twice")
        if current:
            found[name] = current[0]
    return found


def check_variant_runs(project: Path, uri: str) -> None:
    """One finished run per variant and baseline, with params, curves, metrics, data,
    figures and model, as the MLflow UI's compare view shows them; one data run."""
    client = MlflowClient(uri)
    names = variant_names(project)
    experiment = client.get_experiment_by_name("aelab")
    assert experiment.tags[KIND_TAG] == "custom_model_development"  # the training-runs view
    runs = current_runs(project, uri, "aelab")
    assert sorted(runs) == sorted([*names, "pixels"])
    metrics = json.loads((project / paths.METRICS).read_text())
    for name, found in runs.items():
        assert found.info.status == "FINISHED", name
        logged = found.data.metrics
        for metric, value in metrics[name].items():
            if value is not None:
                assert logged[metric] == pytest.approx(value), (name, metric)
        assert found.data.params["seed"] == "42"
        assert found.data.params["data.source"] == "sample"
        assert found.data.params["split.normal_digits"] == "[0, 1, 2, 3, 4]"
        assert found.data.tags["data.source"] == "sample"
        assert found.data.tags["data.sha256"] == file_sha256(project / "data/split/train.npz")
        assert found.data.tags["mlflow.source.git.commit"]
        assert len(found.data.tags["aelab.key"]) == 64
        contexts = {i.tags[0].value for i in found.inputs.dataset_inputs}
        if name == "pixels":
            assert contexts == {"evaluation"}
            continue
        assert contexts == {"training", "evaluation"}
        trained = json.loads((project / paths.train_report(name)).read_text())["seed_0"]
        stopped_by = trained.pop("stopped_by")  # text: a tag; the rest are metrics
        assert found.data.tags["aelab.seed_0_stopped_by"] == stopped_by
        assert {k: logged[f"seed_0_{k}"] for k in trained} == pytest.approx(
            {k: float(v) for k, v in trained.items()}  # `converged`: 1.0 or 0.0
        )
        assert "train_seconds" in logged  # the wall-clock figures DVC does not track
        assert found.data.params["latent_dim"] == "32"
        history = client.get_metric_history(found.info.run_id, "seed_0/val_loss")
        expected_steps = list(range(1, trained["epochs"] + 1))  # pca: one step
        assert sorted(m.step for m in history) == expected_steps, name
        figures = {Path(a.path).name for a in client.list_artifacts(found.info.run_id, "figures")}
        assert {f"4_latent_space_{name}.png", f"5_anomalies_{name}.png"} <= figures
        assert "reconstructions.png" in figures
        outputs = {output.model_id for output in found.outputs.model_outputs}  # the UI's Models
        assert found.data.tags["aelab.model_uri"].removeprefix("models:/") in outputs
        assert len(outputs) == (2 if name == detector_variant(project) else 1)  # + the detector
    data = current_runs(project, uri, "aelab-data")["data"]
    assert data.data.metrics["test_size"] == 1000
    assert data.data.tags["sha256.train"] == file_sha256(project / "data/split/train.npz")


def detector_variant(project: Path) -> str:
    return json.loads((project / paths.DETECTOR_REPORT).read_text())["variant"]


def check_logged_models(project: Path, uri: str, names: list[str], artifact_root: str) -> None:
    """Each network variant has exactly one model in the aelab experiment, stored under the
    store's artifact root, and loading it gives exactly the DVC model's latents; the
    detector's variant also has the anomaly detector, which answers as the DVC one."""
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient(uri).get_experiment_by_name("aelab")
    run_ids = {run.info.run_id for run in current_runs(project, uri, "aelab").values()}
    models = [model for model in mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    ) if model.source_run_id in run_ids]  # fmt: skip
    anomaly = f"{detector_variant(project)}-anomaly"
    assert sorted(model.name for model in models) == sorted([*names, anomaly])
    with np.load(project / "data/split/val.npz") as arrays:
        images = arrays["images"]
    inputs = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    for model in models:
        assert model.artifact_location.startswith(artifact_root), model.artifact_location
        if model.name == anomaly:  # loads only as a registered version, its digest checked
            with pytest.raises(AelabError, match="not loaded as a registered version"):
                mlflow.pyfunc.load_model(model.model_uri)
            # A tracking server's versions may carry the logged model as their source only.
            (version,) = [found.version for found in MlflowClient(uri).search_model_versions(
                "name = 'aelab-anomaly'") if model.model_id in (found.model_id, found.source)
                or found.source == model.model_uri]  # fmt: skip
            answers = mlflow.pyfunc.load_model(f"models:/aelab-anomaly/{version}").predict(images)
            expected = detector.load(project / paths.DETECTOR_DIR).answers(images)
            np.testing.assert_array_equal(answers["score"], expected["score"])
            continue
        logged = mlflow.pyfunc.load_model(model.model_uri)  # a state dict and code: no pickle
        dvc_model = load_checkpoint(project / paths.checkpoint_dir(model.name, 0))
        with torch.no_grad():
            np.testing.assert_array_equal(logged.predict(inputs.numpy()),
                                          dvc_model.encode(inputs).numpy())  # fmt: skip


@pytest.mark.slow
def test_pipeline_fills_the_default_store(default_pipeline: Path):
    uri = store_of(default_pipeline)
    check_variant_runs(default_pipeline, uri)
    artifacts = (default_pipeline / "mlartifacts").as_uri()
    check_logged_models(default_pipeline, uri, variant_names(default_pipeline), artifacts)


@pytest.mark.slow
def test_pipeline_leaves_no_process_behind(small_pipeline: Path):
    """Listed by the fixture the moment its `dvc repro` returned."""
    assert (small_pipeline.parent / "leftover_processes.txt").read_text() == ""


def count_runs(project: Path) -> dict[str, int]:
    runs = {
        **runs_by_name(store_of(project), "aelab"),
        **runs_by_name(store_of(project), "aelab-data"),
    }
    return {name: len(found) for name, found in runs.items()}


def log(project: Path, **env: str) -> subprocess.CompletedProcess:
    return run(["python", "-m", "aelab.cli", "log"], cwd=project, check=False, env=env)


@pytest.mark.slow
def test_logging_again_logs_nothing_new_and_a_stale_workspace_is_refused(small: Path):
    """Logging the same workspace again adds nothing. Once a param of `evaluate` changed
    without `dvc repro`, `aelab log` refuses in one line naming the stale stages, logs
    nothing; --force logs runs tagged with them, and registers nothing."""
    before = count_runs(small)
    assert before == {"ae": 1, "conv_vae": 1, "pca": 1, "pixels": 1, "data": 1}
    again = log(small)
    assert again.returncode == 0 and "0 new run(s)" in again.stdout
    assert count_runs(small) == before

    set_params(small, evaluate__bootstrap=50)
    refused = log(small)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("error: DVC says these stages are not up to date: ")
    assert "evaluate" in refused.stderr and "--force" in refused.stderr
    assert count_runs(small) == before
    forced = run(["python", "-m", "aelab.cli", "log", "--force"], cwd=small)
    assert "nothing registered (stale stages)" in forced.stdout
    tags = [found.data.tags for found in runs_by_name(store_of(small), "aelab")["ae"]]
    stale = sorted(found.get("aelab.stale_stages", "") for found in tags)
    assert len(stale) == 2 and stale[0] == "" and "evaluate" in stale[1].split(",")


def test_a_copied_store_never_writes_into_the_originals_artifacts(
    logged_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A project copied with its mlflow.db: the store's experiments keep the original's
    mlartifacts/ (MLflow records absolute paths), so logging is refused in one line and the
    original's files stay as they were."""
    copy = Path(shutil.copytree(logged_template, tmp_path / "copy"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    before = sorted((logged_template / "mlartifacts").rglob("*"))
    params = load_params(copy / "params.yaml")
    runs = workspace_runs(copy, params)
    (runs[0].tags)["new"] = "content"
    with pytest.raises(AelabError, match="outside this project") as refused:
        log_runs(copy, runs, [run.key() for run in runs], params.champions)
    assert str(logged_template / "mlartifacts") in str(refused.value)
    assert sorted((logged_template / "mlartifacts").rglob("*")) == before


@pytest.mark.slow
def test_a_failing_store_stops_log_alone_and_new_metrics_get_new_runs_later(small: Path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    set_params(small, evaluate__threshold_percentile=90)
    failed = run(["dvc", "repro"], cwd=small, check=False, env={"MLFLOW_TRACKING_URI": uri})
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: MLflow tracking at {uri} failed")
    status = json.loads(run(["dvc", "status", "--json"], cwd=small).stdout)
    assert list(status) == ["log"]  # every other output is valid

    retried = run(["dvc", "repro"], cwd=small).stdout
    assert stages_run(retried) == ["log"]
    runs = runs_by_name(store_of(small), "aelab")
    assert {name: len(found) for name, found in runs.items()} == {
        "ae": 2,
        "conv_vae": 2,
        "pca": 2,
        "pixels": 2,
    }
    metrics = json.loads((small / paths.METRICS).read_text())
    newest = max(runs["ae"], key=lambda r: r.info.start_time)
    threshold = newest.data.metrics["threshold_recon"]
    assert threshold == pytest.approx(metrics["ae"]["threshold_recon"])
    assert newest.data.params["evaluate.threshold_percentile"] == "90.0"
    assert len(runs_by_name(store_of(small), "aelab-data")["data"]) == 1  # data unchanged


@contextmanager
def dvc_lock_held(project: Path, seconds: float) -> Iterator[None]:
    """DVC's project lock, held by this process for `seconds` from the start of the block
    (as another `aelab log`'s `dvc status` would hold it)."""
    lock = zc.lockfile.LockFile(str(project / ".dvc" / "tmp" / "lock"))
    release = threading.Timer(seconds, lock.close)
    release.start()
    try:
        yield
    finally:
        release.join()


@pytest.fixture
def dvc_project(tmp_path: Path, monkeypatch) -> Path:
    run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    return tmp_path


@pytest.mark.slow  # dvc processes
def test_the_freshness_check_waits_for_another_dvc_command(dvc_project: Path):
    """Two `aelab log` at once: the second's `dvc status` waits for the first's lock (DVC
    alone gives up after 3 s)."""
    with dvc_lock_held(dvc_project, seconds=5):
        assert log_step.stale_stages(dvc_project) == []


@pytest.mark.slow  # dvc processes
def test_a_lock_held_too_long_is_one_line(dvc_project: Path, monkeypatch):
    monkeypatch.setattr(log_step, "STATUS_TIMEOUT", 2)
    with dvc_lock_held(dvc_project, seconds=4), pytest.raises(AelabError) as refused:
        log_step.stale_stages(dvc_project)
    assert str(refused.value) == (
        "`dvc status` did not finish within 2 s (another DVC command holding the project's "
        "lock?); run it again once that one has finished"
    )


@pytest.mark.slow
def test_tracking_params_rerun_only_log(small: Path):
    set_params(small, tracking__experiment="renamed")
    assert stages_run(run(["dvc", "repro"], cwd=small).stdout) == ["log"]
    assert sorted(runs_by_name(store_of(small), "renamed")) == ["ae", "conv_vae", "pca", "pixels"]


@pytest.mark.slow
def test_a_fresh_clone_fills_an_empty_store(small_pipeline: Path, tmp_path: Path):
    """A clone has the committed reports and no store. Even with every other output
    restored from DVC's cache (shared here), `log` runs and fills the store."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(small_pipeline), str(clone)], cwd=tmp_path)
    run(["dvc", "cache", "dir", "--local", str(small_pipeline / ".dvc" / "cache")], cwd=clone)
    rerun = run(["dvc", "repro"], cwd=clone).stdout
    assert stages_run(rerun) == ["log"]
    assert count_runs(clone) == dict.fromkeys([*variant_names(clone), "pixels", "data"], 1)
    assert run(["git", "status", "--porcelain"], cwd=clone).stdout == ""  # dvc.lock is clean


@pytest.mark.slow
def test_a_broken_store_is_one_line(small: Path):
    (small / "mlflow.db").write_bytes(b"not a database " * 100)
    failed = log(small)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: MLflow tracking at {store_of(small)} failed")
    assert len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_deleted_experiment_says_how_to_restore_it(small: Path):
    client = MlflowClient(store_of(small))
    client.delete_experiment(client.get_experiment_by_name("aelab").experiment_id)
    failed = log(small)
    assert failed.returncode == 1
    assert "is deleted; restore it with `mlflow experiments restore" in failed.stderr


class SilentServer:
    """A TCP port on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.mark.slow
def test_a_server_that_does_not_answer_fails_within_the_timeout(small: Path):
    server = SilentServer()
    uri = f"http://127.0.0.1:{server.port}"
    try:  # a user's own MLflow settings win over aelab's (3 tries of 7 s)
        result = log(small, MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_TIMEOUT="2",
                     MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")  # fmt: skip
        tries = len(server.accepted)
    finally:
        server.close()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: MLflow tracking at {uri} failed: no answer within 2 s (1 tries). Start the "
        "tracking server or fix MLFLOW_TRACKING_URI, then run `aelab log` (or set "
        "AELAB_TRACKING=off to skip logging)"
    )
    assert tries == 1  # given up after its one try, not retried


@pytest.mark.slow
def test_tracking_off_logs_nothing(small: Path):
    for name in ("mlflow.db", paths.LOGGED):
        (small / name).unlink()
    result = run(["dvc", "repro"], cwd=small, env={"AELAB_TRACKING": "off"})
    assert stages_run(result.stdout) == ["log"] and "nothing logged" in result.stdout
    assert (small / paths.LOGGED).is_file()
    assert not (small / "mlflow.db").exists()


def test_log_runs_fills_a_store_and_then_has_nothing_to_add(workspace: Path, store: str):
    uri = store
    params = load_params(workspace / "params.yaml")
    runs = workspace_runs(workspace, params)
    keys = [run.key() for run in runs]
    assert log_runs(workspace, runs, keys, params.champions)[:2] == (uri, ["ae", "pixels", "data"])
    again, new, registry = log_runs(workspace, runs, keys, params.champions)
    assert new == [] and [line.split(" (")[0] for line in registry] == [
        "registry: aelab-anomaly v1", "registry: aelab-encoder v1",
    ]  # nothing new registered either  # fmt: skip
    (ae,) = runs_by_name(uri, "aelab")["ae"]
    assert ae.data.tags["aelab.key"] == keys[0]
    assert ae.info.artifact_uri.startswith((workspace / "mlartifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    encoder = mlflow.pyfunc.load_model(ae.data.tags["aelab.model_uri"])
    images = torch.rand(5, 784)
    with torch.no_grad():
        expected = load_checkpoint(workspace / paths.checkpoint_dir("ae", 0)).encode(images)
    np.testing.assert_array_equal(encoder.predict(images.numpy()), expected.numpy())


def test_runs_left_running_by_a_dead_log_step_are_marked_failed(
    logged_workspace: Path, logged: str
):  # fmt: skip
    params = load_params(logged_workspace / "params.yaml")
    runs = workspace_runs(logged_workspace, params)
    client = MlflowClient(logged)
    experiment = client.get_experiment_by_name("aelab").experiment_id
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        owners = {"dead": dead.pid, "alive": alive.pid}
        started = {name: client.create_run(experiment, run_name=name,
                                           tags={"aelab.owner": f"{socket.gethostname()}:{pid}"})
                   for name, pid in owners.items()}  # fmt: skip
        log_runs(logged_workspace, runs, [run.key() for run in runs], params.champions)
        status = {name: client.get_run(r.info.run_id).info.status for name, r in started.items()}
    finally:
        alive.kill()
        alive.wait()
    assert status == {"dead": "FAILED", "alive": "RUNNING"}


def test_an_unwritable_store_fails_at_once_in_one_line(workspace, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////proc/aelab/store.db")
    params = load_params(workspace / "params.yaml")
    runs = workspace_runs(workspace, params)
    with pytest.raises(AelabError, match=r"^MLflow tracking at sqlite:////proc/aelab/store.db"):
        log_runs(workspace, runs, [run.key() for run in runs], params.champions)


def test_the_store_is_the_projects_also_from_a_queued_experiment(tmp_path: Path):
    project = tmp_path / "lab"
    queued = project / ".dvc" / "tmp" / "exps" / "tmpab12" / "sub"
    queued.mkdir(parents=True)
    assert store_home(queued) == project.resolve()
    assert store_home(project) == project.resolve()


def test_tracking_uri_is_absolute_sqlite_unless_overridden(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")  # relative: the project's
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_two_spellings_of_one_server_share_one_lock_in_the_project(
    workspace: Path, tmp_path: Path, monkeypatch
):  # fmt: skip
    """http://127.0.0.1:P and http://localhost:P are one server: a log step holding one's
    lock keeps the other waiting. The lock is in the project, where every user of it finds
    the same file, not in each user's home."""
    from aelab.tracking import store

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    port = free_port()
    assert store.lock_file(f"http://127.0.0.1:{port}", workspace) == store.lock_file(
        f"http://localhost:{port}", workspace
    )
    assert store.lock_file(f"http://localhost:{port}", workspace) != store.lock_file(
        f"http://localhost:{port + 1}", workspace
    )
    assert store.lock_file(f"http://localhost:{port}", workspace).is_relative_to(workspace)
    taken = threading.Event()

    def other_log_step() -> None:
        with store._store_lock(f"http://localhost:{port}", workspace):
            taken.set()

    with store._store_lock(f"http://127.0.0.1:{port}", workspace):
        other = threading.Thread(target=other_log_step)
        other.start()
        assert not taken.wait(0.5)  # still waiting for the first
    assert taken.wait(10)
    other.join()
    assert not home.exists()


def test_a_params_file_other_than_what_dvc_ran_is_refused_or_tagged(
    workspace: Path, store: str, capsys
):  # fmt: skip
    """dvc.lock says train@ae ran with train.lr as in params.yaml; tweaked.yaml has 0.5:
    `aelab log --params tweaked.yaml` refuses in one line, logs nothing; with --force the
    runs are tagged with that stage, and nothing is registered."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    lr = params["train"]["lr"]
    recorded = {"seed": params["seed"], "train": params["train"],
                "variants.ae": params["variants"]["ae"]}  # fmt: skip
    (workspace / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "train@ae": {"cmd": "python -m stages train", "params": {"params.yaml": recorded}},
        "log": {"cmd": "python -m stages log", "params": {"params.yaml": {"tracking": {}}}},
    }}))  # fmt: skip
    params["train"]["lr"] = 0.5
    tweaked = workspace / "tweaked.yaml"
    tweaked.write_text(yaml.safe_dump(params, sort_keys=False))
    project = ["--project", str(workspace)]

    assert main([*project, "log", "--params", str(tweaked)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {tweaked} holds other params than DVC ran these stages with "
                   f"(dvc.lock): train@ae (train.lr: 0.5 here, {lr} in dvc.lock); the runs "
                   f"would pair them with metrics they did not make: log with params.yaml, or "
                   f"add --force (runs tagged aelab.stale_stages, no registry)\n")  # fmt: skip
    client = MlflowClient(store)
    assert client.get_experiment_by_name("aelab") is None  # nothing logged
    assert main([*project, "log", "--params", str(tweaked), "--force"]) == 0
    assert "nothing registered (stale stages)" in capsys.readouterr().out
    (ae,) = runs_by_name(store, "aelab")["ae"]
    assert ae.data.tags["aelab.stale_stages"] == "train@ae" and ae.data.params["lr"] == "0.5"
    assert main([*project, "log"]) == 0  # params.yaml is what DVC ran: logged, not tagged
