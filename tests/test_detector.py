"""The anomaly detector for new images (aelab.serving.detector): the evaluation's scores, kept
without pickle, loaded back whole or refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from aelab.analysis import scores
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import save_arrays
from aelab.core.params import load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.serving import detector
from aelab.training.loop import as_inputs


@pytest.mark.parametrize("score", ["gmm", "knn", "recon"])
def test_the_detector_gives_the_evaluations_scores_of_the_test_digits(workspace: Path, score):
    """Scoring the test images anew (images -> network -> density) gives the scores
    evaluate computed from seed 0's features, and the threshold from the validation ones."""
    params = load_params(workspace / "params.yaml")
    champions = params.champions.model_copy(update={"anomaly": f"roc_auc_{score}"})
    params = params.model_copy(update={"champions": champions})
    config = detector.build(
        workspace, params, json.loads((workspace / paths.METRICS).read_text()), {}
    )
    found = detector.load(workspace / paths.DETECTOR_DIR)
    test = digits.load_split(workspace, "test")
    answers = found.predict(as_inputs(test.images, torch.device("cpu")).numpy())

    features = load_features(workspace / paths.features_file("ae", 0))
    codes = {p: scores.prepared(features[f"{p}_latent"], params.evaluate.normalize_codes)
             for p in ("train", "val", "test")}  # fmt: skip
    if score == "recon":
        expected = {"val": features["val_error"], "test": features["test_error"]}
    else:
        expected = scores.scores_of(
            score, codes["train"], {"val": codes["val"], "test": codes["test"]},
            params.evaluate, params.seed,
        )  # fmt: skip
    np.testing.assert_allclose(answers["score"], expected["test"], rtol=1e-5, atol=1e-6)
    assert config["threshold"] == pytest.approx(np.percentile(expected["val"], 95))
    np.testing.assert_array_equal(answers["is_anomaly"], answers["score"] > config["threshold"])
    np.testing.assert_array_equal(answers["code"], features["test_latent"])
    assert set(answers["cluster"]) <= set(range(config["clusters"]))


def test_the_detectors_clusters_are_k_means_of_the_training_codes(workspace: Path):
    """k from the training digits' classes (the normal ones), the centres from their codes."""
    params = load_params(workspace / "params.yaml")
    config = detector.build(workspace, params, json.loads((workspace / paths.METRICS).read_text()),
                            {})  # fmt: skip
    features = load_features(workspace / paths.features_file(config["variant"], 0))
    expected = (
        KMeans(
            n_clusters=len(params.split.normal_digits),
            n_init=params.evaluate.n_init,
            random_state=params.seed,
        )
        .fit(features["train_latent"])
        .cluster_centers_
    )
    np.testing.assert_array_equal(detector.load(workspace / paths.DETECTOR_DIR).centres, expected)
    assert config["clusters"] == len(params.split.normal_digits)


def test_nothing_in_the_detector_comes_from_the_test_digits(workspace: Path):
    """Other test digits in the features file build the same detector, byte for byte."""
    params = load_params(workspace / "params.yaml")
    results = json.loads((workspace / paths.METRICS).read_text())
    variant = detector.build(workspace, params, results, {})["variant"]
    built = {name: (workspace / paths.DETECTOR_DIR / name).read_bytes()
             for name in ("detector.json", "arrays.npz")}  # fmt: skip
    file = workspace / paths.features_file(variant, 0)
    features = load_features(file)
    rng = np.random.default_rng(0)
    for column in ("latent", "error"):
        features[f"test_{column}"] = rng.random(features[f"test_{column}"].shape, np.float32)
    features["test_label"] = rng.integers(0, 10, len(features["test_label"]))
    save_arrays(file, features)
    detector.build(workspace, params, results, {})
    assert {name: (workspace / paths.DETECTOR_DIR / name).read_bytes() for name in built} == built


def test_the_detector_is_a_folder_without_pickles(workspace: Path):
    assert sorted(p.name for p in (workspace / paths.DETECTOR_DIR).iterdir()) == [
        "arrays.npz", "detector.json", "encoder",
    ]  # fmt: skip
    with np.load(workspace / paths.DETECTOR_DIR / "arrays.npz", allow_pickle=False) as arrays:
        assert {"centres", "means", "precisions_cholesky"} <= set(arrays.files)
    report = json.loads((workspace / paths.DETECTOR_REPORT).read_text())
    assert report["variant"] == "ae" and report["metric"] == "roc_auc_gmm"


def test_without_anomalies_the_first_variant_is_packaged(workspace: Path):
    params = load_params(workspace / "params.yaml")
    results = {"ae": {"roc_auc_gmm": None}}
    config = detector.build(workspace, params, results, {})
    assert config["variant"] == "ae" and config["mean"] is None
    assert "no variant has roc_auc_gmm" in config["chosen_by"]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda folder: (folder / "detector.json").unlink(), "detector.json: file not found"),
        (lambda folder: (folder / "detector.json").write_text("{"), "detector.json: unreadable"),
        (lambda folder: (folder / "arrays.npz").write_bytes(b"x"), "arrays.npz: unreadable"),
        (lambda folder: (folder / "encoder" / "model.pt").write_bytes(b"x"), "model.pt"),
    ],
)
def test_a_damaged_detector_is_one_line_that_says_how_to_rebuild_it(workspace, damage, expected):
    damage(workspace / paths.DETECTOR_DIR)
    with pytest.raises(AelabError) as error:
        detector.load(workspace / paths.DETECTOR_DIR)
    message = str(error.value)
    assert expected in message and "dvc repro detector" in message and "\n" not in message
