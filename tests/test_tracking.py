"""MLflow tracking: the runs a real `dvc repro` leaves in a real store, and its failures."""

from __future__ import annotations

import json
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
from conftest import run, set_params
from mlflow import MlflowClient

from aelab.checkpoints import load_checkpoint
from aelab.io import file_sha256
from aelab.tracker import flatten, project_root, tracking_uri

TWO_VARIANTS = {"ae": {"kind": "ae"}, "pca": {"kind": "pca"}}


def variant_names(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["variants"])


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
    figures and model, as the MLflow UI's compare view shows them."""
    client = MlflowClient(uri)
    names = variant_names(project)
    runs = runs_by_name(uri, "aelab")
    assert sorted(runs) == sorted([*names, "pixels"])
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    for name, (found,) in runs.items():
        assert found.info.status == "FINISHED", name
        logged = found.data.metrics
        for metric, value in metrics[name].items():
            assert logged[metric] == pytest.approx(value), (name, metric)
        assert found.data.params["seed"] == "42"
        assert found.data.params["data.source"] == "sample"
        assert found.data.params["split.normal_digits"] == "[0, 1, 2, 3, 4]"
        assert found.data.tags["data.source"] == "sample"
        assert found.data.tags["data.sha256"] == file_sha256(project / "data/split/train.npz")
        assert found.data.tags["mlflow.source.git.commit"]
        if name == "pixels":
            assert found.data.tags["dvc.stage.evaluate"] == "evaluate"
            continue
        assert found.data.params["latent_dim"] == "32"
        stages = {key: value for key, value in found.data.tags.items() if key.startswith("dvc.")}
        assert stages == {
            "dvc.stage.train": f"train@{name}",
            "dvc.stage.extract": f"extract@{name}",
            "dvc.stage.evaluate": "evaluate",
            "dvc.stage.figures": "figures",
        }
        assert "aelab.restored" not in found.data.tags
        history = client.get_metric_history(found.info.run_id, "val_loss")
        expected_steps = [1] if name == "pca" else list(range(1, epochs + 1))
        assert sorted(m.step for m in history) == expected_steps, name
        (dataset,) = found.inputs.dataset_inputs
        assert dataset.dataset.name == "sample-train"
        assert dataset.tags[0].value == "training"
        figures = {Path(a.path).name for a in client.list_artifacts(found.info.run_id, "figures")}
        assert {f"4_latent_space_{name}.png", f"5_anomalies_{name}.png"} <= figures
        assert "aelab.model_uri" in found.data.tags
    data_runs = runs_by_name(uri, "aelab-data")
    assert sorted(data_runs) == ["download", "split"]
    (split,) = data_runs["split"]
    assert split.data.metrics["test_size"] == 1000
    assert split.data.tags["sha256.train"] == file_sha256(project / "data/split/train.npz")


def check_logged_models(project: Path, uri: str, names: list[str]) -> None:
    """mlflow.pytorch.load_model gives back the DVC model's latents."""
    mlflow.set_tracking_uri(uri)
    with np.load(project / "data/split/val.npz") as arrays:
        images = arrays["images"]
    inputs = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    runs = runs_by_name(uri, "aelab")
    for name in names:
        (found,) = runs[name]
        logged = mlflow.pytorch.load_model(found.data.tags["aelab.model_uri"])
        dvc_model = load_checkpoint(project / "models" / name)
        with torch.no_grad():
            np.testing.assert_array_equal(logged(inputs).numpy(), dvc_model.encode(inputs).numpy())
        with np.load(project / f"data/features/{name}.npz") as features:
            np.testing.assert_allclose(logged(inputs).detach().numpy(), features["val_latent"],
                                       rtol=0, atol=1e-6)  # fmt: skip


def test_pipeline_leaves_one_run_per_variant_in_the_default_store(tiny_pipeline: Path):
    uri = f"sqlite:///{tiny_pipeline / 'mlflow.db'}"
    check_variant_runs(tiny_pipeline, uri, epochs=2)
    check_logged_models(tiny_pipeline, uri, ["ae", "vae", "pca"])


