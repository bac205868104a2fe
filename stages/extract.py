"""Stage `extract@<variant>`: for each seed's network, the latents and reconstruction errors
of the train, val and test digits -> data/features/<variant>/seed_<k>.npz."""

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
    config = load_params().variant(name)  # an unknown variant stops here
    device = pick_device("auto")
    subsets = {part: digits.load_split(part) for part in ("train", "val", "test")}
    inputs = {part: as_inputs(subset.images, device) for part, subset in subsets.items()}
    for k in range(config.seeds):
        model = load_checkpoint(paths.checkpoint_dir(name, k), device)
        features = {}
        for part, subset in subsets.items():
            for key, values in extract(model, inputs[part]).items():
                features[f"{part}_{key}"] = values
            features[f"{part}_label"] = subset.labels
            features[f"{part}_is_anomaly"] = subset.is_anomaly
        save_arrays(paths.features_file(name, k), features)
    print(f"extract@{name}: {config.seeds} seed(s), latents {features['test_latent'].shape} "
          f"-> {paths.features_dir(name)}/")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
