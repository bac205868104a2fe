"""MLflow tracking: what the log step leaves in a real store after a real `dvc repro`, its
idempotence, its failures, and the pure parts (content keys, store location)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
import yaml
from conftest import TWO_VARIANTS, commit, copy_project, run, set_params
from mlflow import MlflowClient

from aelab import paths
from aelab.checkpoints import load_checkpoint
from aelab.errors import AelabError
from aelab.io import file_sha256
from aelab.tracking import project_root, tracking_uri
from aelab.workspace import RunContent, _flatten, workspace_runs

KIND_TAG = "mlflow.experimentKind"


def variant_names(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["variants"])


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


def check_variant_runs(project: Path, uri: str, epochs: int) -> None:
    """One finished run per variant and baseline, with params, curves, metrics, data,
    figures and model, as the MLflow UI's compare view shows them; one data run."""
    client = MlflowClient(uri)
    names = variant_names(project)
    experiment = client.get_experiment_by_name("aelab")
    assert experiment.tags[KIND_TAG] == "custom_model_development"  # the training-runs view
    runs = runs_by_name(uri, "aelab")
    assert sorted(runs) == sorted([*names, "pixels"])
    metrics = json.loads((project / paths.METRICS).read_text())
    for name, (found,) in runs.items():
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
        trained = json.loads((project / paths.train_report(name)).read_text())
        assert {k: logged[k] for k in trained} == pytest.approx(trained)
        assert "train_seconds" in logged  # the wall-clock figures DVC does not track
        assert found.data.params["latent_dim"] == "32"
        history = client.get_metric_history(found.info.run_id, "val_loss")
        expected_steps = [1] if name == "pca" else list(range(1, epochs + 1))
        assert sorted(m.step for m in history) == expected_steps, name
        figures = {Path(a.path).name for a in client.list_artifacts(found.info.run_id, "figures")}
        assert {f"4_latent_space_{name}.png", f"5_anomalies_{name}.png"} <= figures
        assert "reconstructions.png" in figures
        (output,) = found.outputs.model_outputs  # the UI's Models column
        assert found.data.tags["aelab.model_uri"] == f"models:/{output.model_id}"
    (data,) = runs_by_name(uri, "aelab-data")["data"]
    assert data.data.metrics["test_size"] == 1000
    assert data.data.tags["sha256.train"] == file_sha256(project / "data/split/train.npz")


def check_logged_models(project: Path, uri: str, names: list[str], artifact_root: str) -> None:
    """Each network variant has exactly one model in the aelab experiment, stored under the
    store's artifact root, and loading it gives exactly the DVC model's latents."""
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient(uri).get_experiment_by_name("aelab")
    models = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    assert sorted(model.name for model in models) == sorted(names)
    with np.load(project / "data/split/val.npz") as arrays:
        images = arrays["images"]
    inputs = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    for model in models:
        assert model.artifact_location.startswith(artifact_root), model.artifact_location
        logged = mlflow.pytorch.load_model(model.model_uri)
        dvc_model = load_checkpoint(project / "models" / model.name)
        with torch.no_grad():
            np.testing.assert_array_equal(logged(inputs).numpy(), dvc_model.encode(inputs).numpy())


def test_pipeline_fills_the_default_store(tiny_pipeline: Path):
    uri = store_of(tiny_pipeline)
    check_variant_runs(tiny_pipeline, uri, epochs=2)
    artifacts = (tiny_pipeline / "mlartifacts").as_uri()
    check_logged_models(tiny_pipeline, uri, variant_names(tiny_pipeline), artifacts)


def test_pipeline_leaves_no_process_behind(tiny_pipeline: Path):
    """The fixture's `dvc repro` has returned: nothing it started may still run there."""
    left = []
    for process in Path("/proc").iterdir():
        try:
            cwd = (process / "cwd").resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if cwd == tiny_pipeline or tiny_pipeline in cwd.parents:
            left.append((process.name, (process / "cmdline").read_bytes()))
    assert not left


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-variant project after `dvc repro`, committed; tests copy it."""
    project = copy_project(tmp_path_factory.mktemp("logged"))
    set_params(project, train__epochs=1, variants=TWO_VARIANTS)
    run(["dvc", "repro"], cwd=project)
    commit(project)
    return project


@pytest.fixture
def small(logged: Path, tmp_path: Path) -> Path:
    """A copy of `logged` with its store. The experiments' artifact folders stay the
    original's (MLflow keeps absolute paths); no test here reads artifacts."""
    copy = tmp_path / "project"
    shutil.copytree(logged, copy, symlinks=True)
    return copy


