"""aelab.analysis.scores: the density scores on synthetic codes with a known answer (an
outlier far away from well-separated blobs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run, set_params
from sklearn.mixture import GaussianMixture

from aelab.analysis import scores
from aelab.core.errors import AelabError
from aelab.core.params import EvaluateParams, GmmParams, KnnParams, UmapParams

PARAMS = EvaluateParams(
    n_init=3, threshold_percentile=95, bootstrap=20, scores=["recon", "knn", "gmm"],
    clusterers=["kmeans", "gmm", "umap"], normalize_codes=False, knn=KnnParams(k=1),
    gmm=GmmParams(components=2, covariance="full"), umap=UmapParams(n_neighbors=10, n_epochs=50),
)  # fmt: skip


def blobs(k: int = 2, n_per: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k tight blobs 20 apart in 4-D, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    return np.eye(k, 4)[labels] * 20 + rng.normal(size=(len(labels), 4)), labels


@pytest.mark.parametrize("score", ["knn", "gmm"])
def test_a_far_outlier_scores_above_every_code_like_the_training_ones(score):
    train, _ = blobs(seed=0)
    near, _ = blobs(seed=1)
    judged = {"test": np.vstack([near, [[0, 0, 0, 100.0]]])}
    found = scores.scores_of(score, train, judged, PARAMS, seed=0)["test"]
    assert found.shape == (len(near) + 1,)
    assert found[-1] > found[:-1].max()


def test_knn_scores_the_distance_to_the_kth_nearest_training_code():
    train = np.array([[0.0], [1.0], [3.0]])
    assert scores.knn_distance(train, np.array([[0.0], [10.0]]), k=2).tolist() == [1.0, 9.0]


def test_normalized_codes_have_unit_length_and_keep_their_direction():
    codes = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]])
    assert scores.prepared(codes, True).tolist() == [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]]
    assert scores.prepared(codes, False).tolist() == codes.tolist()


def test_normalized_short_codes_are_stretched_to_unit_length():
    codes = np.array([[0.03, 0.04], [0.0, -1e-3]])
    assert scores.prepared(codes, True) == pytest.approx(np.array([[0.6, 0.8], [0.0, -1.0]]))


def test_the_knn_score_of_a_fitted_density_is_the_distance_to_the_nearest_training_code():
    train = np.array([[0.0], [1.0], [3.0]])
    fitted = scores.SCORES["knn"].fit(train, PARAMS, 0)
    assert set(fitted) == {"train", "k"}
    found = scores.scores_of("knn", train, {"test": np.array([[0.5], [2.5], [10.0]])}, PARAMS, 0)
    assert found["test"].tolist() == [0.5, 0.5, 7.0]


def test_recon_scores_the_reconstruction_errors_as_given():
    errors = np.array([0.5, 0.01, 0.2], dtype=np.float32)
    found = scores.scores_of("recon", errors, {"test": errors}, PARAMS, 0)["test"]
    assert found is errors and scores.SCORES["recon"].reads == "error"


def test_each_score_reads_the_codes_or_the_errors_of_a_features_file():
    features = {"train_latent": np.array([[3.0, 4.0]]), "train_error": np.array([0.5])}
    codes, errors = (scores.values_read(scores.SCORES[name], features, ("train",), True)
                     for name in ("knn", "recon"))  # fmt: skip
    assert codes["train"].tolist() == [[0.6, 0.8]] and errors["train"].tolist() == [0.5]
    del features["train_error"]  # the raw pixels: nothing reconstructs them
    assert scores.values_read(scores.SCORES["recon"], features, ("train",), True) is None


def test_an_unknown_score_is_one_line_naming_the_registered_ones():
    with pytest.raises(AelabError, match=r"^unknown anomaly score 'lof'; registered: recon, knn"):
        scores.scores_of("lof", np.zeros((2, 2)), {}, PARAMS, 0)


DIAG = PARAMS.model_copy(update={"gmm": GmmParams(components=2, covariance="diag")})


def test_a_fitted_mixture_keeps_its_kind_and_regularised_covariances():
    """A code that never varies gets the variance REG_COVAR (not scikit-learn's 1e-6)."""
    train, _ = blobs(seed=4)
    train[:, 3] = 5.0
    fitted = scores.SCORES["gmm"].fit(train, DIAG, 0)
    assert set(fitted) == {"covariance_type", *scores.MIXTURE_ARRAYS}
    assert str(fitted["covariance_type"]) == "diag"
    assert fitted["covariances"].shape == (2, 4)
    assert fitted["covariances"][:, 3] == pytest.approx([scores.REG_COVAR] * 2, rel=1e-6)


def test_a_saved_mixture_scores_like_scikit_learns_fitted_one():
    train, _ = blobs(seed=5)
    codes, _ = blobs(seed=6)
    fitted = scores.SCORES["gmm"].fit(train, DIAG, 0)
    model = GaussianMixture(2, covariance_type="diag", reg_covar=scores.REG_COVAR, random_state=0)
    expected = -model.fit(train).score_samples(codes)
    assert scores.SCORES["gmm"].score(fitted, codes) == pytest.approx(expected, rel=1e-9)


def test_the_same_seed_gives_the_same_mixture_on_codes_without_clusters():
    """Uniform noise: where the mixture ends up depends on its start, so on the seed."""
    noise = np.random.default_rng(0).random((120, 3))
    params = PARAMS.model_copy(update={"gmm": GmmParams(components=4, covariance="full")})
    one, two = (scores.scores_of("gmm", noise, {"test": noise}, params, 3) for _ in "ab")
    assert np.array_equal(one["test"], two["test"])


# A new score as a user adds one: an entry appended to the registry's module, nothing else.
CENTRE_SCORE = """

def fit_centre(train: np.ndarray, params: EvaluateParams, seed: int) -> Fitted:
    return {"centre": train.mean(axis=0)}


def centre_distance(fitted: Fitted, codes: np.ndarray) -> np.ndarray:
    return np.linalg.norm(codes - fitted["centre"], axis=1)


SCORES.add("centre", AnomalyScore(fit_centre, centre_distance))
"""


@pytest.mark.slow  # dvc repro in a copy of the small pipeline
def test_a_score_added_to_the_registry_alone_reaches_the_metrics_and_the_gate(small: Path):
    module = small / "src" / "aelab" / "analysis" / "scores.py"
    module.write_text(module.read_text() + CENTRE_SCORE)
    before = json.loads((small / "reports" / "metrics.json").read_text())
    chosen = yaml.safe_load((small / "params.yaml").read_text())["evaluate"]["scores"]
    set_params(small, evaluate__scores=[*chosen, "centre"])
    run(["dvc", "repro", "evaluate"], cwd=small)  # the stages import the copy's code

    after = json.loads((small / "reports" / "metrics.json").read_text())
    for name, metrics in after.items():  # every variant and the pixels, beside the others
        assert 0 <= metrics["roc_auc_centre"] <= 1 and metrics["threshold_centre"] > 0
        assert {key: metrics[key] for key in before[name]} == before[name]
    checked = run(["aelab", "check"], cwd=small)  # every new metric has a regression rule
    assert "| ae | roc_auc_centre |" in checked.stdout
