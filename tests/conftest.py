"""Shared set-up, each built once per session and copied for every test that changes it:

- `workspace`: a small workspace as the stages leave it, written in this process
  (write_workspace); `store`: an empty, migrated MLflow store in it.
- `small_pipeline` / `small`: a real `dvc repro` of a three-variant project (ae, conv_vae,
  pca; 2 seeds, 1 epoch, a small bootstrap) whose code paths cover every stage.
- `default_pipeline`: the project itself after `make repro` (what `make test-all` and CI
  run first): the default variants at their default size, read, never changed.

Under pytest-xdist each template is built once for all workers. Helpers that are not
fixtures are in helpers.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from helpers import (
    PROJECT_ROOT,
    commit,
    copy_of,
    copy_project,
    processes_in,
    relocate_store,
    run,
    set_params,
    wait_until,
)
from hypothesis import HealthCheck, settings
from stage_reads import RECORDER

from aelab.tracking.settings import quiet_mlflow

# The tests log to MLflow in this process as the `aelab` command does: its settings first.
quiet_mlflow()

# The session pipeline: every kind of stage and code path (a network on the mlp and the
# conv architecture, the closed-form PCA), small enough to rerun in a copy in seconds.
# ae sets its own cap, so that tests can change it with `-S variants.ae.max_epochs=N`.
SMALL_VARIANTS = {
    "ae": {"kind": "ae", "max_epochs": 1},
    "conv_vae": {"kind": "vae", "arch": "conv", "beta": 1.0, "loss": "bce", "channels": [4, 8],
                 "batch_size": 64},
    "pca": {"kind": "pca"},
}  # fmt: skip
# evaluate's umap clusterer, the costliest method on small data, is left to the default
# pipeline's run and the unit tests; figures still draws every UMAP picture.
SMALL_PARAMS = {
    "variants": SMALL_VARIANTS,
    "train__max_epochs": 1,
    "train__seeds": 2,
    "evaluate__bootstrap": 20,
    "evaluate__n_init": 2,
    "evaluate__clusterers": ["kmeans", "gmm"],
    "evaluate__umap__n_epochs": 20,
    "champions__encoder": "ari_all_gmm",
    "classifier__epochs": 1,
    "generate__interpolation__pairs": 20,
}
# Experiments on the session pipeline (`experiments`): the article's clustering protocol
# (every digit normal) queued by hand, and the one-class benchmark split over two machines:
# digit 0 on machine A with it, digit 1 on machine B with a one-dimensional code (a natural
# sweep value) and again (DVC's run cache), digit 2 on B with a bad param, so that it fails.
EXPERIMENTS = {"all-digits": "split.normal_digits=[0,1,2,3,4,5,6,7,8,9]"}
ONECLASS_A = ["--digits", "0"]
ONECLASS_B = ["--digits", "1", "-S", "train.latent_dim=1"]
ONECLASS_FAILING = ["--digits", "2", "-S", "evaluate.bootstrap=1"]

# Hypothesis: a few examples per property locally, the full count in CI (CI=true).
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project: no outputs, no DVC cache."""
    return copy_project(tmp_path)


def built_once(factory: pytest.TempPathFactory, worker_id: str, name: str,
               build: Callable[[Path], None]) -> Path:  # fmt: skip
    """`build(folder)` once per test session, whichever xdist worker asks first; the
    folder, once built."""
    shared = factory.getbasetemp() if worker_id == "master" else factory.getbasetemp().parent
    folder = shared / name
    with FileLock(str(folder) + ".lock"):
        done = folder / "built"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


# The pipeline in a copy of the project.


