"""Clusters of the codes, each clusterer run on the codes it groups. Pure functions of
arrays, no I/O.

- `kmeans`: the article's;
- `gmm`: a Gaussian mixture with one component per cluster;
- `umap`: a 2-D UMAP of the codes, then a Gaussian mixture on the map (N2D, McConville
  et al. 2019). The map is also the latent-space picture.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from aelab.analysis import jit
from aelab.analysis.scores import mixture
from aelab.core.params import EvaluateParams


def umap_map(codes: np.ndarray, n_neighbors: int, n_epochs: int, seed: int) -> np.ndarray:
    """A 2-D UMAP of the codes, the same for the same seed on CPU. The exact nearest
    neighbours come from scikit-learn: umap-learn's own path for small data calls a Python
    distance function a million times. umap-learn's numba code is compiled once per machine
    (aelab.analysis.jit)."""
    n_neighbors = min(n_neighbors, len(codes) - 1)
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(codes).kneighbors(codes)
    with jit.cached("umap"):  # imported only here: slow to import (numba)
        import umap

        reducer = umap.UMAP(
            n_components=2, n_neighbors=n_neighbors, min_dist=0.0, n_epochs=n_epochs,
            random_state=seed, n_jobs=1, precomputed_knn=(indices, distances, None),
        )  # fmt: skip
        with warnings.catch_warnings():  # "transform unavailable": we never transform
            warnings.simplefilter("ignore", UserWarning)
            return reducer.fit_transform(codes).astype(np.float64)


def clusters(
    method: str, codes: np.ndarray, k: int, params: EvaluateParams, seed: int,
    umap_codes: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The cluster (0..k-1) of each code by `method`; `umap` groups `umap_codes`, the
    codes' 2-D map, when given."""
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=params.n_init, random_state=seed).fit_predict(codes)
    if method == "umap":
        if umap_codes is None:
            umap_codes = umap_map(codes, params.umap.n_neighbors, params.umap.n_epochs, seed)
        codes = umap_codes
    return mixture(codes, k, "full", seed).predict(codes)
