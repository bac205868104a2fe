"""Stage `evaluate`: clustering, anomaly and compression metrics of every variant over its
seeds, beside the pixel baseline -> reports/metrics.json (means), reports/intervals.json
(half-widths of their 95 % intervals), reports/summary.md, reports/roc.json (seed 0)."""

import numpy as np

from aelab import paths
from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import load_features, over_seeds, pixel_baseline, summary, variant_metrics
from aelab.intervals import resamples
from aelab.io import atomic_open, save_json
from aelab.metrics import roc_points
from aelab.params import PIXELS, Params, load_params


def main() -> None:
    params = load_params()
    test = digits.load_split("test")
    # The same resamples of the test digits for every seed and variant: paired comparisons.
    weights = resamples(len(test.labels), params.evaluate.bootstrap, params.seed)
    results, half_widths, roc = {}, {}, []
    for name, config in params.variants.items():
        results[name], half_widths[name], points = over_its_seeds(name, config.seeds, params,
                                                                  weights)  # fmt: skip
        roc += points
    pixels = pixel_baseline(
        test.images, test.labels, test.is_anomaly, params.evaluate, params.seed, weights
    )
    results[PIXELS], half_widths[PIXELS] = over_seeds([pixels])
    save_json(paths.METRICS, results)
    save_json(paths.INTERVALS, half_widths)
    save_json(paths.ROC, {"roc": roc})
    text = summary(results, half_widths)
    with atomic_open(paths.SUMMARY, "w") as handle:
        handle.write(text)
    print(text, end="")


def over_its_seeds(name: str, seeds: int, params: Params, weights: np.ndarray):
    """Variant `name`'s means over its seeds, their half-widths, and seed 0's ROC points."""
    features = [load_features(paths.features_file(name, k)) for k in range(seeds)]
    per_seed = [variant_metrics(f, params.evaluate, params.seed + k, weights)
                for k, f in enumerate(features)]  # fmt: skip
    points = roc_points(features[0]["test_error"], features[0]["test_is_anomaly"])
    means, half_widths = over_seeds(per_seed)
    return means, half_widths, [{"variant": name, **point} for point in points]


if __name__ == "__main__":
    run_stage(main)
