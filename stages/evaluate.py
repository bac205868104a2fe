"""Stage `evaluate`: anomaly scores, clusterings, compression and generation (Fréchet
distances in the digit classifier's features) of every variant over its seeds, beside the
raw-pixel baseline and the real digits' floor -> reports/metrics.json (means),
reports/intervals.json (half-widths of their 95 % intervals) and reports/roc.json (seed 0,
every score). The `summary` stage renders them."""

import time

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from aelab.analysis.intervals import over_seeds, resamples
from aelab.analysis.metrics import roc_points
from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_json
from aelab.core.params import PIXELS, load_params
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


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    splits = {part: digits.load_split(part) for part in digits.SPLITS}
    # The same resamples of the test digits for every seed and variant: paired comparisons.
    weights = resamples(len(splits["test"].labels), params.evaluate.bootstrap, params.seed)
    sources = {name: [paths.features_file(name, k) for k in range(config.seeds)]
               for name, config in params.variants.items()}  # fmt: skip
    sources[PIXELS] = [None]  # one "seed": the pixels are what they are
    # Every file is read before any work: a damaged one stops the stage at once.
    features = {name: [pixel_features(splits) if path is None else load_features(path)
                       for path in files]
                for name, files in sources.items()}  # fmt: skip
    generated = {name: [load_generated(name, k, params.sampled(name)) for k in range(len(files))]
                 for name, files in sources.items() if name != PIXELS}  # fmt: skip
    real = load_real()
    normal = ~splits["test"].is_anomaly
    reference = Reference.of(real["test_features"], weights[:, normal])
    chosen = list(params.generate.samplers)
    results, half_widths, roc = {}, {}, []
    steps = tqdm(total=sum(map(len, sources.values())), desc="evaluate", unit="network")
    for name, seeds in features.items():
        methods = pixel_methods(params.evaluate) if name == PIXELS else params.evaluate
        per_seed = []
        for k, seed_features in enumerate(seeds):
            judged = evaluate_seed(seed_features, methods, params.seed + k, weights)
            judged.metrics.update(real_floor(real, reference) if name == PIXELS else
                                  generation(generated[name][k], reference,
                                             params.sampled(name), chosen))  # fmt: skip
            per_seed.append(judged)
            steps.update()
        results[name], half_widths[name] = over_seeds([seed.metrics for seed in per_seed])
        roc += roc_of(name, per_seed[0], splits["test"].is_anomaly)
    steps.close()
    save_json(paths.METRICS, results)
    save_json(paths.INTERVALS, half_widths)
    save_json(paths.ROC, {"roc": roc})
    print(
        f"evaluate: {len(results)} variants and baselines in "
        f"{time.perf_counter() - started:.0f} s -> {paths.METRICS}, {paths.INTERVALS}"
    )


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
