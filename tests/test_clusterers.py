"""aelab.analysis.clusterers: each clusterer finds well-separated blobs, the same for the
same seed."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from test_scores import PARAMS, blobs

from aelab.analysis import clusterers, scores


@pytest.mark.parametrize("method", ["kmeans", "gmm", "umap"])
def test_each_clusterer_finds_well_separated_blobs(method):
    codes, labels = blobs(k=3)
    found = clusterers.clusters(method, codes, 3, PARAMS, seed=0)
    assert adjusted_rand_score(labels, found) == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_map_and_clusters():
    codes, _ = blobs(k=3, seed=2)
    first, again = (clusterers.umap_map(codes, 10, 50, seed=7) for _ in range(2))
    assert np.array_equal(first, again) and first.shape == (len(codes), 2)
    assert np.array_equal(clusterers.clusters("umap", codes, 3, PARAMS, 7),
                          clusterers.clusters("umap", codes, 3, PARAMS, 7))  # fmt: skip
    train, _ = blobs(seed=3)
    one, two = (scores.density_scores(train, {"test": codes}, "gmm", PARAMS, 5) for _ in "ab")
    assert np.array_equal(one["test"], two["test"])
