"""Stage `figures`: the article's five pictures, a reconstruction grid, each variant's
generated digits and interpolations -> reports/figures/,
and every variant's loss curves in one table for `dvc plots` -> reports/history.csv.
Pictures and curves show each variant's first seed (models/<variant>/seed_0/)."""

import csv

import numpy as np
import torch

from aelab.analysis.clusterers import CLUSTERERS
from aelab.analysis.metrics import threshold
from aelab.analysis.samplers import SAMPLERS, sampled
from aelab.core import paths
from aelab.core.errors import AelabError, run_stage
from aelab.core.io import atomic_open, load_json
from aelab.core.params import Params, TrainParams, load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.data.generated import load_generated
from aelab.data.history import read_history
from aelab.models.checkpoints import load_checkpoint
from aelab.reports import figures
from aelab.reports.evaluation import clusters_of, latent_map
from aelab.training.encoding import reconstruct
from aelab.training.loop import as_inputs


def main() -> None:
    params = load_params(clusterers=CLUSTERERS, samplers=SAMPLERS)
    require_metrics_of(list(params.variants))
    # Every input is read before anything is drawn: a damaged one stops the stage at once.
    features = {name: load_features(paths.features_file(name, 0)) for name in params.variants}
    histories = {name: read_history(paths.checkpoint_dir(name, 0)) for name in params.variants}
    generated = {name: load_generated(name, 0, sampled(params, name)) for name in params.variants}
    draw(params, features, histories)
    generation_figures(params, generated)
    write_history_table(histories)
    print(f"figures: {paths.FIGURES_DIR}/, {paths.HISTORY_TABLE}")


def require_metrics_of(variants: list[str]) -> None:
    """A stale reports/metrics.json (without a variant params.yaml lists) stops the stage
    with the fix: the figures must show what `evaluate` measured."""
    reported = load_json(paths.METRICS, "evaluate")
    missing = [name for name in variants if name not in reported]
    if missing:
        raise AelabError(
            f"{paths.METRICS} has no results for variant {missing[0]!r}; run `dvc repro evaluate`"
        )


def write_history_table(histories: dict[str, list[dict[str, float]]]) -> None:
    """The losses every variant reports per epoch, one row per (variant, epoch): one file
    that dvc.yaml's plots draw with one line per variant, whatever params.yaml lists.
    Values are copied as the training stages wrote them (read_history's round trip)."""
    columns = ["epoch", "train_loss", "val_loss", "val_mse"]
    with atomic_open(paths.HISTORY_TABLE, "w") as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(["variant", *columns])
        for name, history in histories.items():
            table.writerows([name, *(row[c] for c in columns)] for row in history)


def draw(params: Params, features: dict[str, dict[str, np.ndarray]], histories: dict) -> None:
    """Draw every figure from each variant's first seed: its network, features and losses."""
    test = digits.load_split("test")
    inputs = as_inputs(test.images, torch.device("cpu"))
    models = {name: load_checkpoint(paths.checkpoint_dir(name, 0)) for name in params.variants}
    one_per_digit = np.array([np.flatnonzero(test.labels == d)[0] for d in range(10)])
    picked = inputs[one_per_digit]

    layers = {name: model.architecture() for name, model in models.items()}
    notes = {name: describe(config) for name, config in params.variants.items()}
    figures.save(figures.architecture(layers, notes), paths.ARCHITECTURE_FIGURE)
    for name, model in models.items():
        errors = features[name]["test_error"]
        xy, clusters = latent_picture(features[name]["test_latent"], test.labels, params)
        figures.save(figures.latent_space(name, xy, test.labels, clusters),
                     paths.latent_space_figure(name))  # fmt: skip
        if test.is_anomaly.any():
            figure = figures.anomalies(
                name,
                errors,
                test.is_anomaly,
                threshold(features[name]["val_error"], params.evaluate.threshold_percentile),
                inputs.numpy(),
                reconstruct(model, inputs),
            )
            figures.save(figure, paths.anomalies_figure(name))
    recons = {name: reconstruct(model, picked) for name, model in models.items()}
    figures.save(figures.reconstruction_grid(picked.numpy(), recons), paths.RECONSTRUCTIONS_FIGURE)
    denoising_figure(params, models, picked)
    l1_vs_l2_figure(params, models, picked, histories)


def generation_figures(params: Params, generated: dict[str, dict[str, np.ndarray]]) -> None:
    """Per variant, seed 0's samples of each sampler and its interpolations (the same
    pairs of test digits for every variant)."""
    for name, arrays in generated.items():
        drawn = {sampler: arrays[f"{sampler}_images"] for sampler in sampled(params, name)}
        if drawn:
            figures.save(figures.samples(name, drawn), paths.samples_figure(name))
        figures.save(figures.interpolation(name, arrays["interp_paths"]),
                     paths.interpolation_figure(name))  # fmt: skip


def latent_picture(codes: np.ndarray, labels: np.ndarray, params: Params):
    """Seed 0's 2-D UMAP of the test codes and the clusters each clusterer found on every
    test digit: what `evaluate` found for that seed (the same functions and seed)."""
    found = clusters_of(codes, len(np.unique(labels)), params.evaluate, params.seed)
    xy = found.pop("map", None)
    if xy is None:  # umap is not among the clusterers: map the codes for the picture alone
        xy = latent_map(codes, params.evaluate, params.seed)
    return xy, found


def describe(config) -> str:
    """What sets a variant apart: its kind's own keys, its loss, a conv architecture."""
    own = {k: v for k, v in config.model_dump().items() if k not in TrainParams.model_fields}
    loss = getattr(config, "loss", "mse")
    arch = "" if getattr(config, "arch", "mlp") == "mlp" else f", arch={config.arch}"
    return ", ".join(f"{k}={v}" for k, v in own.items()) + f", loss={loss}{arch}"


def denoising_figure(params, models, picked) -> None:
    pair = paths.denoising_pair(params.variants)
    if pair is None:
        print("figures: no plain `ae` (mse) and gaussian `dae` variant: skipping 2_denoising")
        return
    plain, denoiser = pair
    model = models[denoiser].train()  # train mode: its own noise, seeded
    torch.manual_seed(params.seed)
    noisy = model.corrupt(picked)
    rows = {
        "clean": picked,
        "noisy": noisy,
        f"{plain} (plain)": reconstruct(models[plain], noisy),
        f"{denoiser} (denoising)": reconstruct(model, noisy),
    }
    figure = figures.denoising({k: np.asarray(v) for k, v in rows.items()})
    figures.save(figure, paths.DENOISING_FIGURE)


def l1_vs_l2_figure(params, models, picked, histories) -> None:
    pair = paths.l1_vs_l2_pair(params.variants)
    if pair is None:
        print("figures: no `ae` variants with mse and l1 loss: skipping 3_l1_vs_l2")
        return
    curves = {}
    for name in pair:
        epochs, val_mse = (np.array([row[key] for row in histories[name]])
                           for key in ("epoch", "val_mse"))  # fmt: skip
        curves[f"{name} ({models[name].config.loss})"] = (epochs, val_mse)
    l2, l1 = pair
    rows = {
        "original": picked.numpy(),
        "L2": reconstruct(models[l2], picked),
        "L1": reconstruct(models[l1], picked),
    }
    figures.save(figures.l1_vs_l2(curves, rows), paths.L1_VS_L2_FIGURE)


if __name__ == "__main__":
    run_stage(main)
