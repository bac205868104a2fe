"""MLflow's model registry after the log step (aelab.tracking.registry), on a real SQLite store:
champions are set, and the alias moves only for a contender beyond the intervals."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from helpers import memory_growth, set_params
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aelab.core import paths
from aelab.core.params import load_params
from aelab.data import digits
from aelab.serving import detector
from aelab.tracking.integrity import CONTENT, DIGEST
from aelab.tracking.registry import ALIAS, MEAN, METRIC, _beats
from aelab.tracking.store import log_runs
from aelab.tracking.workspace import workspace_runs
from aelab.training.loop import as_inputs


def log_with(root: Path, metric: str, mean: float, half_width: float,
             new_model: bool = True) -> list[str]:  # fmt: skip
    """Log the workspace at `root` with ae's `metric` set to `mean` ± `half_width`: a new
    run and a contender; with `new_model`, a detector whose files differ (the same JSON,
    written again with one more space), so new content for the registry."""
    for file, value in ((root / paths.METRICS, mean), (root / paths.INTERVALS, half_width)):
        table = json.loads(file.read_text())
        table["ae"][metric] = value
        file.write_text(json.dumps(table))
    if new_model:
        config = root / paths.DETECTOR_DIR / paths.DETECTOR_CONFIG
        config.write_text(config.read_text() + " ")
    params = load_params(root / "params.yaml")
    runs = workspace_runs(root, params)
    return log_runs(root, runs, [run.key() for run in runs], params.champions)[2]


def champion(uri: str, name: str) -> int:
    return int(MlflowClient(uri).get_model_version_by_alias(name, ALIAS).version)


def test_a_worse_contender_keeps_the_champion_and_a_better_one_takes_over(
    workspace: Path, store: str
):  # fmt: skip
    log_with(workspace, "roc_auc_gmm", 0.80, 0.02)
    assert champion(store, "aelab-anomaly") == 1
    assert champion(store, "aelab-encoder") == 1

    lines = log_with(workspace, "roc_auc_gmm", 0.83, 0.02)  # better, but inside the noise: a tie
    assert lines[0].startswith("registry: aelab-anomaly v2 (ae, roc_auc_gmm 0.830 ± 0.020)")
    assert "v1 (roc_auc_gmm 0.800 ± 0.020) stays the champion" in lines[0]
    assert champion(store, "aelab-anomaly") == 1
    assert log_with(workspace, "roc_auc_gmm", 0.70, 0.01)[0].endswith("stays the champion")  # worse

    lines = log_with(workspace, "roc_auc_gmm", 0.90, 0.02)  # beyond both intervals
    assert lines[0].endswith("is the new champion")
    assert champion(store, "aelab-anomaly") == 4
    versions = MlflowClient(store).search_model_versions("name = 'aelab-anomaly'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    # The encoder's metric never changed beyond its interval: its champion stays.
    assert champion(store, "aelab-encoder") == 1


def test_the_same_content_is_not_registered_again(workspace: Path, store: str):
    """Only metrics change (say, a param of `evaluate`): the weights and code are the
    champion's, so no version is added, for either model."""
    log_with(workspace, "roc_auc_gmm", 0.80, 0.02)
    lines = log_with(workspace, "roc_auc_gmm", 0.95, 0.01, new_model=False)
    assert lines[0].startswith("registry: aelab-anomaly v1 (ae, roc_auc_gmm 0.950 ± 0.010) is")
    for name in ("aelab-anomaly", "aelab-encoder"):
        assert len(MlflowClient(store).search_model_versions(f"name = '{name}'")) == 1
    version = MlflowClient(store).get_model_version("aelab-anomaly", "1")
    assert len(version.tags[DIGEST]) == len(version.tags[CONTENT]) == 64


def test_a_new_champion_metric_compares_the_champions_value_of_that_metric(
    workspace: Path, store: str
):  # fmt: skip
    """champions.anomaly changes from roc_auc_gmm to roc_auc_knn: the champion's own
    roc_auc_knn (0.95) is what a contender (0.85) must beat, not its roc_auc_gmm."""
    log_with(workspace, "roc_auc_knn", 0.95, 0.01)
    set_params(workspace, champions__anomaly="roc_auc_knn")
    lines = log_with(workspace, "roc_auc_knn", 0.85, 0.01)
    assert lines[0].endswith("v1 (roc_auc_knn 0.950 ± 0.010) stays the champion"), lines[0]
    assert champion(store, "aelab-anomaly") == 1
    assert log_with(workspace, "roc_auc_knn", 0.99, 0.01)[0].endswith("is the new champion")


