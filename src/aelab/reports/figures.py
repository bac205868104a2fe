"""The figures stage's pictures: the article's five, a reconstruction grid, each variant's
generated digits and interpolations, and the loss table `dvc plots` draws.

The drawing functions take arrays (images as (N, 784) floats in [0, 1]) and return a
Figure; `save` writes it as a PNG atomically. The builders at the end (`draw_variants`,
`draw_generated`, `save_history_table`) turn what the stage loaded (seed 0's networks,
features, losses and generated digits) into the files under reports/; nothing here reads
a file.
"""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from aelab.analysis.clusterers import latent_map  # noqa: E402
from aelab.analysis.metrics import threshold  # noqa: E402
from aelab.analysis.samplers import sampled  # noqa: E402
from aelab.core import paths  # noqa: E402
from aelab.core.io import atomic_open  # noqa: E402
from aelab.core.params import Params, TrainParams  # noqa: E402
from aelab.reports.evaluation import clusters_of  # noqa: E402
from aelab.reports.figure_files import denoising_pair, l1_vs_l2_pair  # noqa: E402
from aelab.training.encoding import reconstruct  # noqa: E402
from aelab.training.loop import as_inputs  # noqa: E402

if TYPE_CHECKING:
    from aelab.data.digits import SplitSet
    from aelab.models import LatentModel
    from aelab.models.architectures import Layer

ROLE_COLOURS = {"input": "#9e9e9e", "encoder": "#4c72b0", "latent": "#dd8452",
                "decoder": "#55a868", "output": "#9e9e9e"}  # fmt: skip
DIGIT_COLOURS = plt.get_cmap("tab10")


def save(figure: Figure, path: str | Path) -> None:
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png", dpi=100)  # layouts are "constrained": no "tight" pass
    plt.close(figure)


def _mosaic(ax, rows: dict[str, np.ndarray] | list[tuple[str, np.ndarray]]) -> None:
    """Rows of 28x28 digits drawn as one image (one axes, not one per digit: far faster),
    each row labelled at the left."""
    rows = list(rows.items()) if isinstance(rows, dict) else rows
    pad, cell = 2, 28 + 2
    n = max(len(images) for _, images in rows)
    canvas = np.ones((cell * len(rows) + pad, cell * n + pad))
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            top, left = pad + r * cell, pad + c * cell
            canvas[top : top + 28, left : left + 28] = np.clip(image.reshape(28, 28), 0, 1)
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([pad + r * cell + 14 for r in range(len(rows))], [label for label, _ in rows])
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def architecture(layers: dict[str, list[Layer]], notes: dict[str, str]) -> Figure:
    """(1) Encoder - latent - decoder of each variant: one bar per layer, as tall as the layer
    has units (square root, so that 32 stays visible beside 784), labelled with its width
    or its feature map (channels×height×width), joined into a funnel."""
    figure, axes = plt.subplots(
        len(layers), 1, figsize=(10, 1.3 * len(layers) + 0.8), squeeze=False, layout="constrained"
    )
    tallest = max(units for widths in layers.values() for _, units, _ in widths)
    longest = max(len(widths) for widths in layers.values())
    for ax, (name, widths) in zip(axes[:, 0], layers.items(), strict=True):
        heights = [np.sqrt(units / tallest) for _, units, _ in widths]
        for x, ((role, _, label), height) in enumerate(zip(widths, heights, strict=True)):
            ax.add_patch(
                plt.Rectangle((x - 0.15, -height / 2), 0.3, height, color=ROLE_COLOURS[role])
            )
            ax.text(x, height / 2 + 0.04, label, ha="center", va="bottom", fontsize=8)
        for x, (left, right) in enumerate(pairwise(heights)):  # the funnel between layers
            ax.fill([x + 0.15, x + 0.85, x + 0.85, x + 0.15],
                    [-left / 2, -right / 2, right / 2, left / 2], color="#dddddd")  # fmt: skip
        ax.text(longest - 0.4, 0, notes.get(name, ""), va="center", fontsize=8)
        ax.set_xlim(-0.5, longest + 2.5)
        ax.set_ylim(-0.6, 0.75)
        ax.axis("off")
        ax.text(-0.45, 0, name, ha="right", va="center", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in list(ROLE_COLOURS.values())[:4]]
    labels = ["input / output", "encoder", "latent code", "decoder"]
    figure.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    figure.suptitle("Encoder → latent → decoder: the layer widths of each variant")
    return figure


def denoising(rows: dict[str, np.ndarray]) -> Figure:
    """(2) The same noisy digits through the plain and the denoising autoencoder."""
    n = max(len(images) for images in rows.values())
    figure, ax = plt.subplots(figsize=(1.0 * n + 1.5, 1.0 * len(rows) + 0.6), layout="constrained")
    _mosaic(ax, rows)
    ax.set_title("Plain vs denoising autoencoder on noisy test digits")
    return figure


