"""Stage `figures`: the article's five pictures and a reconstruction grid -> reports/figures/,
each also an artifact of the MLflow run of every variant it shows."""

import json
from pathlib import Path

import numpy as np
import torch

from aelab import figures
from aelab.checkpoints import load_checkpoint
from aelab.data import digits
from aelab.errors import run_stage
from aelab.evaluation import load_features
from aelab.features import reconstruct
from aelab.io import file_sha256
from aelab.metrics import cluster_scores
from aelab.params import Params, TrainParams, load_params
from aelab.tracker import Tracker
from aelab.training import as_inputs

OUT = "reports/figures"
FEATURES = "data/features/{}.npz"
METRICS = "reports/metrics.json"
TEST = "data/split/test.npz"


def main() -> None:
    params = load_params()
    features = {name: load_features(FEATURES.format(name)) for name in params.variants}
    reported = json.loads(Path(METRICS).read_text())
    with Tracker(params.tracking.experiment, "figures") as tracker:
        drawn = draw(params, features, reported)
        # The evaluation drawn here goes into the runs too, where `evaluate` has not logged
        # it: on a fresh clone `evaluate` is up to date (its reports are committed) and
        # skipped, while the runs are new.
        keys = {name: str(arrays["model_sha256"]) for name, arrays in features.items()}
        keys["pixels"] = file_sha256(TEST)
        results = {name: metrics for name, metrics in reported.items() if name in keys}
        runs = tracker.log_evaluation(results, keys, params, only_missing=True)
        for name in params.variants:
            shown = [path for path, variants in drawn.items() if name in variants]
            tracker.call("log_artifacts", run_id=runs[name], paths=shown, folder="figures")
    print(f"figures: {OUT}/")


def draw(
    params: Params, features: dict[str, dict[str, np.ndarray]], reported: dict[str, dict]
) -> dict[str, list[str]]:
    """Draw every figure from each variant's features and the evaluation in `reported`
    (reports/metrics.json); return each file with the variants it shows."""
    drawn: dict[str, list[str]] = {}
    test = digits.load_split("test")
    inputs = as_inputs(test.images, torch.device("cpu"))
    models = {name: load_checkpoint(f"models/{name}") for name in params.variants}
    one_per_digit = np.array([np.flatnonzero(test.labels == d)[0] for d in range(10)])
    picked = inputs[one_per_digit]

    layers = {name: model.architecture() for name, model in models.items()}
    notes = {name: describe(config) for name, config in params.variants.items()}
    figures.save(figures.architecture(layers, notes), f"{OUT}/1_architecture.png")
    drawn[f"{OUT}/1_architecture.png"] = list(models)
    for name, model in models.items():
        latent, errors = features[name]["test_latent"], features[name]["test_error"]
        _, clusters = cluster_scores(latent, test.labels, 10, params.seed, params.evaluate.n_init)
        figures.save(
            figures.latent_space(name, latent, test.labels, clusters),
            f"{OUT}/4_latent_space_{name}.png",
        )
        drawn[f"{OUT}/4_latent_space_{name}.png"] = [name]
        if test.is_anomaly.any():
            figure = figures.anomalies(
                name,
                errors,
                test.is_anomaly,
                reported[name]["threshold"],
                inputs.numpy(),
                reconstruct(model, inputs),
            )
            figures.save(figure, f"{OUT}/5_anomalies_{name}.png")
            drawn[f"{OUT}/5_anomalies_{name}.png"] = [name]
    recons = {name: reconstruct(model, picked) for name, model in models.items()}
    figures.save(figures.reconstruction_grid(picked.numpy(), recons), f"{OUT}/reconstructions.png")
    drawn[f"{OUT}/reconstructions.png"] = list(models)
    for path, shown in (
        denoising_figure(params, models, picked),
        l1_vs_l2_figure(params, models, picked),
    ):
        if path:
            drawn[path] = shown
    return drawn


def describe(config) -> str:
    """What sets a variant apart: its kind's own keys and its loss."""
    own = {k: v for k, v in config.model_dump().items() if k not in TrainParams.model_fields}
    loss = getattr(config, "loss", "mse")
    return ", ".join(f"{k}={v}" for k, v in own.items()) + f", loss={loss}"


def first_of(params, **wanted) -> str | None:
    """The first variant whose config has all the `wanted` values."""
    for name, config in params.variants.items():
        if all(getattr(config, key, None) == value for key, value in wanted.items()):
            return name
    return None


def denoising_figure(params, models, picked) -> tuple[str | None, list[str]]:
    plain = first_of(params, kind="ae", loss="mse")
    denoiser = first_of(params, kind="dae", noise="gaussian")
    if not (plain and denoiser):
        print("figures: no plain `ae` (mse) and gaussian `dae` variant: skipping 2_denoising")
        return None, []
    model = models[denoiser].train()  # train mode: its own noise, seeded
    torch.manual_seed(params.seed)
    noisy = model.corrupt(picked)
    rows = {
        "clean": picked,
        "noisy": noisy,
        f"{plain} (plain)": reconstruct(models[plain], noisy),
        f"{denoiser} (denoising)": reconstruct(model, noisy),
    }
    figures.save(
        figures.denoising({k: np.asarray(v) for k, v in rows.items()}), f"{OUT}/2_denoising.png"
    )
    return f"{OUT}/2_denoising.png", [plain, denoiser]


def l1_vs_l2_figure(params, models, picked) -> tuple[str | None, list[str]]:
    l2, l1 = first_of(params, kind="ae", loss="mse"), first_of(params, kind="ae", loss="l1")
    if not (l2 and l1):
        print("figures: no `ae` variants with mse and l1 loss: skipping 3_l1_vs_l2")
        return None, []
    curves = {}
    for name in (l2, l1):
        history = np.genfromtxt(f"models/{name}/history.csv", delimiter=",", names=True)
        curves[f"{name} ({models[name].config.loss})"] = (history["epoch"], history["val_mse"])
    rows = {
        "original": picked.numpy(),
        "L2": reconstruct(models[l2], picked),
        "L1": reconstruct(models[l1], picked),
    }
    figures.save(figures.l1_vs_l2(curves, rows), f"{OUT}/3_l1_vs_l2.png")
    return f"{OUT}/3_l1_vs_l2.png", [l2, l1]


if __name__ == "__main__":
    run_stage(main)
