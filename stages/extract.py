"""Stage `extract@<variant>`: for each seed's network, the latents and reconstruction errors
of the train, val and test digits -> data/features/<variant>/seed_<k>.npz."""

from pathlib import Path

from aelab.core import paths
from aelab.core.errors import parse_variant, run_stage
from aelab.core.params import PARAMS_FILE, load_params
from aelab.data import digits
from aelab.data.features import save_features
from aelab.models.checkpoints import load_checkpoint
from aelab.training.encoding import extract
from aelab.training.loop import as_inputs, pick_device


def main(root: Path | None = None) -> None:
    name = parse_variant("python -m stages extract")
    root = root or paths.project_root()
    # The count of its seeds, not their values: what each seed's network holds is its own.
    seeds = load_params(root / PARAMS_FILE).variant(name).seeds  # an unknown one stops here
    device = pick_device("auto")
    sets = {part: digits.load_split(root, part) for part in digits.SPLITS}
    inputs = {part: as_inputs(subset.images, device) for part, subset in sets.items()}
    for k in range(seeds):
        model = load_checkpoint(root / paths.checkpoint_dir(name, k), device)
        encoded = {part: extract(model, inputs[part]) for part in sets}
        save_features(root / paths.features_file(name, k), encoded, sets)
    print(f"extract@{name}: {seeds} seed(s), codes {encoded['test']['latent'].shape} "
          f"-> {paths.features_dir(name)}/")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
