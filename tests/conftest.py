"""Shared set-up: temporary copies of the project, the pipeline runs tests share, and a way
to run commands in a copy as `make` would.

Two pipeline runs serve every end-to-end test of a session: `tiny_pipeline` (the default
variants, read-only for the tests) and `small_pipeline` (two variants, which tests copy
before changing anything). Under pytest-xdist each is built once for all workers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock
from hypothesis import HealthCheck, settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# ae sets its own epochs, so that tests can change them with `-S variants.ae.epochs=N`.
TWO_VARIANTS = {"ae": {"kind": "ae", "epochs": 1}, "pca": {"kind": "pca"}}

# Hypothesis: a few examples per property locally, the full count in CI (CI=true).
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def project_files() -> list[str]:
    """Files git would commit: tracked ones plus new ones that are not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listing.stdout.splitlines() if (PROJECT_ROOT / name).is_file()]


def copy_project(folder: Path) -> Path:
    """A fresh git + DVC copy of the project in `folder`, with no outputs and no cache."""
    copy = folder / "project"
    for name in project_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    return copy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path)


def built_once(factory: pytest.TempPathFactory, worker_id: str, name: str,
               build: Callable[[Path], Path]) -> Path:  # fmt: skip
    """`build(folder)` once per test session, whichever xdist worker asks first."""
    shared = factory.getbasetemp() if worker_id == "master" else factory.getbasetemp().parent
    folder = shared / name
    with FileLock(str(folder) + ".lock"):
        done = folder / "project"
        if not done.is_dir():
            folder.mkdir(exist_ok=True)
            build(folder)
    return done


def reproduced(folder: Path, **params: object) -> Path:
    """A copy with `params` changed, after `dvc repro` with the default SQLite store, then
    committed (so that clones and experiments start from it). The temporary folder the
    run used is deleted afterwards: nothing may depend on it. Every process still running
    in the copy when `dvc repro` returned is listed in leftover_processes.txt."""
    copy = copy_project(folder)
    set_params(copy, **params)
    (copy / "reports" / "metrics.json").unlink()  # must come back from the pipeline
    commit(copy)  # runs are tagged with the commit
    temp = folder / "tmp"
    temp.mkdir()
    run(["dvc", "repro"], cwd=copy, env={"TMPDIR": str(temp)})
    (folder / "leftover_processes.txt").write_text("\n".join(processes_in(copy)))
    shutil.rmtree(temp)
    commit(copy)
    return copy


def processes_in(folder: Path) -> list[str]:
    """The command lines of the processes whose working folder is inside `folder`."""
    found = []
    for process in Path("/proc").iterdir():
        try:
            cwd = (process / "cwd").resolve(strict=True)
            cmdline = (process / "cmdline").read_bytes()
        except (OSError, RuntimeError):
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The whole pipeline with the default variants and seeds, 2 epochs each (the conv
    variants set their own: 1 here). Read-only: tests that run dvc in it or change it take
    a copy (`copy_of`)."""
    return built_once(tmp_path_factory, worker_id, "tiny",
                      lambda folder: reproduced(folder, train__epochs=2,
                                                variants__conv_ae__epochs=1,
                                                variants__conv_vae__epochs=1))  # fmt: skip


@pytest.fixture(scope="session")
def small_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The pipeline with two variants (ae, pca), one epoch. Read-only, like tiny_pipeline."""
    return built_once(tmp_path_factory, worker_id, "small",
                      lambda folder: reproduced(folder, train__epochs=1,
                                                variants=TWO_VARIANTS))  # fmt: skip


def copy_of(project: Path, folder: Path) -> Path:
    """A copy of a reproduced project, its outputs, DVC cache and MLflow store included.
    The store's experiments keep the original's artifact folder (MLflow records absolute
    paths): runs logged in the copy put their artifacts there, which no test reads."""
    copy = folder / "project"
    shutil.copytree(project, copy, symlinks=True)
    return copy


@pytest.fixture
def small(small_pipeline: Path, tmp_path: Path) -> Path:
    return copy_of(small_pipeline, tmp_path)


