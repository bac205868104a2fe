"""aelab.reports.figures: every picture draws from plain arrays and saves as a PNG; and which files
show a variant (aelab.core.paths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aelab.core import paths
from aelab.core.params import load_params
from aelab.reports import figures

RNG = np.random.default_rng(0)
IMAGES = RNG.random((12, 784)).astype(np.float32)
LABELS = np.arange(12) % 10


def saved(figure, tmp_path: Path) -> bytes:
    path = tmp_path / "figure.png"
    figures.save(figure, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "draw",
    [
        lambda: figures.architecture({"ae": [("input", 784, "784"), ("encoder", 6272, "32×14×14"),
                                             ("latent", 32, "32"), ("output", 784, "784")]},
                                     {"ae": "loss=mse"}),
        lambda: figures.denoising({"clean": IMAGES[:4], "noisy": IMAGES[4:8]}),
        lambda: figures.l1_vs_l2({"ae": (np.arange(3), np.array([0.3, 0.2, 0.1]))},
                                 {"L2": IMAGES[:4]}),
        lambda: figures.latent_space("ae", RNG.random((12, 2)), LABELS,
                                     {"kmeans": LABELS % 3, "umap": LABELS}),
        lambda: figures.latent_space("ae", RNG.random((12, 2)), LABELS, {}),  # no clusterer
        lambda: figures.anomalies("ae", RNG.random(12) + 0.01, LABELS > 4, 0.5, IMAGES,
                                  IMAGES, n=3),
        lambda: figures.reconstruction_grid(IMAGES[:4], {"ae": IMAGES[4:8]}),
    ],
    ids=["architecture", "denoising", "l1_vs_l2", "latent_space", "bare", "anomalies", "grid"],
)  # fmt: skip
def test_each_figure_saves_as_a_png(draw, tmp_path):
    assert saved(draw(), tmp_path).startswith(b"\x89PNG")


def test_the_same_arrays_give_the_same_bytes(tmp_path):
    """DVC hashes the figures: a rerun must not change them."""
    draw = lambda: figures.latent_space("ae", IMAGES[:, :2], LABELS, {"umap": LABELS})  # noqa: E731
    assert saved(draw(), tmp_path) == saved(draw(), tmp_path)


def test_figures_of_a_variant_follow_the_default_params():
    variants = load_params(Path(__file__).parent.parent / "params.yaml").variants
    assert paths.denoising_pair(variants) == ("ae", "dae")
    assert paths.l1_vs_l2_pair(variants) == ("ae", "ae_l1")
    assert paths.DENOISING_FIGURE in paths.figures_of("dae", variants)
    assert paths.L1_VS_L2_FIGURE in paths.figures_of("ae_l1", variants)
    assert paths.DENOISING_FIGURE not in paths.figures_of("vae", variants)
    assert paths.figures_of("vae", variants)[:3] == [
        paths.ARCHITECTURE_FIGURE, paths.RECONSTRUCTIONS_FIGURE, paths.latent_space_figure("vae")
    ]  # fmt: skip
