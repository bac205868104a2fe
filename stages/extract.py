"""Stage `extract@<variant>`: latents and reconstruction errors of val and test digits,
and their mean errors in the variant's MLflow run."""

from aelab.checkpoints import WEIGHTS, load_checkpoint
from aelab.data import digits
from aelab.errors import parse_variant, run_stage
from aelab.features import extract
from aelab.io import file_sha256, save_arrays
from aelab.params import load_params
from aelab.tracker import Tracker
from aelab.training import as_inputs, pick_device


def main() -> None:
    name = parse_variant("python -m stages.extract")
    params = load_params()
    params.variant(name)  # an unknown variant stops here
    with Tracker(params.tracking.experiment, f"extract@{name}") as tracker:
        device = pick_device("auto")
        folder = f"models/{name}"
        model = load_checkpoint(folder, device)
        features = {"model_sha256": file_sha256(f"{folder}/{WEIGHTS}")}
        for part in ("val", "test"):
            subset = digits.load_split(part)
            for key, values in extract(model, as_inputs(subset.images, device)).items():
                features[f"{part}_{key}"] = values
            features[f"{part}_label"] = subset.labels
            features[f"{part}_is_anomaly"] = subset.is_anomaly
        run_id = tracker.run_of(name, features["model_sha256"], params)
        errors = {
            f"{part}_error_mean": float(features[f"{part}_error"].mean())
            for part in ("val", "test")
        }
        tracker.call("log_metrics", run_id=run_id, metrics=errors)
        output = f"data/features/{name}.npz"
        save_arrays(output, features)
    print(f"extract@{name}: latents {features['test_latent'].shape} -> {output}")


if __name__ == "__main__":
    run_stage(main)
