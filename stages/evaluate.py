"""Stage `evaluate`: clustering, anomaly and compression metrics of every variant, beside
the pixel and PCA baselines -> reports/metrics.json, reports/summary.md, reports/roc.json."""

from aelab import paths
from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import load_features, pixel_baseline, summary_table, variant_metrics
from aelab.io import atomic_open, save_json
from aelab.metrics import roc_points
from aelab.params import PIXELS, load_params


def main() -> None:
    params = load_params()
    results, roc = {}, []
    for name in params.variants:
        features = load_features(paths.features_file(name))
        results[name] = variant_metrics(features, params.evaluate, params.seed)
        points = roc_points(features["test_error"], features["test_is_anomaly"])
        roc += [{"variant": name, **point} for point in points]
    test = digits.load_split("test")
    results[PIXELS] = pixel_baseline(
        test.images, test.labels, test.is_anomaly, params.evaluate, params.seed
    )
    save_json(paths.METRICS, results)
    save_json(paths.ROC, {"roc": roc})
    with atomic_open(paths.SUMMARY, "w") as handle:
        handle.write(summary_table(results))
    print(summary_table(results), end="")


if __name__ == "__main__":
    run_stage(main)
