"""End to end: a real `dvc repro` in a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import error_lines, run, set_params, stages_run

from aelab.core import paths

pytestmark = pytest.mark.slow
UP_TO_DATE = "Data and pipelines are up to date."


def variants(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["variants"])


def plot_points(project: Path, plot: str) -> list[dict]:
    shown = json.loads(run(["dvc", "plots", "show", "--json"], cwd=project).stdout)
    assert not shown.get("errors"), shown["errors"]
    return shown["data"][plot][0]["content"]["data"]["values"]


def test_whole_pipeline_produces_every_declared_output(default_pipeline: Path, tmp_path: Path):
    """The project's own `make repro`: every declared output of the default variants."""
    project = default_pipeline
    names = variants(project)
    # the default train.seeds: every variant trains and extracts each
    seeds = yaml.safe_load((project / "params.yaml").read_text())["train"]["seeds"]
    for name in names:
        assert sorted(p.name for p in (project / paths.model_dir(name)).iterdir()) == [
            f"seed_{k}" for k in range(seeds)
        ]
        for k in range(seeds):
            folder = project / paths.checkpoint_dir(name, k)
            files = {p.name for p in folder.iterdir()}
            assert files == {paths.WEIGHTS, paths.CONFIG, paths.HISTORY}
            assert (project / paths.features_file(name, k)).is_file()
        assert (project / paths.train_report(name)).is_file()
    assert UP_TO_DATE in run(["dvc", "status"], cwd=project).stdout

    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    (workspace,) = metrics.values()  # keyed by revision: "" for the workspace
    files = workspace["data"]
    assert files["reports/split.json"]["data"]["test"]["size"] == 1000
    for name in names:  # every stage's figures, as DVC metrics
        report = files[f"reports/train/{name}.json"]["data"]
        assert all(report[f"seed_{k}"]["epochs"] >= 1 for k in range(seeds))
    shown = files["reports/metrics.json"]["data"]
    assert set(shown) == {*names, "pixels"}
    # pixels: no reconstruction and no mixtures (aelab.reports.evaluation.pixel_methods)
    assert {"roc_auc_knn", "ari_all_umap", "nmi_normal_kmeans"} <= set(shown["pixels"])
    assert not {"psnr", "roc_auc_gmm", "ari_all_gmm"} & set(shown["pixels"])
    for name in names:
        for score in ("recon", "knn", "gmm"):
            assert 0 <= shown[name][f"roc_auc_{score}"] <= 1
        assert 0 <= shown[name]["ari_all_umap"] <= 1 and shown[name]["compression_ratio"] == 24.5
    kinds = {name: entry["kind"] for name, entry in
             yaml.safe_load((project / "params.yaml").read_text())["variants"].items()}  # fmt: skip
    for name in names:  # generation: every variant by its mixture, the VAEs by their prior
        drawn = ["gmm", "prior"] if kinds[name] == "vae" else ["gmm"]
        keys = {f"{m}_{s}" for m in ("fd", "confident", "coverage") for s in drawn}
        assert all(shown[name][key] is not None for key in [*keys, "fd_interp", "interp_jump"])
        assert 0 < shown[name]["interp_jump"] <= 1 and 0 <= shown[name]["coverage_gmm"] <= 1
    assert shown["pixels"]["fd_real"] > 0
    assert files["reports/classifier.json"]["data"]["test_accuracy"] > 0.9
    summary = (project / paths.SUMMARY).read_text()
    assert all(f"| {name} |" in summary for name in [*names, "pixels"])
    assert (
        "## Generation" in summary and "What the numbers say about the article's claims" in summary
    )

    for plot in ("train_loss", "val_loss", "val_mse"):
        assert {point["variant"] for point in plot_points(project, plot)} == set(names)
    roc = plot_points(project, "reports/roc.json")
    lines = {f"{name} {score}" for name in names for score in ("recon", "knn", "gmm")}
    assert {point["variant"] for point in roc} == lines | {"pixels knn"}
    figures = {path.name for path in (project / paths.FIGURES_DIR).iterdir()}
    assert {"1_architecture.png", "2_denoising.png", "3_l1_vs_l2.png", "reconstructions.png"} <= (
        figures
    )
    for name in names:
        assert {f"4_latent_space_{name}.png", f"5_anomalies_{name}.png",
                f"6_samples_{name}.png", f"7_interpolation_{name}.png"} <= figures  # fmt: skip
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], cwd=project)
    assert (tmp_path / "plots" / "index.html").is_file()