def test_runs_get_the_evaluation_also_when_evaluate_is_up_to_date(project: Path):
    """As on a fresh clone: no DVC cache, committed reports. Every stage but `evaluate`
    reruns; `figures` logs the committed evaluation into the new runs."""
    set_params(project, train__epochs=1, variants=TWO_VARIANTS)
    run(["dvc", "repro"], cwd=project)
    for path in ("mlflow.db", "mlartifacts", "data", "models", "reports/figures", ".dvc/cache"):
        shutil.rmtree(project / path) if (project / path).is_dir() else (project / path).unlink()
    rerun = run(["dvc", "repro"], cwd=project).stdout
    assert "Stage 'evaluate' didn't change, skipping" in rerun
    runs = runs_by_name(f"sqlite:///{project / 'mlflow.db'}", "aelab")
    assert sorted(runs) == ["ae", "pca", "pixels"]
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    for name, (found,) in runs.items():
        assert found.data.metrics["ari_all"] == pytest.approx(metrics[name]["ari_all"])
        assert "aelab.restored" not in found.data.tags


def test_a_deleted_store_gets_new_runs_tagged_restored(project: Path):
    set_params(project, train__epochs=1, variants=TWO_VARIANTS)
    run(["dvc", "repro"], cwd=project)
    (project / "mlflow.db").unlink()
    uri = f"sqlite:///{project / 'mlflow.db'}"
    run(["dvc", "repro", "-s", "-f", "extract@ae"], cwd=project)
    (ae,) = runs_by_name(uri, "aelab")["ae"]
    assert ae.data.tags["aelab.restored"] == "true"
    assert ae.data.params["kind"] == "ae" and ae.data.params["data.source"] == "sample"
    assert "val_error_mean" in ae.data.metrics

    run(["dvc", "repro", "-s", "-f", "evaluate"], cwd=project)
    runs = runs_by_name(uri, "aelab")
    assert sorted(runs) == ["ae", "pca", "pixels"]
    (ae,) = runs["ae"]  # continued: still one run
    assert ae.data.tags["dvc.stage.evaluate"] == "evaluate" and "roc_auc" in ae.data.metrics
    assert runs["pca"][0].data.tags["aelab.restored"] == "true"
    assert "aelab.restored" not in runs["pixels"][0].data.tags


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


def test_a_tracking_server_that_does_not_answer_stops_the_stage_in_30_s(project: Path):
    server = SilentServer()
    uri = f"http://127.0.0.1:{server.port}"
    try:
        start = time.monotonic()
        result = run(["dvc", "repro", "download"], cwd=project, check=False,
                     env={"MLFLOW_TRACKING_URI": uri})  # fmt: skip
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: MLflow tracking at {uri} failed")
    assert "timed out" in errors[0]  # it waited for the server, with bounded retries
    assert elapsed < 40, elapsed
    assert not (project / "data" / "raw").exists()


def test_untracked_runs_need_no_store(project: Path):
    run(["dvc", "repro", "split"], cwd=project, env={"AELAB_TRACKING": "off"})
    assert (project / "data/split/train.npz").is_file()
    assert not (project / "mlflow.db").exists()


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
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_flatten_names_nested_figures():
    assert flatten({"train": {"size": 3, "digits": {"0": 1}}, "n": 2}) == {
        "train_size": 3,
        "train_digits_0": 1,
        "n": 2,
    }


def commit(project: Path) -> None:
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "test"], cwd=project)


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
    runs = runs_by_name(f"sqlite:///{project / 'mlflow.db'}", "aelab")
    for name in ("ae", "pca", "pixels"):
        experiments = sorted(r.data.tags.get("dvc.exp_name") for r in runs[name])
        assert experiments == ["epochs2", "epochs3"], name
        assert all(r.info.status == "FINISHED" for r in runs[name])
    assert sorted(r.data.params["epochs"] for r in runs["ae"]) == ["2", "3"]
