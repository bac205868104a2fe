"""Stage `train@<variant>`: fit one variant once per seed on the normal training digits
(the seeds together, a group per CPU core: aelab.training.seeds) -> models/<variant>/seed_<k>/, its
figures per seed -> reports/train/<variant>.json (DVC metrics), its wall-clock time aside."""

from pathlib import Path

from aelab.core import paths
from aelab.core.errors import parse_variant, run_stage
from aelab.core.io import atomic_folder, save_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.models.checkpoints import save_checkpoint
from aelab.training.loop import pick_device, training_report
from aelab.training.seeds import train_seeds


def main(root: Path | None = None) -> None:
    name = parse_variant("python -m stages train")
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE)
    config = params.variant(name)
    device = pick_device(getattr(config, "device", "auto"))
    result = train_seeds(root, name, config, params.seeds_of(name), device)
    reports = {}
    # The variant's folder appears whole or not at all: a write that fails on any seed
    # (a full disk) leaves no seed behind.
    with atomic_folder(root / paths.model_dir(name)) as folder:
        for k, one in enumerate(result.trained):
            save_checkpoint(folder / paths.checkpoint_dir(name, k).name, name, one.model,
                            one.history)  # fmt: skip
            reports[f"seed_{k}"] = training_report(one.model, one.history, config)
    for one, report in zip(result.trained, reports.values(), strict=True):
        print(
            f"train@{name} seed {one.seed}: {report['epochs']} epochs on {device}, stopped by "
            f"{report['stopped_by']}, best epoch {report['best_epoch']}, "
            f"val loss {report['best_val_loss']:.5f}"
        )
    save_json(root / paths.train_report(name), reports)
    seconds = result.seconds
    speed = result.samples / seconds
    save_json(
        root / paths.timing_file(name),
        {"train_seconds": seconds, "train_samples_per_second": speed},
    )
    print(f"train@{name}: {config.seeds} seed(s) in {seconds:.1f} s of training")


if __name__ == "__main__":
    run_stage(main)
