"""Stage `train@<variant>`: fit one variant on the normal training digits -> models/<variant>/."""

from aelab.checkpoints import save_checkpoint
from aelab.data import digits
from aelab.errors import parse_variant, run_stage
from aelab.models import build_model
from aelab.params import load_params
from aelab.training import as_inputs, fit, pick_device, seed_everything


def main() -> None:
    name = parse_variant("python -m stages.train")
    params = load_params()
    config = params.variant(name)
    device = pick_device(getattr(config, "device", "auto"))
    train, val = (as_inputs(digits.load_split(part).images, device) for part in ("train", "val"))
    seed_everything(params.seed)
    model = build_model(config).to(device)
    history = fit(model, train, val, config, params.seed, name)
    save_checkpoint(f"models/{name}", name, model, history)
    last = history[-1]
    print(
        f"train@{name}: {len(history)} epochs on {device}, "
        f"train loss {last['train_loss']:.5f}, val loss {last['val_loss']:.5f}"
    )


if __name__ == "__main__":
    run_stage(main)
