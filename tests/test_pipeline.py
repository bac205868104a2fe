"""End to end: a real `dvc repro` in a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import run, set_params

UP_TO_DATE = "Data and pipelines are up to date."


def variants(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["variants"])


def test_data_stages_run_then_have_nothing_to_do(project: Path):
    first = run(["dvc", "repro", "split"], cwd=project)
    assert "Running stage 'download'" in first.stdout and "Running stage 'split'" in first.stdout
    for name in ("raw/digits.npz", "split/train.npz", "split/val.npz", "split/test.npz"):
        assert (project / "data" / name).is_file(), name
    stats = json.loads((project / "reports" / "split.json").read_text())
    assert stats["test"]["size"] == 1000
    assert UP_TO_DATE in run(["dvc", "repro", "split"], cwd=project).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    assert metrics  # DVC reads the split stats as metrics


def test_changed_split_param_reruns_only_split(project: Path):
    run(["dvc", "repro", "split"], cwd=project)
    set_params(project, split__normal_digits=[0, 1])
    rerun = run(["dvc", "repro", "split"], cwd=project)
    assert "Stage 'download' didn't change, skipping" in rerun.stdout
    assert "Running stage 'split'" in rerun.stdout
    stats = json.loads((project / "reports" / "split.json").read_text())
    assert stats["train"]["digits"]["2"] == 0 and stats["train"]["digits"]["1"] > 0


def test_bad_params_stop_repro_with_one_line(project: Path):
    set_params(project, data__source="cifar10")
    result = run(["dvc", "repro"], cwd=project, check=False)
    assert result.returncode != 0
    assert "error: params.yaml: data.source = 'cifar10': Input should be 'sample'" in result.stderr
    assert not (project / "data").exists()


def test_whole_pipeline_produces_every_declared_output(tiny_pipeline: Path):
    project = tiny_pipeline
    names = variants(project)
    for name in names:
        folder = project / "models" / name
        assert {p.name for p in folder.iterdir()} == {"model.pt", "config.json", "history.csv"}
        assert (project / "data" / "features" / f"{name}.npz").is_file()
    assert UP_TO_DATE in run(["dvc", "repro"], cwd=project).stdout
    assert UP_TO_DATE in run(["dvc", "status"], cwd=project).stdout

    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    (workspace,) = metrics.values()  # keyed by revision: "" for the workspace
    shown = workspace["data"]["reports/metrics.json"]["data"]
    assert set(shown) == {*names, "pixels"}
    assert set(shown["pixels"]) == {"ari_all", "nmi_all", "ari_normal", "nmi_normal"}
    for name in names:
        assert 0 <= shown[name]["roc_auc"] <= 1 and shown[name]["compression_ratio"] == 24.5
    summary = (project / "reports" / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in [*names, "pixels"])

    plots = json.loads(run(["dvc", "plots", "show", "--json"], cwd=project).stdout)
    assert not plots.get("errors"), plots["errors"]
    for plot in ("train_loss", "val_loss", "val_mse"):
        points = plots["data"][plot][0]["content"]["data"]["values"]
        assert {point["filename"] for point in points} == {f"{n}/history.csv" for n in names}
    roc = plots["data"]["reports/roc.json"][0]["content"]["data"]["values"]
    assert {point["variant"] for point in roc} == set(names)
    figures = {Path(key).name for key in plots["data"] if key.startswith("reports/figures/")}
    assert {
        "1_architecture.png",
        "2_denoising.png",
        "3_l1_vs_l2.png",
        "reconstructions.png",
    } <= figures
    for name in names:
        assert {f"4_latent_space_{name}.png", f"5_anomalies_{name}.png"} <= figures
    run(["dvc", "plots", "show", "-o", "plots"], cwd=project)
    assert (project / "plots" / "index.html").is_file()


def test_all_ten_digits_normal_skips_anomaly_metrics(project: Path):
    set_params(
        project,
        train__epochs=1,
        split__normal_digits=list(range(10)),
        variants={"ae": {"kind": "ae"}, "pca": {"kind": "pca"}},
    )
    run(["dvc", "repro", "evaluate"], cwd=project)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["ae"]["roc_auc"] is None and metrics["ae"]["f1"] is None
    assert metrics["ae"]["ari_all"] == metrics["ae"]["ari_normal"]  # k = 10 on the same digits
    assert json.loads((project / "reports" / "roc.json").read_text()) == {"roc": []}


def test_adding_a_variant_in_params_adds_its_stages(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["variants"]["dae_uniform"] = {"kind": "dae", "noise": "uniform", "noise_level": 0.2}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stages = run(["dvc", "stage", "list"], cwd=project).stdout
    assert "train@dae_uniform" in stages and "extract@dae_uniform" in stages


def test_diverging_training_fails_with_one_line_and_writes_nothing(project: Path):
    set_params(project, train__epochs=3, variants__vae__lr=1.0, variants__vae__loss="mse")
    result = run(["dvc", "repro", "train@vae"], cwd=project, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: variant vae: the training loss became nan in epoch 1; "
        "lower the learning rate (lr = 1.0) in variants.vae or train"
    ]
    assert not (project / "models" / "vae").exists()
    assert not list((project / "models").glob(".vae*"))


def test_bad_variant_argument_is_one_line(project: Path):
    run(["dvc", "repro", "split"], cwd=project)
    result = run(["python", "-m", "stages.train", "--variant", "gan"], cwd=project, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unknown variant 'gan'; params.yaml defines: "
        "ae, ae_l1, dae, dae_masking, sparse, contractive, vae, pca"
    )
    result = run(["python", "-m", "stages.extract"], cwd=project, check=False)
    assert result.stderr.strip() == (
        "error: python -m stages.extract: the following arguments are required: --variant "
        "(see --help)"
    )


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
            # code is "modified", params.yaml a dict of changed keys; outputs are "deleted"
            any(state != "deleted" for state in change.get("changed deps", {}).values())
            or "changed command" in change
        )
    }
    assert not stale, f"run `dvc repro` and commit dvc.lock: {stale}"
