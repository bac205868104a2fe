"""Stage `train@<variant>`: fit one variant on the normal training digits -> models/<variant>/,
its figures -> reports/train/<variant>.json (DVC metrics), its wall-clock time aside."""

import time

from aelab import paths
from aelab.checkpoints import save_checkpoint
from aelab.data import digits
from aelab.errors import parse_variant, run_stage
from aelab.io import save_json
from aelab.models import build_model
from aelab.params import load_params
from aelab.training import (
    as_inputs,
    fit,
    pick_device,
    seed_everything,
    training_report,
)


def main() -> None:
    name = parse_variant("python -m stages.train")
    params = load_params()
    config = params.variant(name)
    device = pick_device(getattr(config, "device", "auto"))
    train, val = (as_inputs(digits.load_split(part).images, device) for part in ("train", "val"))
    seed_everything(params.seed)
    model = build_model(config).to(device)
    start = time.perf_counter()
    history = fit(model, train, val, config, params.seed, name)
    seconds = time.perf_counter() - start
    save_checkpoint(paths.model_dir(name), name, model, history)
    save_json(paths.train_report(name), training_report(model, history))
    samples = len(train) * len(history)
    save_json(paths.timing_file(name), {"train_seconds": seconds,
                                        "train_samples_per_second": samples / seconds})  # fmt: skip
    last = history[-1]
    print(
        f"train@{name}: {len(history)} epochs on {device} in {seconds:.1f} s, "
        f"train loss {last['train_loss']:.5f}, val loss {last['val_loss']:.5f}"
    )


if __name__ == "__main__":
    run_stage(main)
