"""Stage `evaluate`: anomaly scores, clusterings and compression of every variant over its
seeds, beside the raw-pixel baseline -> reports/metrics.json (means), reports/intervals.json
(half-widths of their 95 % intervals), reports/summary.md (one table per task),
reports/roc.json (seed 0, every score) and data/latent_maps.npz (seed 0's 2-D UMAP of the
test codes and the clusters found, for the figures)."""

import time

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from aelab import latent, paths
from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import (
    PARTS,
    SeedEvaluation,
    evaluate_seed,
    load_features,
    over_seeds,
    pixel_features,
    pixel_methods,
    summary,
)
from aelab.intervals import resamples
from aelab.io import atomic_open, save_arrays, save_json
from aelab.metrics import roc_points
from aelab.params import PIXELS, Params, load_params


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    splits = {part: digits.load_split(part) for part in PARTS}
    # The same resamples of the test digits for every seed and variant: paired comparisons.
    weights = resamples(len(splits["test"].labels), params.evaluate.bootstrap, params.seed)
    sources = {name: [paths.features_file(name, k) for k in range(config.seeds)]
               for name, config in params.variants.items()}  # fmt: skip
    sources[PIXELS] = [None]  # one "seed": the pixels are what they are
    results, half_widths, roc, maps = {}, {}, [], {}
    steps = tqdm(total=sum(map(len, sources.values())), desc="evaluate", unit="network")
    for name, files in sources.items():
        methods = pixel_methods(params.evaluate) if name == PIXELS else params.evaluate
        per_seed = []
        for k, path in enumerate(files):
            features = pixel_features(splits) if path is None else load_features(path)
            per_seed.append(evaluate_seed(features, methods, params.seed + k, weights))
            if k == 0:
                maps |= picture_of(name, per_seed[0], features["test_latent"], params)
            steps.update()
        results[name], half_widths[name] = over_seeds([seed.metrics for seed in per_seed])
        roc += roc_of(name, per_seed[0], splits["test"].is_anomaly)
    steps.close()
    save_json(paths.METRICS, results)
    save_json(paths.INTERVALS, half_widths)
    save_json(paths.ROC, {"roc": roc})
    save_arrays(paths.LATENT_MAPS, maps)
    pca = [name for name, config in params.variants.items() if config.kind == "pca"]
    text = summary(results, half_widths, params.evaluate, pca)
    with atomic_open(paths.SUMMARY, "w") as handle:
        handle.write(text)
    print(text, end="")
    print(f"evaluate: {time.perf_counter() - started:.0f} s")


def roc_of(name: str, first: SeedEvaluation, is_anomaly: np.ndarray) -> list[dict]:
    """Seed 0's ROC points of every score, one line each (`variant score`) in DVC's plot."""
    return [{"variant": f"{name} {score}", **point}
            for score, pair in first.scores.items() if pair
            for point in roc_points(pair["test"], is_anomaly)]  # fmt: skip


def picture_of(name: str, first: SeedEvaluation, codes: np.ndarray, params: Params) -> dict:
    """Seed 0's 2-D UMAP of its test `codes` and each clusterer's clusters of them."""
    mapped = first.found.get("map")
    if mapped is None:  # umap is not among the clusterers: map the codes for the picture
        codes = latent.prepared(codes, params.evaluate.normalize_codes)
        umap = params.evaluate.umap
        mapped = latent.umap_map(codes, umap.n_neighbors, umap.n_epochs, params.seed)
    return {f"{name}/{key}": values for key, values in {**first.found, "map": mapped}.items()}


if __name__ == "__main__":
    # The mixtures' many small matrix products run several times faster on one BLAS
    # thread than on several (the threads' start-up outweighs the work).
    with threadpool_limits(limits=1, user_api="blas"):
        run_stage(main)
