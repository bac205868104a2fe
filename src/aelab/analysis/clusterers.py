"""Clusters of the codes, each clusterer one entry of `CLUSTERERS`, run on the view of the
codes it groups. Pure functions of arrays, no I/O.

- `kmeans`: the article's, on the codes as extracted;
- `gmm`: a Gaussian mixture with one component per cluster;
- `umap`: a 2-D UMAP of the codes, then a Gaussian mixture on the map (N2D, McConville
  et al. 2019). The map is also the latent-space picture.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from aelab.analysis import jit
from aelab.analysis.scores import mixture, prepared
from aelab.core.params import EvaluateParams
from aelab.core.registry import Registry


@dataclass(frozen=True)
class Clusterer:
    """A clusterer: (the codes it sees (N, d), k, params, seed) -> each one's cluster 0..k-1."""

    cluster: Callable[[np.ndarray, int, EvaluateParams, int], np.ndarray]
    # What it groups: the codes as extracted, the codes scaled as evaluate.normalize_codes
    # says, or their 2-D UMAP (drawn once for all the clusterers that see it).
    sees: Literal["codes", "scaled", "map"] = "scaled"
    # False: not run on the raw-pixel baseline (a mixture of 784-d pixels is not estimable
    # from a few thousand digits).
    on_pixels: bool = True


CLUSTERERS: Registry[Clusterer] = Registry("clusterer")


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


def kmeans(codes: np.ndarray, k: int, params: EvaluateParams, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=params.n_init, random_state=seed).fit_predict(codes)


def gmm(codes: np.ndarray, k: int, params: EvaluateParams, seed: int) -> np.ndarray:
    return mixture(codes, k, "full", seed).predict(codes)


CLUSTERERS.add("kmeans", Clusterer(kmeans, sees="codes"))
CLUSTERERS.add("gmm", Clusterer(gmm, on_pixels=False))
CLUSTERERS.add("umap", Clusterer(gmm, sees="map"))


def clusters(
    methods: list[str], codes: np.ndarray, k: int, params: EvaluateParams, seed: int
) -> dict[str, np.ndarray]:
    """The k clusters of `codes` by each of `methods`, each on the view of them it sees,
    and under "map" the codes' 2-D UMAP when one of them sees it."""
    views = {"codes": codes, "scaled": prepared(codes, params.normalize_codes)}
    if any(CLUSTERERS[method].sees == "map" for method in methods):
        views["map"] = scaled_map(views["scaled"], params, seed)
    found = {method: CLUSTERERS[method].cluster(views[CLUSTERERS[method].sees], k, params, seed)
             for method in methods}  # fmt: skip
    return found if "map" not in views else {**found, "map": views["map"]}


def latent_map(codes: np.ndarray, params: EvaluateParams, seed: int) -> np.ndarray:
    """The 2-D UMAP of `codes`, scaled as every clusterer but k-means sees them."""
    return scaled_map(prepared(codes, params.normalize_codes), params, seed)


def scaled_map(scaled: np.ndarray, params: EvaluateParams, seed: int) -> np.ndarray:
    """The 2-D UMAP of codes already scaled (`prepared`), with evaluate's UMAP params."""
    return umap_map(scaled, params.umap.n_neighbors, params.umap.n_epochs, seed)
