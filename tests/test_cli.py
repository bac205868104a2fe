"""The `aelab` command, in this process: `aelab log` and its arguments (`aelab check`
against real git revisions is in test_check.py)."""

from __future__ import annotations

import json
from pathlib import Path

from aelab.cli import main
from aelab.core import paths
from aelab.core.params import load_params
from aelab.tracking.workspace import workspace_runs


def test_log_with_tracking_off_writes_the_keys_and_no_store(workspace, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_TRACKING", "off")
    assert main(["log"]) == 0
    assert "nothing logged" in capsys.readouterr().out
    keys = json.loads(paths.LOGGED.read_text())
    runs = workspace_runs(load_params())
    assert keys == {f"{run.experiment}/{run.name}": run.key() for run in runs}
    assert not Path("mlflow.db").exists()


def test_log_without_a_workspace_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["log"]) == 1
    err = capsys.readouterr().err
    assert err == "error: params.yaml: file not found; run from the project root\n"
    assert not paths.LOGGED.exists()


def test_log_with_a_stage_missing_writes_nothing(workspace, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_TRACKING", "off")
    paths.train_report("ae").unlink()
    assert main(["log"]) == 1
    assert "run `dvc repro train@ae` first" in capsys.readouterr().err
    assert not paths.LOGGED.exists()


def test_bad_arguments_are_one_line(capsys):
    assert main([]) == 2
    assert main(["log", "--bogus"]) == 2
    assert main(["check", "--min-same", "95"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "'95' is not a share from 0 to 1" in errors[2]
    assert len(errors) == 3 and all(line.startswith("error: aelab") for line in errors)
