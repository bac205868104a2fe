"""Stage `train@<variant>`: fit one variant once per seed on the normal training digits
-> models/<variant>/seed_<k>/, its figures per seed -> reports/train/<variant>.json (DVC
metrics), its wall-clock time aside."""

import time

from aelab.core import paths
from aelab.core.errors import parse_variant, run_stage
from aelab.core.io import save_json
from aelab.core.params import load_params
from aelab.data import digits
from aelab.models import build_model
from aelab.models.checkpoints import save_checkpoint
from aelab.training.loop import as_inputs, fit, pick_device, seed_everything, training_report


def main() -> None:
    name = parse_variant("python -m stages.train")
    params = load_params()
    config = params.variant(name)
    device = pick_device(getattr(config, "device", "auto"))
    train, val = (as_inputs(digits.load_split(part).images, device) for part in ("train", "val"))
    reports, seconds, samples = {}, 0.0, 0
    for k in range(config.seeds):
        seed = params.seed + k
        seed_everything(seed)
        model = build_model(config).to(device)
        start = time.perf_counter()
        history = fit(model, train, val, config, seed, name)
        seconds += time.perf_counter() - start
        samples += len(train) * len(history)
        save_checkpoint(paths.checkpoint_dir(name, k), name, model, history)
        reports[f"seed_{k}"] = training_report(model, history)
        last = history[-1]
        print(
            f"train@{name} seed {seed}: {len(history)} epochs on {device}, "
            f"train loss {last['train_loss']:.5f}, val loss {last['val_loss']:.5f}"
        )
    save_json(paths.train_report(name), reports)
    save_json(paths.timing_file(name), {"train_seconds": seconds,
                                        "train_samples_per_second": samples / seconds})  # fmt: skip
    print(f"train@{name}: {config.seeds} seed(s) in {seconds:.1f} s")


if __name__ == "__main__":
    run_stage(main)
