"""Stage `extract@<variant>`: latents and reconstruction errors of val and test digits."""

from aelab.checkpoints import load_checkpoint
from aelab.data import digits
from aelab.errors import ArgumentParser, run_stage
from aelab.features import extract
from aelab.io import save_arrays
from aelab.training import as_inputs, pick_device

SPLIT_DIR = "data/split"
FIX = "run `dvc repro -f split`"


def main() -> None:
    parser = ArgumentParser(prog="python -m stages.extract")
    parser.add_argument("--variant", required=True, help="a key of `variants:` in params.yaml")
    name = parser.parse_args().variant
    device = pick_device("auto")
    model = load_checkpoint(f"models/{name}", device)
    features = {}
    for part in ("val", "test"):
        subset = digits.load(f"{SPLIT_DIR}/{part}.npz", digits.SplitSet, FIX)
        for key, values in extract(model, as_inputs(subset.images, device)).items():
            features[f"{part}_{key}"] = values
        features[f"{part}_label"] = subset.labels
        features[f"{part}_is_anomaly"] = subset.is_anomaly
    output = f"data/features/{name}.npz"
    save_arrays(output, features)
    print(f"extract@{name}: latents {features['test_latent'].shape} -> {output}")


if __name__ == "__main__":
    run_stage(main)
