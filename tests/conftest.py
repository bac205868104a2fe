"""Shared fixtures: a temporary copy of the project and a way to run commands in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TWO_VARIANTS = {"ae": {"kind": "ae"}, "pca": {"kind": "pca"}}


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


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `dvc repro` of the whole pipeline with 2 epochs and the default SQLite store,
    shared by the tests that only look at its outputs and MLflow runs. The temporary
    folder the run used is deleted afterwards: nothing may depend on it."""
    copy = copy_project(tmp_path_factory.mktemp("tiny"))
    set_params(copy, train__epochs=2)
    (copy / "reports" / "metrics.json").unlink()  # must come back from the pipeline
    commit(copy)  # runs are tagged with the commit
    temp = copy.parent / "tmp"
    temp.mkdir()
    run(["dvc", "repro"], cwd=copy, env={"TMPDIR": str(temp)})
    shutil.rmtree(temp)
    return copy


def commit(project: Path) -> None:
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "test"], cwd=project)


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