def test_the_registered_anomaly_model_answers_as_the_dvc_detector(
    logged_workspace: Path, logged: str
):  # fmt: skip
    mlflow.set_tracking_uri(logged)
    model = mlflow.pyfunc.load_model("models:/aelab-anomaly@champion")
    test = digits.load_split(logged_workspace, "test")
    expected = detector.load(logged_workspace / paths.DETECTOR_DIR).answers(test.images)
    for images in (test.images, as_inputs(test.images, torch.device("cpu")).numpy()):
        answers = model.predict(images)  # N x 28 x 28 uint8, and N x 784 floats
        np.testing.assert_allclose(answers["score"], expected["score"], rtol=1e-6)
        np.testing.assert_array_equal(answers["is_anomaly"], expected["is_anomaly"])
        np.testing.assert_array_equal(answers["cluster"], expected["cluster"])
        np.testing.assert_array_equal(np.stack(answers["code"]), np.stack(expected["code"]))
    version = MlflowClient(logged).get_model_version_by_alias("aelab-anomaly", ALIAS)
    mean = json.loads((logged_workspace / paths.METRICS).read_text())["ae"]["roc_auc_gmm"]
    assert version.tags[METRIC] == "roc_auc_gmm" and float(version.tags[MEAN]) == mean


def test_only_a_contender_beyond_both_intervals_beats_the_champion():
    old = {METRIC: "roc_auc_gmm", MEAN: "0.9", "aelab.ci95": "0.02"}
    assert not _beats({METRIC: "roc_auc_gmm", MEAN: "0.93", "aelab.ci95": "0.02"}, old)
    assert _beats({METRIC: "roc_auc_gmm", MEAN: "0.95", "aelab.ci95": "0.02"}, old)
    assert _beats({METRIC: "roc_auc_knn", MEAN: "0.5", "aelab.ci95": "0.02"}, old)  # not comparable
    assert _beats({METRIC: "roc_auc_gmm", MEAN: "0.5", "aelab.ci95": "0"}, {})  # set by hand


def test_a_request_beyond_the_cap_is_refused_in_one_line(logged: str):
    mlflow.set_tracking_uri(logged)
    model = mlflow.pyfunc.load_model("models:/aelab-anomaly@champion")
    with pytest.raises(MlflowException) as refused:
        model.predict(np.zeros((10_001, 784), np.float32))
    assert refused.value.message == ("the model input: 10,001 images, more than a request "
                                     "takes (10,000); send them in several requests")  # fmt: skip
    assert len(model.predict(np.zeros((3, 28, 28), np.uint8))) == 3


@pytest.mark.slow  # a new interpreter loads the model
def test_a_request_beyond_the_cap_is_one_line_in_bounded_memory(
    logged_workspace: Path, logged: str
):  # fmt: skip
    """100,000 digits in one request to the registered model's predict (the issue's served
    request took 4 GB): refused before any is converted, in one line."""
    setup = "\n".join([
        "import mlflow.pyfunc, numpy as np",
        f"mlflow.set_tracking_uri({logged!r})",
        "model = mlflow.pyfunc.load_model('models:/aelab-anomaly@champion')",
        "request = np.zeros((100_000, 28, 28), np.uint8)  # as MLflow hands it over",
    ])  # fmt: skip
    work = "\n".join([
        "try:",
        "    result = model.predict(request).shape",
        "except Exception as error:",
        "    result = f'{type(error).__name__}: {error}'",
    ])  # fmt: skip
    growth, peak, result = memory_growth(setup, work, logged_workspace)
    assert result == ("MlflowException: the model input: 100,000 images, more than a request "
                      "takes (10,000); send them in several requests"), result  # fmt: skip
    assert growth < 50, f"predict took {growth:.0f} MiB more (peak {peak:.0f} MiB)"