def set_params(project: Path, **changes: object) -> None:
    """Change params.yaml keys, given as paths with '__' between the parts."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = params
        for key in parents:
            section = section[key]
        section[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stages_run(dvc_output: str) -> list[str]:
    """The stages `dvc repro` ran, in order, from its output."""
    return [line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running")]


def write_workspace(root: Path) -> None:
    """A small workspace as the stages leave it, written with aelab's own code in this
    process, in `root`, which must be the current folder (aelab's paths are relative):
    params.yaml with one `ae` variant (2-d code, 2 epochs), 200 random digits split, the
    trained model with its report and history, features, metrics with the pixel baseline,
    the split's counts, the anomaly detector and the latent-space figure."""
    import torch

    from aelab import detector, figures, paths
    from aelab.checkpoints import save_checkpoint
    from aelab.data import digits
    from aelab.data.split import split_digits, split_stats
    from aelab.evaluation import (
        clusters_of,
        evaluate_seed,
        over_seeds,
        pixel_features,
        pixel_methods,
    )
    from aelab.features import extract
    from aelab.intervals import resamples
    from aelab.io import save_arrays, save_json
    from aelab.models import build_model
    from aelab.params import PIXELS, load_params
    from aelab.training import as_inputs, fit, seed_everything, training_report

    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    set_params(root, train__epochs=2, train__seeds=1,
               variants={"ae": {"kind": "ae", "hidden_dims": [8], "latent_dim": 2}},
               evaluate__clusterers=["kmeans"], champions__encoder="ari_all_kmeans")  # fmt: skip
    params = load_params(root / "params.yaml")
    rng = np.random.default_rng(0)
    raw = digits.Digits(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
                        np.repeat(np.arange(10, dtype=np.uint8), 20),
                        np.full(200, "train"))  # fmt: skip
    digits.save(paths.RAW_DIGITS, raw)
    sets = split_digits(raw, params.split, params.seed)
    for part, subset in sets.items():
        digits.save(paths.split_file(part), subset)
    save_json(paths.SPLIT_STATS, split_stats(sets))
    seed_everything(params.seed)
    config = params.variant("ae")
    model = build_model(config)
    inputs = {part: as_inputs(subset.images, torch.device("cpu")) for part, subset in sets.items()}
    history = fit(model, inputs["train"], inputs["val"], config, params.seed, "ae")
    save_checkpoint(paths.checkpoint_dir("ae", 0), "ae", model, history)
    save_json(paths.train_report("ae"), {"seed_0": training_report(model, history)})
    features = {}
    for part in ("train", "val", "test"):
        for key, values in extract(model, inputs[part]).items():
            features[f"{part}_{key}"] = values
        features[f"{part}_label"] = sets[part].labels
        features[f"{part}_is_anomaly"] = sets[part].is_anomaly
    test = sets["test"]
    weights = resamples(len(test.labels), params.evaluate.bootstrap, params.seed)
    per_seed = {
        "ae": evaluate_seed(features, params.evaluate, params.seed, weights),
        PIXELS: evaluate_seed(pixel_features(sets), pixel_methods(params.evaluate), params.seed,
                              weights),
    }  # fmt: skip
    results = {name: over_seeds([seed.metrics]) for name, seed in per_seed.items()}
    save_arrays(paths.features_file("ae", 0), features)
    save_json(paths.METRICS, {name: means for name, (means, _) in results.items()})
    save_json(paths.INTERVALS, {name: halves for name, (_, halves) in results.items()})
    save_json(paths.DETECTOR_REPORT, detector.build(params, *(
        {name: result[i] for name, result in results.items()} for i in (0, 1))))  # fmt: skip
    clusters = clusters_of(features["test_latent"], 10, params.evaluate, params.seed)
    figure = figures.latent_space("ae", features["test_latent"], test.labels, clusters)  # 2-d
    figures.save(figure, paths.latent_space_figure("ae"))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """write_workspace in a temporary folder, which is the current folder for the test."""
    monkeypatch.chdir(tmp_path)
    write_workspace(tmp_path)
    return tmp_path


def commit(project: Path) -> None:
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "test", "--allow-empty"], cwd=project)


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command as `make` would: the venv's tools first on PATH, the copy's code, the
    copy's own MLflow store unless `env` names another."""
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AELAB_TRACKING")
    }
    env = {
        **inherited,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd / "src"),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "aelab tests",
        "GIT_AUTHOR_EMAIL": "tests@aelab.invalid",
        "GIT_COMMITTER_NAME": "aelab tests",
        "GIT_COMMITTER_EMAIL": "tests@aelab.invalid",
        **(env or {}),
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result