def reproduced(folder: Path, **params: object) -> None:
    """folder/project: a copy with `params` changed, after `dvc repro` with the default
    SQLite store (what each stage read and wrote recorded in folder/record), then
    committed (so that clones and experiments start from it). The
    temporary folder the run used is deleted afterwards: nothing may depend on it. Every
    process still running in the copy when `dvc repro` returned is listed in
    folder/leftover_processes.txt."""
    copy = copy_project(folder)
    set_params(copy, **params)
    # Must come back from the pipeline (already gone while `make test-all`'s dvc repro is
    # between CI's removal and evaluate).
    (copy / "reports" / "metrics.json").unlink(missing_ok=True)
    commit(copy)  # runs are tagged with the commit
    temp = folder / "tmp"
    temp.mkdir()
    # Each stage's reads and writes into folder/record (tests/stage_reads.py).
    recorder = os.pathsep.join([str(copy / "src"), str(copy / "tests" / RECORDER.name)])
    run(["dvc", "repro"], cwd=copy, env={"TMPDIR": str(temp), "PYTHONPATH": recorder,
                                         "AELAB_RECORD": str(folder / "record")})  # fmt: skip
    (folder / "leftover_processes.txt").write_text("\n".join(processes_in(copy)))
    shutil.rmtree(temp)
    commit(copy)


@pytest.fixture(scope="session")
def small_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The session pipeline (SMALL_PARAMS), reproduced. Read-only: tests that run dvc in it
    or change it take a copy (`small`)."""
    folder = built_once(tmp_path_factory, worker_id, "small",
                        lambda folder: reproduced(folder, **SMALL_PARAMS))  # fmt: skip
    return folder / "project"


@pytest.fixture
def small(small_pipeline: Path, tmp_path: Path) -> Path:
    return copy_of(small_pipeline, tmp_path)


def run_experiments(folder: Path, pipeline: Path) -> None:
    """folder/project, machine A: a copy of `pipeline` whose EXPERIMENTS were queued and
    run, two at a time, with the one-class benchmark's ONECLASS_A, pushed to the team's
    git repository (folder/team.git) and DVC remote (folder/dvc-remote). Meanwhile
    folder/b, machine B, a clone of team.git, runs ONECLASS_FAILING, then ONECLASS_B,
    pushes, and runs ONECLASS_B again. A then pulls the benchmark's experiments and writes
    the table. What the commands printed is kept beside: queue.log, oneclass_*.txt."""
    project = copy_of(pipeline, folder)
    team, storage = folder / "team.git", folder / "dvc-remote"
    run(["git", "init", "-q", "--bare", str(team)], cwd=folder)
    run(["git", "remote", "add", "origin", str(team)], cwd=project)
    run(["dvc", "remote", "add", "-d", "team", str(storage)], cwd=project)
    commit(project)
    run(["git", "push", "-q", "origin", "HEAD"], cwd=project)
    branch = run(["git", "branch", "--show-current"], cwd=project).stdout.strip()
    machine_b = threading.Thread(target=run_machine_b, args=(folder, team, branch))
    machine_b.start()
    try:
        for name, change in EXPERIMENTS.items():
            run(["dvc", "exp", "run", "--queue", "-n", name, "-S", change], cwd=project)
        keep(folder / "oneclass_a.txt", benchmark(project, *ONECLASS_A, "--push", "origin"))
        status = wait_until(lambda: queue_finished(project), timeout=1800, what="the queue",
                            interval=1)  # fmt: skip
        logs = "".join(run(["dvc", "queue", "logs", name], cwd=project, check=False).stdout
                       for name in EXPERIMENTS)  # fmt: skip
        (folder / "queue.log").write_text(f"{status}\n{logs}")
    finally:
        machine_b.join()
        run(["dvc", "queue", "stop", "--kill"], cwd=project, check=False)
    keep(folder / "oneclass_pull.txt", benchmark(project, "--pull", "origin"))


def run_machine_b(folder: Path, team: Path, branch: str) -> None:
    machine_b = folder / "b"
    run(["git", "clone", "-q", "-b", branch, str(team), str(machine_b)], cwd=folder)
    keep(folder / "oneclass_failing.txt", benchmark(machine_b, *ONECLASS_FAILING))
    keep(folder / "oneclass_b.txt", benchmark(machine_b, *ONECLASS_B, "--push", "origin"))
    keep(folder / "oneclass_rerun.txt", benchmark(machine_b, *ONECLASS_B))
    rerun = run(["dvc", "queue", "logs", "oneclass-1"], cwd=machine_b, check=False)
    (folder / "oneclass_rerun.log").write_text(rerun.stdout)
    run(["dvc", "queue", "stop", "--kill"], cwd=machine_b, check=False)


def benchmark(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["aelab", "benchmark", "oneclass", *args], cwd=project, check=False)


def keep(path: Path, result: subprocess.CompletedProcess) -> None:
    """A command's exit status and error output, for the tests to read."""
    path.write_text(f"{result.returncode}\n{result.stderr}")


