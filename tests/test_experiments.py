"""DVC experiments on the session pipeline, run once for the session (conftest.experiments):
one queued with `dvc exp run --queue -S ...` and one by `aelab benchmark oneclass`, run two
at a time by `dvc queue start`, and one pulled from another machine, each an ordinary
experiment (`dvc exp show`, `dvc exp apply`) that reaches the project's MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import EXPERIMENTS
from helpers import copy_of, run, variant_names
from test_tracking import runs_by_name, store_of

from aelab.core import paths

pytestmark = pytest.mark.slow
UP_TO_DATE = "Data and pipelines are up to date."


def shown(project: Path, name: str) -> dict:
    """The experiment `name` in `dvc exp show --json`: its params and metrics files."""
    for commit in json.loads(run(["dvc", "exp", "show", "--json"], cwd=project).stdout):
        for experiment in commit.get("experiments") or []:
            for revision in experiment["revs"]:
                if revision.get("name") == name:
                    return revision["data"]
    raise AssertionError(f"no experiment {name!r} in `dvc exp show`")


def metrics_file(data: dict, path: Path) -> dict:
    return data["metrics"][str(path)]["data"]


def test_both_queued_experiments_succeeded_and_reached_the_store(experiments: Path):
    log = (experiments.parent / "queue.log").read_text()
    for name in EXPERIMENTS:
        assert any(line.split()[1:2] == [name] and line.split()[-1] == "Success"
                   for line in log.splitlines()), log  # fmt: skip
    assert "database is locked" not in log  # two log steps, one SQLite store
    runs = runs_by_name(store_of(experiments), "aelab")
    ran_here = sorted([*EXPERIMENTS, "oneclass-0"])  # oneclass-1 ran on machine B
    for name in variant_names(experiments):
        tagged = sorted(r.data.tags.get("dvc.exp_name", "") for r in runs[name])
        assert tagged == ["", *ran_here], name  # the baseline's run and one each
    for name, found in runs.items():
        assert all(r.info.status == "FINISHED" for r in found)
        keys = [r.data.tags["aelab.key"] for r in found]
        assert len(keys) == len(set(keys)), name
        for each in found:  # artifacts in the project, not in DVC's deleted temp copy
            assert ".dvc/tmp/exps" not in each.info.artifact_uri


def test_the_articles_clustering_protocol_is_one_experiment(experiments: Path):
    """The article clusters the codes of an autoencoder trained on all ten digits: one
    experiment retrains on every digit, scores ARI at k = 10, and has no anomalies."""
    data = shown(experiments, "all-digits")
    assert data["params"]["params.yaml"]["data"]["split"]["normal_digits"] == list(range(10))
    trained_on = metrics_file(data, paths.SPLIT_STATS)["train"]["digits"]
    assert all(trained_on[str(d)] > 0 for d in range(10))
    metrics = metrics_file(data, paths.METRICS)
    clusterers = data["params"]["params.yaml"]["data"]["evaluate"]["clusterers"]
    baseline = json.loads((experiments / paths.METRICS).read_text())
    for name in [*variant_names(experiments), "pixels"]:
        row = metrics[name]
        anomaly = [key for key in baseline[name] if key.startswith(("roc_auc_", "f1_"))]
        assert anomaly  # the baseline has them; here they are null (`dvc exp show` omits them)
        assert all(row.get(key) is None for key in anomaly)
        for method in clusterers:  # k = 10 on the same digits: the same clustering
            if f"ari_all_{method}" in row:  # pixels has no mixture
                assert 0 < row[f"ari_all_{method}"] == row[f"ari_normal_{method}"]


def test_a_one_dimensional_code_runs_the_whole_pipeline(experiments: Path):
    """latent_dim 1 is a natural sweep value (`-S train.latent_dim=1`): machine B's digit."""
    metrics = metrics_file(shown(experiments, "oneclass-1"), paths.METRICS)
    assert metrics["ae"]["compression_ratio"] == metrics["pca"]["compression_ratio"] == 784


def test_an_applied_experiment_and_checkout_restore_matching_outputs(
    experiments: Path, tmp_path: Path
):  # fmt: skip
    project = copy_of(experiments, tmp_path)
    metrics = json.loads((project / paths.METRICS).read_text())
    weights = (project / "models/ae/seed_0/model.pt").read_bytes()

    run(["dvc", "exp", "apply", "oneclass-0"], cwd=project)
    run(["dvc", "checkout"], cwd=project)
    applied = json.loads((project / paths.METRICS).read_text())
    assert applied != metrics
    assert yaml.safe_load((project / "params.yaml").read_text())["split"]["normal_digits"] == [0]
    assert (project / "models/ae/seed_0/model.pt").read_bytes() != weights
    assert UP_TO_DATE in run(["dvc", "status"], cwd=project).stdout  # outputs match the exp

    run(["git", "checkout", "--", "."], cwd=project)  # back to the baseline's params
    run(["dvc", "checkout", "--force"], cwd=project)
    assert json.loads((project / paths.METRICS).read_text()) == metrics
    assert (project / "models/ae/seed_0/model.pt").read_bytes() == weights
