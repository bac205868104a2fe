"""Stage `extract@<variant>`: latents and reconstruction errors of the val and test digits
-> data/features/<variant>.npz."""

from aelab import paths
from aelab.checkpoints import load_checkpoint
from aelab.data import digits
from aelab.errors import parse_variant, run_stage
from aelab.features import extract
from aelab.io import save_arrays
from aelab.params import load_params
from aelab.training import as_inputs, pick_device


def main() -> None:
    name = parse_variant("python -m stages.extract")
    params = load_params()
    params.variant(name)  # an unknown variant stops here
    device = pick_device("auto")
    model = load_checkpoint(paths.model_dir(name), device)
    features = {}
    for part in ("val", "test"):
        subset = digits.load_split(part)
        for key, values in extract(model, as_inputs(subset.images, device)).items():
            features[f"{part}_{key}"] = values
        features[f"{part}_label"] = subset.labels
        features[f"{part}_is_anomaly"] = subset.is_anomaly
    output = paths.features_file(name)
    save_arrays(output, features)
    print(f"extract@{name}: latents {features['test_latent'].shape} -> {output}")


if __name__ == "__main__":
    run_stage(main)
