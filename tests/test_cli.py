"""The `aelab` command, in this process: `aelab log` and its arguments (`aelab check`
against real git revisions is in test_check.py)."""

from __future__ import annotations

import json

from helpers import PROJECT_ROOT

from aelab.cli import main
from aelab.core import paths
from aelab.core.params import load_params
from aelab.tracking.workspace import workspace_runs


def test_log_with_tracking_off_writes_the_keys_and_no_store(workspace, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_TRACKING", "off")
    assert main(["--project", str(workspace), "log"]) == 0
    assert "nothing logged" in capsys.readouterr().out
    keys = json.loads((workspace / paths.LOGGED).read_text())
    runs = workspace_runs(workspace, load_params(workspace / "params.yaml"))
    assert keys == {f"{run.experiment}/{run.name}": run.key() for run in runs}
    assert not (workspace / "mlflow.db").exists()


def test_log_outside_a_project_is_one_line(tmp_path, capsys):
    assert main(["--project", str(tmp_path), "log"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path.resolve()} is not inside an aelab project (no params.yaml "
                   f"there or above); run from the project's folder\n")  # fmt: skip
    assert not (tmp_path / paths.LOGGED).exists()


def test_log_without_a_workspace_is_one_line(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    assert main(["--project", str(tmp_path), "log"]) == 1
    err = capsys.readouterr().err
    metrics = tmp_path.resolve() / paths.METRICS
    assert err == f"error: {metrics}: file not found; run `dvc repro evaluate` first\n"
    assert not (tmp_path / paths.LOGGED).exists()


def test_log_with_a_stage_missing_writes_nothing(workspace, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_TRACKING", "off")
    (workspace / paths.train_report("ae")).unlink()
    assert main(["--project", str(workspace), "log"]) == 1
    assert "run `dvc repro train@ae` first" in capsys.readouterr().err
    assert not (workspace / paths.LOGGED).exists()


def test_bad_arguments_are_one_line(capsys):
    assert main([]) == 2
    assert main(["log", "--bogus"]) == 2
    assert main(["check", "--min-same", "95"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "'95' is not a share from 0 to 1" in errors[2]
    assert len(errors) == 3 and all(line.startswith("error: aelab") for line in errors)
