"""aelab.analysis.clusterers: each clusterer finds well-separated blobs, the same for the
same seed."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from test_scores import PARAMS, blobs

from aelab.analysis import clusterers, jit, scores

NOISE = np.random.default_rng(0).random((120, 3))  # codes without clusters: starts matter


@pytest.mark.parametrize("method", ["kmeans", "gmm", "umap"])
def test_each_clusterer_finds_well_separated_blobs(method):
    codes, labels = blobs(k=3)
    found = clusterers.clusters([method], codes, 3, PARAMS, seed=0)
    assert adjusted_rand_score(labels, found[method]) == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_map_and_clusters():
    codes, _ = blobs(k=3, seed=2)
    first, again = (clusterers.umap_map(codes, 10, 50, seed=7) for _ in range(2))
    assert np.array_equal(first, again) and first.shape == (len(codes), 2)
    assert np.array_equal(clusterers.clusters(["umap"], codes, 3, PARAMS, 7)["umap"],
                          clusterers.clusters(["umap"], codes, 3, PARAMS, 7)["umap"])  # fmt: skip
    train, _ = blobs(seed=3)
    one, two = (scores.scores_of("gmm", train, {"test": codes}, PARAMS, 5) for _ in "ab")
    assert np.array_equal(one["test"], two["test"])


def test_kmeans_clusters_are_the_cells_of_their_means_the_same_for_the_same_seed():
    """k-means' fixed point: each code is nearest to its own cluster's mean (a mixture's
    clusters of these codes are not)."""
    found = clusterers.clusters(["kmeans"], NOISE, 4, PARAMS, seed=0)["kmeans"]
    means = np.array([NOISE[found == cluster].mean(axis=0) for cluster in range(4)])
    nearest = np.linalg.norm(NOISE[:, None] - means[None], axis=2).argmin(axis=1)
    assert np.array_equal(nearest, found)
    assert np.array_equal(found, clusterers.clusters(["kmeans"], NOISE, 4, PARAMS, 0)["kmeans"])


def test_umap_groups_the_map_it_is_given_and_gmm_the_codes():
    codes, labels = blobs(k=3)  # blobs 0, 1, 2
    other = np.array([0, 1, 1])[labels]  # the map puts blobs 1 and 2 together
    rng = np.random.default_rng(1)
    umap_codes = np.eye(2)[other] * 20 + rng.normal(size=(len(labels), 2))
    umap, gmm = clusterers.CLUSTERERS["umap"], clusterers.CLUSTERERS["gmm"]
    assert (umap.sees, gmm.sees, clusterers.CLUSTERERS["kmeans"].sees) == ("map", "scaled", "codes")
    assert adjusted_rand_score(other, umap.cluster(umap_codes, 2, PARAMS, 0)) == pytest.approx(1.0)
    assert adjusted_rand_score(labels, gmm.cluster(codes, 3, PARAMS, 0)) == pytest.approx(1.0)


def test_umap_clusters_are_those_of_the_codes_own_map_drawn_once_and_returned():
    """What the latent-space picture relies on: the map the clusters were found on."""
    codes = NOISE[:60]
    drawn = clusterers.umap_map(codes, PARAMS.umap.n_neighbors, PARAMS.umap.n_epochs, seed=3)
    found = clusterers.clusters(["umap", "kmeans"], codes, 4, PARAMS, 3)
    assert np.array_equal(found["map"], drawn)
    assert np.array_equal(found["umap"], clusterers.CLUSTERERS["umap"].cluster(drawn, 4, PARAMS, 3))
    assert "map" not in clusterers.clusters(["kmeans", "gmm"], codes, 4, PARAMS, 3)


def test_kmeans_groups_the_codes_as_extracted_the_others_them_scaled():
    """Codes along two close rays: scaled to unit length they are two points, as extracted
    nearly one line, which k-means cuts across."""
    lengths = np.linspace(1, 40, 40)[:, None]
    codes = np.vstack([lengths * [1.0, 0.0], lengths * [np.cos(0.1), np.sin(0.1)]])
    rays = np.repeat([0, 1], 40)
    normalized = PARAMS.model_copy(update={"normalize_codes": True})
    found = clusterers.clusters(["kmeans", "gmm"], codes, 2, normalized, 0)
    assert adjusted_rand_score(rays, found["gmm"]) == pytest.approx(1.0)
    assert adjusted_rand_score(rays, found["kmeans"]) < 0.5


def test_the_map_takes_every_other_code_as_neighbour_at_most_and_its_epochs():
    codes = NOISE[:8]
    at_most = clusterers.umap_map(codes, 10, 50, seed=0)
    assert at_most.shape == (8, 2)
    assert np.array_equal(at_most, clusterers.umap_map(codes, 7, 50, seed=0))
    assert not np.array_equal(at_most, clusterers.umap_map(codes, 6, 50, seed=0))
    assert not np.array_equal(at_most, clusterers.umap_map(codes, 10, 51, seed=0))


def test_the_map_uses_scikit_learns_neighbours_not_umaps_small_data_path(monkeypatch):
    """umap-learn's own path for small data calls a Python distance function for every
    pair of codes: far too slow for the evaluation."""
    import umap  # slow to import, as in clusterers

    def refuse(*args, **kwargs):
        raise AssertionError("umap-learn computed the distances itself")

    monkeypatch.setattr(umap.umap_, "pairwise_distances", refuse)
    assert clusterers.umap_map(NOISE[:20], 5, 20, seed=0).shape == (20, 2)


def test_the_map_gets_each_codes_neighbours_as_umap_learn_lists_them(monkeypatch):
    """umap-learn's precomputed_knn: each code's own index first, at distance 0."""
    import umap

    given = []

    class Recording(umap.UMAP):
        def __init__(self, **kwargs):
            given.append(kwargs["precomputed_knn"])
            super().__init__(**kwargs)

    monkeypatch.setattr(umap, "UMAP", Recording)
    clusterers.umap_map(NOISE[:20], 5, 20, seed=0)
    indices, distances, _ = given[0]
    assert indices.shape == distances.shape == (20, 5)
    assert np.array_equal(indices[:, 0], np.arange(20)) and (distances[:, 0] == 0).all()


def test_the_map_runs_umap_learn_with_numbas_disk_cache(monkeypatch):
    """Its numba code compiled once per machine (aelab.analysis.jit), not in every process."""
    used, cached = [], jit.cached

    @contextmanager
    def recorded(package: str):
        used.append(package)
        with cached(package):
            yield

    monkeypatch.setattr(jit, "cached", recorded)
    clusterers.umap_map(blobs(k=3)[0], 10, 20, seed=0)
    assert used == ["umap"]