def queue_finished(project: Path) -> str | None:
    """`dvc queue status`'s table once nothing runs or waits."""
    status = run(["dvc", "queue", "status"], cwd=project).stdout
    return status if "Running" not in status and "Queued" not in status else None


@pytest.fixture(scope="session")
def experiments(small_pipeline: Path, tmp_path_factory: pytest.TempPathFactory,
                worker_id: str) -> Path:  # fmt: skip
    """Machine A after its experiments ran (run_experiments; read-only; the commands'
    outputs beside it, machine B in ../b)."""
    folder = built_once(tmp_path_factory, worker_id, "experiments",
                        lambda folder: run_experiments(folder, small_pipeline))  # fmt: skip
    return folder / "project"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that read the project's own pipeline: `make test-all` runs every
    other test beside `dvc repro`, and these once it has finished. The users of
    `experiments` share one xdist worker: spread over two, one worker would build the
    fixture while the other waited for it."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "default_pipeline" in fixtures:
            item.add_marker(pytest.mark.project_pipeline)
        if "experiments" in fixtures:
            item.add_marker(pytest.mark.xdist_group("experiments"))


@pytest.fixture(scope="session")
def default_pipeline() -> Path:
    """The project itself, reproduced with its own params by `make repro` (which `make
    test-all` and CI run before the tests): read it, never change it."""
    status = run(["dvc", "status", "--json"], cwd=PROJECT_ROOT, check=False)
    if status.returncode != 0 or json.loads(status.stdout or "{}"):
        pytest.fail("the project's pipeline is not reproduced: run `make repro` first "
                    "(`make test-all` does)")  # fmt: skip
    return PROJECT_ROOT


# A workspace written in this process.


def write_workspace(root: Path) -> None:
    """A small workspace as the stages leave it, written with aelab's own code in this
    process, in `root`: params.yaml with one `ae` variant (2-d code, 2 epochs), 200 random
    digits split, the trained model with its report and history, features, metrics with the
    pixel baseline, the split's counts, the anomaly detector and the latent-space figure."""
    import torch

    from aelab.analysis.intervals import over_seeds, resamples
    from aelab.core import paths
    from aelab.core.io import save_json
    from aelab.core.params import PIXELS, load_params
    from aelab.data import digits
    from aelab.data.features import load_features, save_features
    from aelab.data.split import split_digits, split_stats
    from aelab.models.checkpoints import save_checkpoint
    from aelab.reports import figures
    from aelab.reports.evaluation import clusters_of, evaluate_seed, pixel_features, pixel_methods
    from aelab.serving import detector
    from aelab.training.encoding import extract
    from aelab.training.loop import as_inputs, fit, training_report

    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    set_params(root, train__max_epochs=2, train__seeds=1,
               variants={"ae": {"kind": "ae", "hidden_dims": [8], "latent_dim": 2}},
               evaluate__clusterers=["kmeans"], champions__encoder="ari_all_kmeans")  # fmt: skip
    params = load_params(root / "params.yaml")
    (seed,) = params.seeds_of("ae")
    rng = np.random.default_rng(0)
    raw = digits.Digits(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
                        np.repeat(np.arange(10, dtype=np.uint8), 20),
                        np.full(200, "train"))  # fmt: skip
    digits.save(root / paths.RAW_DIGITS, raw)
    sets = split_digits(raw, params.split, params.seed)
    for part, subset in sets.items():
        digits.save(root / paths.split_file(part), subset)
    save_json(root / paths.SPLIT_STATS, split_stats(sets))
    config = params.variant("ae")
    inputs = {part: as_inputs(subset.images, torch.device("cpu")) for part, subset in sets.items()}
    (trained,) = fit(config, [seed], inputs["train"], inputs["val"], "ae")
    model, history = trained.model, trained.history
    save_checkpoint(root / paths.checkpoint_dir("ae", 0), "ae", model, history)
    save_json(root / paths.train_report("ae"),
              {"seed_0": training_report(model, history, config)})  # fmt: skip
    save_features(root / paths.features_file("ae", 0),
                  {part: extract(model, inputs[part]) for part in sets}, sets)  # fmt: skip
    features = load_features(root / paths.features_file("ae", 0))
    test = sets["test"]
    weights = resamples(len(test.labels), params.evaluate.bootstrap, params.seed)
    per_seed = {
        "ae": evaluate_seed(features, params.evaluate, seed, weights),
        PIXELS: evaluate_seed(pixel_features(sets), pixel_methods(params.evaluate), params.seed,
                              weights),
    }  # fmt: skip
    results = {name: over_seeds([one.metrics]) for name, one in per_seed.items()}
    save_json(root / paths.METRICS, {name: means for name, (means, _) in results.items()})
    save_json(root / paths.INTERVALS, {name: halves for name, (_, halves) in results.items()})
    save_json(root / paths.DETECTOR_REPORT, detector.build(root, params, *(
        {name: result[i] for name, result in results.items()} for i in (0, 1))))  # fmt: skip
    clusters = clusters_of(features["test_latent"], 10, params.evaluate, seed)
    figure = figures.latent_space("ae", features["test_latent"], test.labels, clusters)  # 2-d
    figures.save(figure, root / paths.latent_space_figure("ae"))