def l1_vs_l2(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], rows: dict[str, np.ndarray]
) -> Figure:
    """(3) Validation MSE per epoch of the L2- and the L1-trained autoencoder, and what each
    reconstructs."""
    figure, (curve_ax, image_ax) = plt.subplots(
        2, 1, figsize=(11, 4 + 1.0 * len(rows)), height_ratios=[3, len(rows)], layout="constrained"
    )
    for label, (epochs, values) in curves.items():
        curve_ax.plot(epochs, values, label=label)
    curve_ax.set_yscale("log")
    curve_ax.set_xlabel("epoch")
    curve_ax.set_ylabel("validation MSE per pixel")
    curve_ax.legend()
    _mosaic(image_ax, rows)
    figure.suptitle("L2 (MSE) vs L1 (MAE) reconstruction loss")
    return figure


def latent_space(
    name: str, xy: np.ndarray, labels: np.ndarray, clusters: dict[str, np.ndarray]
) -> Figure:
    """(4) The test codes on their 2-D UMAP, coloured by true digit (one legend entry per
    digit) and, beside it, by the clusters each clusterer found."""
    panels = {"true digit": labels, **{f"{method} clusters": found
                                       for method, found in clusters.items()}}  # fmt: skip
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.2, 4.6),
                                squeeze=False, layout="constrained")  # fmt: skip
    for ax, (title, colour_by) in zip(axes[0], panels.items(), strict=True):
        for value in np.unique(colour_by):
            shown = colour_by == value
            ax.scatter(xy[shown, 0], xy[shown, 1], s=5, color=DIGIT_COLOURS(int(value) % 10),
                       label=str(value))  # fmt: skip
        ax.set_title(f"coloured by {title}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(title="digit", loc="center left", bbox_to_anchor=(-0.32, 0.5),
                      markerscale=3, frameon=False)  # fmt: skip
    figure.suptitle(f"{name}: 2-D UMAP of the test digits' codes")
    return figure


def anomalies(
    name: str,
    scores: np.ndarray,
    is_anomaly: np.ndarray,
    threshold: float,
    images: np.ndarray,
    reconstructions: np.ndarray,
    n: int = 8,
) -> Figure:
    """(5) Scores of normal and anomalous test digits with the threshold, and the most and
    least anomalous digits with their reconstructions."""
    figure, (hist, image_ax) = plt.subplots(
        2, 1, figsize=(1.1 * n + 3, 9), height_ratios=[3, 4], layout="constrained"
    )
    bins = np.logspace(np.log10(scores.min()), np.log10(scores.max()), 50)
    hist.hist(scores[~is_anomaly], bins=bins, alpha=0.6, label="normal digits")
    hist.hist(scores[is_anomaly], bins=bins, alpha=0.6, label="anomalous digits")
    hist.axvline(threshold, color="black", linestyle="--", label="threshold (validation)")
    hist.set_xscale("log")
    hist.xaxis.set_minor_formatter(NullFormatter())  # major decades only: no overlapping labels
    hist.set_xlabel("anomaly score: reconstruction MSE")
    hist.set_ylabel("test digits")
    hist.legend()
    order = np.argsort(scores)
    most, least = order[::-1][:n], order[:n]
    rows = [
        ("most anomalous", images[most]),
        ("reconstructed", reconstructions[most]),
        ("least anomalous", images[least]),
        ("reconstructed", reconstructions[least]),
    ]
    _mosaic(image_ax, rows)
    figure.suptitle(f"{name}: anomaly detection on the test digits")
    return figure


def reconstruction_grid(originals: np.ndarray, reconstructions: dict[str, np.ndarray]) -> Figure:
    """One row of reconstructions per variant under the original digits."""
    rows = {"original": originals, **reconstructions}
    figure, ax = plt.subplots(figsize=(1.0 * len(originals) + 1.5, 1.0 * len(rows) + 0.6),
                              layout="constrained")  # fmt: skip
    _mosaic(ax, rows)
    ax.set_title("Reconstructions of one test digit of each class")
    return figure


def samples(name: str, drawn: dict[str, np.ndarray], per_row: int = 16) -> Figure:
    """(6) Digits a variant generated, two rows per sampler."""
    rows = []
    for sampler, images in drawn.items():
        rows += [(sampler, images[:per_row]), ("", images[per_row : 2 * per_row])]
    figure, ax = plt.subplots(figsize=(0.5 * per_row + 1.2, 0.5 * len(rows) + 0.6),
                              layout="constrained")  # fmt: skip
    _mosaic(ax, rows)
    ax.set_title(f"{name}: generated digits of each sampler (seed 0)")
    return figure


def interpolation(name: str, lines: np.ndarray) -> Figure:
    """(7) Straight lines between the codes of two test digits (P, steps, 784), decoded."""
    rows = [(f"pair {i + 1}", line) for i, line in enumerate(lines)]
    steps = lines.shape[1]
    figure, ax = plt.subplots(figsize=(0.5 * steps + 1.2, 0.5 * len(rows) + 0.6),
                              layout="constrained")  # fmt: skip
    _mosaic(ax, rows)
    ax.set_title(f"{name}: from one test digit's code to another's (seed 0)")
    return figure


# The stage's builders: what it loaded -> the files under reports/.


