"""End to end: a real `dvc repro` in a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import run

UP_TO_DATE = "Data and pipelines are up to date."


def test_repro_runs_download_and_split_then_has_nothing_to_do(project: Path):
    first = run(["dvc", "repro"], cwd=project)
    assert "Running stage 'download'" in first.stdout and "Running stage 'split'" in first.stdout
    for name in ("raw/digits.npz", "split/train.npz", "split/val.npz", "split/test.npz"):
        assert (project / "data" / name).is_file(), name
    stats = json.loads((project / "reports" / "split.json").read_text())
    assert stats["test"]["size"] == 1000

    again = run(["dvc", "repro"], cwd=project)
    assert UP_TO_DATE in again.stdout
    assert UP_TO_DATE in run(["dvc", "status"], cwd=project).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    assert metrics  # DVC reads the split stats as metrics


def test_changed_split_param_reruns_only_split(project: Path):
    run(["dvc", "repro"], cwd=project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["split"]["normal_digits"] = [0, 1]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    rerun = run(["dvc", "repro"], cwd=project)
    assert "Stage 'download' didn't change, skipping" in rerun.stdout
    assert "Running stage 'split'" in rerun.stdout
    stats = json.loads((project / "reports" / "split.json").read_text())
    assert stats["train"]["digits"]["2"] == 0 and stats["train"]["digits"]["1"] > 0


def test_bad_params_stop_repro_with_one_line(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "cifar10"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(["dvc", "repro"], cwd=project, check=False)
    assert result.returncode != 0
    assert "error: params.yaml: data.source = 'cifar10': Input should be 'sample'" in result.stderr
    assert not (project / "data").exists()


def test_committed_lock_matches_the_code_and_params(project: Path):
    """dvc.lock is committed: a stale one would make every fresh clone rerun for nothing."""
    status = run(["dvc", "status", "--json"], cwd=project).stdout
    changes = json.loads(status)
    stale = {
        stage: change
        for stage, entries in changes.items()
        for change in entries
        if isinstance(change, dict)
        and (
            "modified" in change.get("changed deps", {}).values()  # code (outputs are "deleted")
            or "changed params" in change
            or "changed command" in change
        )
    }
    assert not stale, f"run `dvc repro` and commit dvc.lock: {stale}"
