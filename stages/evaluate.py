"""Stage `evaluate`: clustering, anomaly and compression metrics of every variant, beside
the pixel and PCA baselines -> reports/metrics.json, reports/summary.md, reports/roc.json,
and each variant's (and the pixel baseline's) MLflow run."""

from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import load_features, pixel_baseline, summary_table, variant_metrics
from aelab.io import atomic_open, file_sha256, save_json
from aelab.metrics import roc_points
from aelab.params import Params, load_params
from aelab.tracker import Tracker

FEATURES = "data/features/{}.npz"
TEST = "data/split/test.npz"


def main() -> None:
    params = load_params()
    with Tracker(params.tracking.experiment, "evaluate") as tracker:
        evaluate(params, tracker)


def evaluate(params: Params, tracker: Tracker) -> None:
    results, roc, keys = {}, [], {}
    for name in params.variants:
        features = load_features(FEATURES.format(name))
        results[name] = variant_metrics(features, params.evaluate, params.seed)
        points = roc_points(features["test_error"], features["test_is_anomaly"])
        roc += [{"variant": name, **point} for point in points]
        keys[name] = str(features["model_sha256"])
    test = digits.load_split("test")
    results["pixels"] = pixel_baseline(
        test.images, test.labels, test.is_anomaly, params.evaluate, params.seed
    )
    keys["pixels"] = file_sha256(TEST)
    tracker.log_evaluation(results, keys, params)
    save_json("reports/metrics.json", results)
    save_json("reports/roc.json", {"roc": roc})
    with atomic_open("reports/summary.md", "w") as handle:
        handle.write(summary_table(results))
    print(summary_table(results), end="")


if __name__ == "__main__":
    run_stage(main)