def build_workspace(folder: Path) -> None:
    """folder/workspace: write_workspace's."""
    (folder / "workspace").mkdir()
    write_workspace(folder / "workspace")


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    return built_once(tmp_path_factory, worker_id, "workspace", build_workspace) / "workspace"


@pytest.fixture
def workspace(workspace_template: Path, tmp_path: Path) -> Path:
    """A copy of the written workspace: its project root."""
    copy = tmp_path / "workspace"
    shutil.copytree(workspace_template, copy)
    return copy


# MLflow stores.


def migrate_store(folder: Path) -> None:
    """folder/mlflow.db: an empty SQLite store with MLflow's tables (its migrations take
    seconds, a copy of the file none)."""
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    return built_once(tmp_path_factory, worker_id, "store", migrate_store) / "mlflow.db"


@pytest.fixture
def store(workspace: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty MLflow store in the workspace, as MLFLOW_TRACKING_URI: its URI."""
    shutil.copy(empty_store, workspace / "store.db")
    uri = f"sqlite:///{workspace / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def build_logged(folder: Path, workspace: Path, empty: Path) -> None:
    """folder/workspace: a copy of `workspace` logged by the log step into its own store,
    folder/workspace/mlflow.db (the default one), artifacts beside it."""
    from aelab.core.params import load_params
    from aelab.tracking.store import log_runs
    from aelab.tracking.workspace import workspace_runs

    copy = folder / "workspace"
    shutil.copytree(workspace, copy)
    shutil.copy(empty, copy / "mlflow.db")
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        params = load_params(copy / "params.yaml")
        runs = workspace_runs(copy, params)
        log_runs(copy, runs, [run.key() for run in runs], params.champions)
    finally:
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri


@pytest.fixture(scope="session")
def logged_template(
    workspace_template: Path, empty_store: Path, tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
) -> Path:  # fmt: skip
    folder = built_once(
        tmp_path_factory,
        worker_id,
        "logged",
        lambda folder: build_logged(folder, workspace_template, empty_store),
    )
    return folder / "workspace"  # fmt: skip


@pytest.fixture
def logged_workspace(logged_template: Path, tmp_path: Path) -> Path:
    """A copy of the workspace after the log step, its store moved with it: its root."""
    copy = tmp_path / "workspace"
    shutil.copytree(logged_template, copy)
    relocate_store(copy, logged_template)
    return copy


@pytest.fixture
def logged(logged_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """logged_workspace's store as MLFLOW_TRACKING_URI: its URI."""
    uri = f"sqlite:///{logged_workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