def draw_variants(root: Path, params: Params, test: SplitSet, models: dict[str, LatentModel],
                  features: dict[str, dict[str, np.ndarray]], histories: dict) -> None:  # fmt: skip
    """Draw every figure from each variant's first seed: its network, features and losses,
    into the project at `root`."""
    inputs = as_inputs(test.images, torch.device("cpu"))
    one_per_digit = np.array([np.flatnonzero(test.labels == d)[0] for d in range(10)])
    picked = inputs[one_per_digit]

    layers = {name: model.architecture() for name, model in models.items()}
    notes = {name: describe(config) for name, config in params.variants.items()}
    save(architecture(layers, notes), root / paths.ARCHITECTURE_FIGURE)
    for name, model in models.items():
        errors = features[name]["test_error"]
        xy, clusters = latent_picture(features[name]["test_latent"], test.labels, params,
                                      params.seed_of(name, paths.FIRST_SEED))  # fmt: skip
        save(latent_space(name, xy, test.labels, clusters), root / paths.latent_space_figure(name))
        if test.is_anomaly.any():
            figure = anomalies(
                name,
                errors,
                test.is_anomaly,
                threshold(features[name]["val_error"], params.evaluate.threshold_percentile),
                inputs.numpy(),
                reconstruct(model, inputs),
            )
            save(figure, root / paths.anomalies_figure(name))
    recons = {name: reconstruct(model, picked) for name, model in models.items()}
    save(reconstruction_grid(picked.numpy(), recons), root / paths.RECONSTRUCTIONS_FIGURE)
    denoising_figure(root, params, models, picked)
    l1_vs_l2_figure(root, models, picked, histories, params)


def draw_generated(root: Path, params: Params, generated: dict[str, dict[str, np.ndarray]]
                   ) -> None:  # fmt: skip
    """Per variant, its first seed's samples of each sampler and its interpolations (the
    same pairs of test digits for every variant), into the project at `root`."""
    for name, arrays in generated.items():
        drawn = {sampler: arrays[f"{sampler}_images"] for sampler in sampled(params, name)}
        if drawn:
            save(samples(name, drawn), root / paths.samples_figure(name))
        save(interpolation(name, arrays["interp_paths"]), root / paths.interpolation_figure(name))


def save_history_table(histories: dict[str, list[dict[str, float]]], path: Path) -> None:
    """The losses every variant reports per epoch, one row per (variant, epoch): one file
    that dvc.yaml's plots draw with one line per variant, whatever params.yaml lists.
    Values are copied as the training stages wrote them (read_history's round trip)."""
    columns = ["epoch", "train_loss", "val_loss", "val_mse"]
    with atomic_open(path, "w") as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(["variant", *columns])
        for name, history in histories.items():
            table.writerows([name, *(row[c] for c in columns)] for row in history)


def latent_picture(codes: np.ndarray, labels: np.ndarray, params: Params, seed: int):
    """The first seed's 2-D UMAP of the test codes and the clusters each clusterer found on
    every test digit: what `evaluate` found for that seed (the same functions and seed)."""
    found = clusters_of(codes, len(np.unique(labels)), params.evaluate, seed)
    xy = found.pop("map", None)
    if xy is None:  # umap is not among the clusterers: map the codes for the picture alone
        xy = latent_map(codes, params.evaluate, seed)
    return xy, found


def describe(config) -> str:
    """What sets a variant apart: its kind's own keys, its loss, a conv architecture (only
    those read: the stage's params in dvc.yaml name them)."""
    own = {k: getattr(config, k) for k in type(config).model_fields
           if k not in TrainParams.model_fields}  # fmt: skip
    loss = getattr(config, "loss", "mse")
    arch = "" if getattr(config, "arch", "mlp") == "mlp" else f", arch={config.arch}"
    return ", ".join(f"{k}={v}" for k, v in own.items()) + f", loss={loss}{arch}"


def denoising_figure(root: Path, params: Params, models: dict, picked: torch.Tensor) -> None:
    """(2), when params.yaml has a plain `ae` (mse) and a gaussian `dae`."""
    pair = denoising_pair(params.variants)
    if pair is None:
        print("figures: no plain `ae` (mse) and gaussian `dae` variant: skipping 2_denoising")
        return
    plain, denoiser = pair
    model = models[denoiser].train()  # train mode: its own noise, seeded
    torch.manual_seed(params.seed_of(denoiser, paths.FIRST_SEED))
    noisy = model.corrupt(picked)
    rows = {
        "clean": picked,
        "noisy": noisy,
        f"{plain} (plain)": reconstruct(models[plain], noisy),
        f"{denoiser} (denoising)": reconstruct(model, noisy),
    }
    save(denoising({k: np.asarray(v) for k, v in rows.items()}), root / paths.DENOISING_FIGURE)


def l1_vs_l2_figure(root: Path, models: dict, picked: torch.Tensor, histories: dict,
                    params: Params) -> None:  # fmt: skip
    """(3), when params.yaml has `ae` variants with mse and with l1 loss."""
    pair = l1_vs_l2_pair(params.variants)
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
    save(l1_vs_l2(curves, rows), root / paths.L1_VS_L2_FIGURE)
