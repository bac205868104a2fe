"""aelab.analysis.scores: the density scores on synthetic codes with a known answer (an
outlier far away from well-separated blobs)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from aelab.analysis import scores
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
    found = scores.density_scores(train, judged, score, PARAMS, seed=0)["test"]
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
    fitted = scores.fit_density(train, "knn", PARAMS, seed=0)
    assert set(fitted) == set(scores.DENSITY_ARRAYS["knn"]) and str(fitted["score"]) == "knn"
    found = scores.density_scores(train, {"test": np.array([[0.5], [2.5], [10.0]])}, "knn",
                                  PARAMS, seed=0)  # fmt: skip
    assert found["test"].tolist() == [0.5, 0.5, 7.0]


DIAG = PARAMS.model_copy(update={"gmm": GmmParams(components=2, covariance="diag")})


def test_a_fitted_mixture_keeps_its_kind_and_regularised_covariances():
    """A code that never varies gets the variance REG_COVAR (not scikit-learn's 1e-6)."""
    train, _ = blobs(seed=4)
    train[:, 3] = 5.0
    fitted = scores.fit_density(train, "gmm", DIAG, seed=0)
    assert set(fitted) == set(scores.DENSITY_ARRAYS["gmm"])
    assert (str(fitted["score"]), str(fitted["covariance_type"])) == ("gmm", "diag")
    assert fitted["covariances"].shape == (2, 4)
    assert fitted["covariances"][:, 3] == pytest.approx([scores.REG_COVAR] * 2, rel=1e-6)


def test_a_saved_mixture_scores_like_scikit_learns_fitted_one():
    train, _ = blobs(seed=5)
    codes, _ = blobs(seed=6)
    fitted = scores.fit_density(train, "gmm", DIAG, seed=0)
    model = GaussianMixture(2, covariance_type="diag", reg_covar=scores.REG_COVAR, random_state=0)
    expected = -model.fit(train).score_samples(codes)
    assert scores.density_score(fitted, codes) == pytest.approx(expected, rel=1e-9)


def test_the_same_seed_gives_the_same_mixture_on_codes_without_clusters():
    """Uniform noise: where the mixture ends up depends on its start, so on the seed."""
    noise = np.random.default_rng(0).random((120, 3))
    params = PARAMS.model_copy(update={"gmm": GmmParams(components=4, covariance="full")})
    one, two = (scores.density_scores(noise, {"test": noise}, "gmm", params, 3) for _ in "ab")
    assert np.array_equal(one["test"], two["test"])
