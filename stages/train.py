"""Stage `train@<variant>`: fit one variant on the normal training digits -> models/<variant>/,
and start the variant's MLflow run with its params, loss curves, data and model."""

from aelab.checkpoints import WEIGHTS, staged_checkpoint
from aelab.data import digits
from aelab.errors import parse_variant, run_stage
from aelab.io import file_sha256
from aelab.models import build_model
from aelab.params import load_params
from aelab.tracker import Tracker, data_tags, variant_params
from aelab.training import as_inputs, fit, pick_device, seed_everything

TRAIN, VAL = "data/split/train.npz", "data/split/val.npz"


def main() -> None:
    name = parse_variant("python -m stages.train")
    params = load_params()
    config = params.variant(name)
    with Tracker(params.tracking.experiment, f"train@{name}") as tracker:
        device = pick_device(getattr(config, "device", "auto"))
        train, val = (
            as_inputs(digits.load_split(part).images, device) for part in ("train", "val")
        )
        run_id = tracker.call(
            "start_run",
            name=name,
            params=variant_params(params, name),
            tags=data_tags(params, TRAIN),
        )
        seed_everything(params.seed)
        model = build_model(config).to(device)
        history = fit(model, train, val, config, params.seed, name)
        # Logged before the checkpoint is renamed into place: a tracking error leaves no model.
        with staged_checkpoint(f"models/{name}", name, model, history) as staged:
            tracker.call("log_history", run_id=run_id, history=history)
            tracker.call(
                "log_dataset",
                run_id=run_id,
                path=TRAIN,
                name=f"{params.data.source}-train",
                context="training",
            )
            tracker.call("set_key", run_id=run_id, key=file_sha256(staged / WEIGHTS))
            tracker.call("log_model", run_id=run_id, checkpoint=str(staged), examples=VAL)
    last = history[-1]
    print(
        f"train@{name}: {len(history)} epochs on {device}, "
        f"train loss {last['train_loss']:.5f}, val loss {last['val_loss']:.5f}"
    )


if __name__ == "__main__":
    run_stage(main)