def test_changed_split_param_reruns_only_split(small: Path):
    set_params(small, split__normal_digits=[0, 1])
    rerun = run(["dvc", "repro", "split"], cwd=small).stdout
    assert stages_run(rerun) == ["split"]
    stats = json.loads((small / paths.SPLIT_STATS).read_text())
    assert stats["train"]["digits"]["2"] == 0 and stats["train"]["digits"]["1"] > 0


def test_bad_params_stop_repro_with_one_line(project: Path):
    set_params(project, data__source="cifar10")
    result = run(["dvc", "repro"], cwd=project, check=False)
    assert result.returncode != 0
    params = project.resolve() / "params.yaml"
    assert f"error: {params}: data.source = 'cifar10': Input should be 'sample'" in result.stderr
    assert not (project / "data").exists()


def test_a_variant_added_in_params_alone_gets_its_stages_and_loss_curve(small: Path):
    """Its stages exist once params.yaml names it; figures alone, before evaluate has
    scored it, says to run evaluate; `dvc repro figures` then runs what it needs."""
    params = yaml.safe_load((small / "params.yaml").read_text())
    params["variants"]["dae_uniform"] = {"kind": "dae", "noise": "uniform", "noise_level": 0.2}
    (small / "params.yaml").write_text(yaml.safe_dump(params))
    stages = run(["dvc", "stage", "list"], cwd=small).stdout
    assert "train@dae_uniform" in stages and "extract@dae_uniform" in stages
    extracted = run(["dvc", "repro", "extract@dae_uniform"], cwd=small).stdout
    assert stages_run(extracted) == ["train@dae_uniform", "extract@dae_uniform"]

    alone = run(["dvc", "repro", "-s", "figures"], cwd=small, check=False)
    assert alone.returncode != 0
    assert error_lines(alone.stderr) == [
        "error: reports/metrics.json has no results for variant 'dae_uniform'; "
        "run `dvc repro evaluate`"
    ]

    rerun = run(["dvc", "repro", "figures"], cwd=small).stdout
    assert {"evaluate", "figures"} <= set(stages_run(rerun))
    points = plot_points(small, "val_loss")
    assert {point["variant"] for point in points} == set(variants(small))


def test_diverging_training_fails_with_one_line_and_writes_nothing(small: Path):
    set_params(small, variants={"vae": {"kind": "vae", "beta": 1.0, "lr": 1.0, "max_epochs": 3}})
    result = run(["dvc", "repro", "train@vae"], cwd=small, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: variant vae (seed 42): the training loss became nan in epoch 1; "
        "lower the learning rate (lr = 1.0) in variants.vae or train"
    ]
    assert not (small / paths.model_dir("vae")).exists()
    assert not list((small / paths.MODELS_DIR).glob(".vae*"))


def test_bad_variant_argument_is_one_line(small: Path):
    result = run(["python", "-m", "stages", "train", "--variant", "gan"], cwd=small, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unknown variant 'gan'; params.yaml defines: ae, conv_vae, pca"
    )
    result = run(["python", "-m", "stages", "extract"], cwd=small, check=False)
    assert result.stderr.strip() == (
        "error: python -m stages extract: the following arguments are required: --variant "
        "(see --help)"
    )


def lock_inputs(text: str) -> dict[str, dict]:
    """Each stage's command, params and code deps in a dvc.lock's text: what the code and
    params.yaml decide, the same on every machine (data deps and outputs are not: CPU
    convolutions and UMAP differ in the last digits across processors)."""
    stages = yaml.safe_load(text)["stages"]
    return {name: {"cmd": stage["cmd"], "params": stage.get("params", {}),
                   "code": {dep["path"]: dep.get("md5") for dep in stage.get("deps", [])
                            if dep["path"].startswith(("src/", "stages/"))}}
            for name, stage in stages.items()}  # fmt: skip


def test_the_committed_lock_matches_the_code_and_params(default_pipeline: Path):
    """dvc.lock is committed: after `make repro` its code and params must be those of the
    committed lock, or every fresh clone would rerun stages for nothing."""
    committed = run(["git", "show", "HEAD:dvc.lock"], cwd=default_pipeline).stdout
    written = (default_pipeline / "dvc.lock").read_text()
    stale = {name: inputs for name, inputs in lock_inputs(written).items()
             if lock_inputs(committed).get(name) != inputs}  # fmt: skip
    assert not stale, f"run `dvc repro` and commit dvc.lock: {sorted(stale)} changed"
