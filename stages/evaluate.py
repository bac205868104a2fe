"""Stage `evaluate`: clustering, anomaly and compression metrics of every variant over its
seeds, beside the pixel baseline -> reports/metrics.json (means), reports/intervals.json
(half-widths of their 95 % intervals), reports/summary.md, reports/roc.json (seed 0)."""

from aelab import paths
from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import load_features, over_seeds, pixel_baseline, summary, variant_metrics
from aelab.intervals import resamples
from aelab.io import atomic_open, save_json
from aelab.metrics import roc_points
from aelab.params import PIXELS, load_params


def main() -> None:
    params = load_params()
    test = digits.load_split("test")
    # The same resamples of the test digits for every seed and variant: paired comparisons.
    weights = resamples(len(test.labels), params.evaluate.bootstrap, params.seed)
    results, half_widths, roc = {}, {}, []
    for name, config in params.variants.items():
        per_seed = []
        for k in range(config.seeds):
            features = load_features(paths.features_file(name, k))
            per_seed.append(variant_metrics(features, params.evaluate, params.seed + k, weights))
            if k == 0:
                points = roc_points(features["test_error"], features["test_is_anomaly"])
                roc += [{"variant": name, **point} for point in points]
        results[name], half_widths[name] = over_seeds(per_seed)
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


if __name__ == "__main__":
    run_stage(main)
