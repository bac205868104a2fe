"""Stage `evaluate`: anomaly scores, clusterings, compression and generation (Fréchet and
kernel distances in the digit classifier's features) of every variant over its seeds,
beside the raw-pixel baseline and the real digits' floor -> reports/metrics.json (means),
reports/intervals.json (half-widths of their 95 % intervals), reports/noise.json (their
seed and test-set terms apart), reports/roc.json (seed 0, every score) and
data/evaluation/paired.npz (each seed's value and the seed-mean on every resample, for
paired comparisons). The `summary` stage renders them."""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from aelab.analysis.clusterers import CLUSTERERS
from aelab.analysis.intervals import Estimate, estimates, resamples, to_arrays
from aelab.analysis.metrics import roc_points
from aelab.analysis.samplers import SAMPLERS, sampled
from aelab.analysis.scores import SCORES
from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_arrays, save_json
from aelab.core.params import PARAMS_FILE, PIXELS, load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.data.generated import load_generated, load_real
from aelab.reports.evaluation import (
    Reference,
    SeedEvaluation,
    evaluate_seed,
    generation,
    pixel_features,
    pixel_methods,
    real_floor,
)


def main(root: Path | None = None) -> None:
    started = time.perf_counter()
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE, scores=SCORES, clusterers=CLUSTERERS,
                         samplers=SAMPLERS)  # fmt: skip
    splits = {part: digits.load_split(root, part) for part in digits.SPLITS}
    # The same resamples of the test digits for every seed and variant: paired comparisons.
    weights = resamples(len(splits["test"].labels), params.evaluate.bootstrap, params.seed)
    seed_values = {name: params.seeds_of(name) for name in params.variants}
    sources = {name: [root / paths.features_file(name, k) for k in range(len(seed_values[name]))]
               for name in params.variants}  # fmt: skip
    # One "seed": the pixels are what they are.
    seed_values[PIXELS], sources[PIXELS] = [params.seed], [None]
    # Every file is read before any work: a damaged one stops the stage at once.
    features = {name: [pixel_features(splits) if path is None else load_features(path)
                       for path in files]
                for name, files in sources.items()}  # fmt: skip
    generated = {name: [load_generated(root, name, k, sampled(params, name))
                        for k in range(len(files))]
                 for name, files in sources.items() if name != PIXELS}  # fmt: skip
    real = load_real(root)
    normal = ~splits["test"].is_anomaly
    reference = Reference.of(real["test_features"], weights[:, normal])
    chosen = list(params.generate.samplers)
    found, roc = {}, []
    steps = tqdm(total=sum(map(len, sources.values())), desc="evaluate", unit="network")
    for name, seeds in features.items():
        methods = pixel_methods(params.evaluate) if name == PIXELS else params.evaluate
        per_seed = []
        for k, seed_features in enumerate(seeds):
            judged = evaluate_seed(seed_features, methods, seed_values[name][k], weights)
            judged.metrics.update(real_floor(real, reference) if name == PIXELS else
                                  generation(generated[name][k], reference,
                                             sampled(params, name), chosen))  # fmt: skip
            per_seed.append(judged)
            steps.update()
        found[name] = estimates([seed.metrics for seed in per_seed])
        roc += roc_of(name, per_seed[0], splits["test"].is_anomaly)
    steps.close()
    save_figures(root / paths.METRICS, found, lambda estimate: estimate.mean)
    save_figures(root / paths.INTERVALS, found, Estimate.half_width)
    save_figures(root / paths.NOISE, found, Estimate.noise)
    save_arrays(root / paths.PAIRED, to_arrays(found))
    save_json(root / paths.ROC, {"roc": roc})
    print(
        f"evaluate: {len(found)} variants and baselines in "
        f"{time.perf_counter() - started:.0f} s -> {paths.METRICS}, {paths.INTERVALS}, "
        f"{paths.NOISE}, {paths.PAIRED}"
    )


def save_figures(path, found: dict[str, dict], figure: Callable[[Estimate], object]) -> None:
    """A JSON file of `figure` of each variant's Estimate of each metric (null: none)."""
    save_json(path, {name: {key: None if estimate is None else figure(estimate)
                            for key, estimate in row.items()}
                     for name, row in found.items()})  # fmt: skip


def roc_of(name: str, first: SeedEvaluation, is_anomaly: np.ndarray) -> list[dict]:
    """Seed 0's ROC points of every score, one line each (`variant score`) in DVC's plot."""
    return [{"variant": f"{name} {score}", **point}
            for score, pair in first.scores.items() if pair
            for point in roc_points(pair["test"], is_anomaly)]  # fmt: skip


if __name__ == "__main__":
    # The mixtures' many small matrix products run several times faster on one BLAS
    # thread than on several (the threads' start-up outweighs the work).
    with threadpool_limits(limits=1, user_api="blas"):
        run_stage(main)
