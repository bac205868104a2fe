"""Stage `extract@<variant>`: for each seed's network, the latents and reconstruction errors
of the train, val and test digits -> data/features/<variant>/seed_<k>.npz."""

from aelab.core import paths
from aelab.core.errors import parse_variant, run_stage
from aelab.core.params import load_params
from aelab.data import digits
from aelab.data.features import save_features
from aelab.models.checkpoints import load_checkpoint
from aelab.training.encoding import extract
from aelab.training.loop import as_inputs, pick_device


def main() -> None:
    name = parse_variant("python -m stages extract")
    seeds = load_params().seeds_of(name)  # an unknown variant stops here
    device = pick_device("auto")
    sets = {part: digits.load_split(part) for part in digits.SPLITS}
    inputs = {part: as_inputs(subset.images, device) for part, subset in sets.items()}
    for k in range(len(seeds)):
        model = load_checkpoint(paths.checkpoint_dir(name, k), device)
        encoded = {part: extract(model, inputs[part]) for part in sets}
        save_features(paths.features_file(name, k), encoded, sets)
    print(f"extract@{name}: {len(seeds)} seed(s), codes {encoded['test']['latent'].shape} "
          f"-> {paths.features_dir(name)}/")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
