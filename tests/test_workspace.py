"""aelab.tracking.workspace: the runs a workspace holds, and their content keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import save_json
from aelab.core.params import load_params
from aelab.tracking.workspace import RunContent, _flatten, workspace_runs


def runs_of(folder: Path) -> dict[str, RunContent]:
    return {run.name: run for run in workspace_runs(folder, load_params(folder / "params.yaml"))}


def test_a_variant_run_carries_its_params_metrics_history_data_figures_and_model(workspace):
    ae = runs_of(workspace)["ae"]
    assert ae.experiment == "aelab"
    assert ae.params["latent_dim"] == 2 and ae.params["data.source"] == "sample"
    assert ae.params["evaluate.n_init"] == 10 and ae.params["seed"] == 42
    report = json.loads((workspace / paths.train_report("ae")).read_text())["seed_0"]
    evaluation = json.loads((workspace / paths.METRICS).read_text())["ae"]
    half_widths = json.loads((workspace / paths.INTERVALS).read_text())["ae"]
    assert ae.metrics == {
        **{f"seed_0_{key}": value for key, value in report.items() if key != "stopped_by"},
        **evaluation,
        **{f"{key}_ci95": value for key, value in half_widths.items()},
    }
    assert [row["epoch"] for row in ae.history] == [1.0, 2.0]
    assert set(ae.history[0]) >= {"seed_0/train_loss", "seed_0/val_loss", "seed_0/val_mse"}
    assert ae.datasets == {"training": paths.split_file("train"),
                           "evaluation": paths.split_file("test")}  # fmt: skip
    assert ae.figures == [paths.latent_space_figure("ae")]  # the ones on disk
    assert ae.model == paths.checkpoint_dir("ae", 0)
    assert ae.tags["aelab.variant"] == "ae" and len(ae.tags["data.sha256"]) == 64
    assert ae.tags["aelab.seed_0_stopped_by"] == report["stopped_by"] == "max_epochs"
    assert ae.metrics["seed_0_converged"] == 0.0


def test_the_pixel_baseline_and_the_data_run(workspace):
    runs = runs_of(workspace)
    assert list(runs) == ["ae", "pixels", "data"]
    assert runs["pixels"].model is None and runs["pixels"].params["kind"] == "pixels"
    data = runs["data"]
    assert data.experiment == "aelab-data"
    stats = json.loads((workspace / paths.SPLIT_STATS).read_text())
    assert data.metrics["test_size"] == stats["test"]["size"]
    assert set(data.tags) == {"sha256.train", "sha256.val", "sha256.test", "sha256.raw"}


def test_keys_are_deterministic_and_follow_the_content(workspace):
    keys = [run.key() for run in runs_of(workspace).values()]
    assert keys == [run.key() for run in runs_of(workspace).values()]
    metrics = json.loads((workspace / paths.METRICS).read_text())
    metrics["ae"]["roc_auc_recon"] = 0.123
    save_json(workspace / paths.METRICS, metrics)
    changed = [run.key() for run in runs_of(workspace).values()]
    assert changed[0] != keys[0] and changed[1:] == keys[1:]  # only ae's content moved


def test_timings_show_but_do_not_change_the_key(workspace):
    key = runs_of(workspace)["ae"].key()
    save_json(workspace / paths.timing_file("ae"), {"train_seconds": 1.5})
    ae = runs_of(workspace)["ae"]
    assert ae.timings == {"train_seconds": 1.5} and ae.key() == key


def test_content_key_covers_the_bytes_of_its_files(tmp_path: Path):
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"png")
    run = RunContent("aelab", "ae", {"lr": 0.001}, {"roc_auc_recon": 0.9},
                     figures=[Path(figure.name)], root=tmp_path)  # fmt: skip
    key = run.key()
    figure.write_bytes(b"other png")
    assert run.key() != key


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        (paths.METRICS, "reports/metrics.json: file not found; run `dvc repro evaluate` first"),
        (paths.train_report("ae"), "reports/train/ae.json: file not found; run `dvc repro "
                                   "train@ae` first"),
        (paths.SPLIT_STATS, "reports/split.json: file not found; run `dvc repro split` first"),
    ],
)  # fmt: skip
def test_a_missing_file_says_which_stage_to_run(workspace, missing, says):
    (workspace / missing).unlink()
    with pytest.raises(AelabError) as caught:
        workspace_runs(workspace, load_params(workspace / "params.yaml"))
    assert str(caught.value) == f"{workspace}/{says}"


def test_metrics_without_a_variant_say_to_run_evaluate(workspace):
    save_json(workspace / paths.METRICS, {"pixels": {}})
    with pytest.raises(AelabError, match=r"has no metrics of \['ae'\]; run `dvc repro evaluate`"):
        workspace_runs(workspace, load_params(workspace / "params.yaml"))


def test_flatten_names_nested_figures():
    assert _flatten({"train": {"size": 3, "digits": {"0": 1}}, "n": 2}) == {
        "train_size": 3,
        "train_digits_0": 1,
        "n": 2,
    }