def count_runs(project: Path) -> dict[str, int]:
    runs = {
        **runs_by_name(store_of(project), "aelab"),
        **runs_by_name(store_of(project), "aelab-data"),
    }
    return {name: len(found) for name, found in runs.items()}


def test_logging_again_logs_nothing_new(small: Path):
    before = count_runs(small)
    assert before == {"ae": 1, "pca": 1, "pixels": 1, "data": 1}
    again = run(["python", "-m", "aelab.cli", "log"], cwd=small)
    assert "0 new run(s)" in again.stdout
    assert count_runs(small) == before
    forced = run(["dvc", "repro", "-f", "evaluate", "log"], cwd=small).stdout
    assert "Running stage 'log'" in forced
    assert count_runs(small) == before  # the same metrics: already there


def test_new_metrics_get_new_runs_and_tracking_params_retrain_nothing(small: Path):
    set_params(small, evaluate__threshold_percentile=90)
    run(["dvc", "repro"], cwd=small)
    runs = runs_by_name(store_of(small), "aelab")
    assert {name: len(found) for name, found in runs.items()} == {"ae": 2, "pca": 2, "pixels": 2}
    metrics = json.loads((small / paths.METRICS).read_text())
    newest = max(runs["ae"], key=lambda r: r.info.start_time)
    assert newest.data.metrics["threshold"] == pytest.approx(metrics["ae"]["threshold"])
    assert newest.data.params["evaluate.threshold_percentile"] == "90.0"
    assert len(runs_by_name(store_of(small), "aelab-data")["data"]) == 1  # data unchanged

    set_params(small, tracking__experiment="renamed")
    rerun = run(["dvc", "repro"], cwd=small).stdout
    assert [line for line in rerun.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'log':"
    ]
    assert sorted(runs_by_name(store_of(small), "renamed")) == ["ae", "pca", "pixels"]


def test_a_fresh_clone_fills_an_empty_store(logged: Path, tmp_path: Path):
    """A clone has the committed reports but no DVC cache, no store and no logged.json:
    `evaluate` reproduces byte for byte and is skipped, and the store still fills."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(logged), str(clone)], cwd=tmp_path)
    rerun = run(["dvc", "repro"], cwd=clone).stdout
    assert "Stage 'evaluate' didn't change, skipping" in rerun
    assert "Running stage 'log'" in rerun
    assert count_runs(clone) == {"ae": 1, "pca": 1, "pixels": 1, "data": 1}
    assert run(["git", "status", "--porcelain"], cwd=clone).stdout == ""  # dvc.lock is clean


def test_an_unreachable_store_fails_the_log_step_alone_in_one_line(small: Path):
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
    assert [line for line in retried.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'log':"
    ]


def test_a_broken_store_is_one_line(small: Path):
    (small / "mlflow.db").write_bytes(b"not a database " * 100)
    failed = run(["python", "-m", "aelab.cli", "log"], cwd=small, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: MLflow tracking at {store_of(small)} failed")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_a_deleted_experiment_says_how_to_restore_it(small: Path):
    client = MlflowClient(store_of(small))
    client.delete_experiment(client.get_experiment_by_name("aelab").experiment_id)
    set_params(small, evaluate__threshold_percentile=90)
    failed = run(["python", "-m", "aelab.cli", "log"], cwd=small, check=False)
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


def test_a_server_that_does_not_answer_fails_in_30_s(small: Path):
    server = SilentServer()
    uri = f"http://127.0.0.1:{server.port}"
    try:
        start = time.monotonic()
        result = run(["python", "-m", "aelab.cli", "log"], cwd=small, check=False,
                     env={"MLFLOW_TRACKING_URI": uri})  # fmt: skip
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: MLflow tracking at {uri} failed: no answer")
    assert elapsed < 40, elapsed


def test_tracking_off_logs_nothing(project: Path):
    set_params(project, train__epochs=1, variants=TWO_VARIANTS)
    result = run(["dvc", "repro"], cwd=project, env={"AELAB_TRACKING": "off"})
    assert "nothing logged" in result.stdout
    assert (project / paths.LOGGED).is_file()
    assert not (project / "mlflow.db").exists()


def test_two_queued_experiments_both_reach_the_store(project: Path):
    set_params(project, train__epochs=1, variants=TWO_VARIANTS)
    commit(project)  # dvc exp run --queue works from a commit
    for epochs in (2, 3):
        queue = ["dvc", "exp", "run", "--queue", "-S", f"train.epochs={epochs}"]
        run([*queue, "-n", f"epochs{epochs}"], cwd=project)
    run(["dvc", "queue", "start", "-j", "2"], cwd=project)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = run(["dvc", "queue", "status"], cwd=project).stdout
            if "Running" not in status and "Queued" not in status:
                break
            time.sleep(3)
        logs = "".join(run(["dvc", "queue", "logs", f"epochs{e}"], cwd=project, check=False).stdout
                       for e in (2, 3))  # fmt: skip
        assert status.count("Success") == 2, f"{status}\n{logs}"
    finally:
        run(["dvc", "queue", "stop", "--kill"], cwd=project, check=False)
    assert "database is locked" not in logs
    runs = runs_by_name(store_of(project), "aelab")
    for name in ("ae", "pca"):  # pca: its figures show ae, which differs
        experiments = sorted(r.data.tags.get("dvc.exp_name") for r in runs[name])
        assert experiments == ["epochs2", "epochs3"], name
        assert all(r.info.status == "FINISHED" for r in runs[name])
    assert len(runs["pixels"]) == 1  # the same content in both: logged once
    assert sorted(r.data.params["epochs"] for r in runs["ae"]) == ["2", "3"]
    for found in runs["ae"]:  # artifacts in the project, not in DVC's deleted temp copy
        assert found.info.artifact_uri.startswith((project / "mlartifacts").as_uri())


# The pure parts.


def test_the_store_is_the_projects_also_from_a_queued_experiment(tmp_path: Path):
    project = tmp_path / "lab"
    queued = project / ".dvc" / "tmp" / "exps" / "tmpab12" / "sub"
    queued.mkdir(parents=True)
    assert project_root(queued) == project.resolve()
    assert project_root(project) == project.resolve()


def test_tracking_uri_is_absolute_sqlite_unless_overridden(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")  # relative: the project's
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_flatten_names_nested_figures():
    assert _flatten({"train": {"size": 3, "digits": {"0": 1}}, "n": 2}) == {
        "train_size": 3,
        "train_digits_0": 1,
        "n": 2,
    }


def test_content_key_covers_content_but_not_timings(tmp_path: Path):
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"png")
    run_ = RunContent("aelab", "ae", {"lr": 0.001}, {"roc_auc": 0.9}, figures=[figure],
                      timings={"train_seconds": 3.0})  # fmt: skip
    key = run_.key()
    run_.timings["train_seconds"] = 4.0
    assert run_.key() == key
    run_.metrics["roc_auc"] = 0.91
    assert run_.key() != key
    run_.metrics["roc_auc"] = 0.9
    figure.write_bytes(b"other png")
    assert run_.key() != key


def test_a_workspace_without_evaluation_says_what_to_run(monkeypatch, tmp_path: Path):
    from aelab.params import load_params

    params = load_params(Path(__file__).parent.parent / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AelabError, match=r"reports/metrics.json: file not found; run `dvc repro"):
        workspace_runs(params)
    os.makedirs("reports")
    Path("reports/metrics.json").write_text('{"ae": {}}')
    with pytest.raises(AelabError, match=r"has no metrics of \['ae_l1'"):
        workspace_runs(params)
