"""aelab.reports.figures: every picture draws from plain arrays and saves as a PNG; and which files
show a variant (aelab.reports.figure_files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from aelab.core import paths
from aelab.core.params import load_params
from aelab.reports import figure_files, figures

RNG = np.random.default_rng(0)
IMAGES = RNG.random((12, 784)).astype(np.float32)
LABELS = np.arange(12) % 10
SHADES = (np.zeros((12, 784), np.float32), np.ones((12, 784), np.float32))  # black, white digits
XY = (RNG.random((12, 2)), RNG.random((12, 2)))
SCORES = np.linspace(0.01, 1.0, 12)


def saved(figure, tmp_path: Path) -> bytes:
    path = tmp_path / "figure.png"
    figures.save(figure, path)
    return path.read_bytes()


def architecture(latent: int):
    layers = [("input", 784, "784"), ("encoder", 6272, "32×14×14"), ("latent", latent, str(latent)),
              ("decoder", 6272, "32×14×14"), ("output", 784, "784")]  # fmt: skip
    return figures.architecture({"ae": layers}, {"ae": "loss=mse"})


# Every figure, drawn from two different inputs (0 and 1); the mosaics from black digits (0)
# and white ones (1), which vanish into the white background.
DRAWINGS = {
    "architecture": lambda v: architecture((32, 512)[v]),
    "denoising": lambda v: figures.denoising({"clean": SHADES[v][:4], "noisy": SHADES[v][4:8]}),
    "l1_vs_l2": lambda v: figures.l1_vs_l2({"ae": (np.arange(3), np.array([0.3, 0.2, 0.1]))},
                                           {"L2": SHADES[v][:4]}),
    "latent_space": lambda v: figures.latent_space("ae", XY[v], LABELS,
                                                   {"kmeans": LABELS % 3, "umap": LABELS}),
    "bare": lambda v: figures.latent_space("ae", XY[v], LABELS, {}),  # no clusterer
    "anomalies": lambda v: figures.anomalies("ae", SCORES, LABELS > 4, 0.5, SHADES[v],
                                             SHADES[v], n=3),
    "grid": lambda v: figures.reconstruction_grid(SHADES[v][:4], {"ae": SHADES[v][4:8]}),
}  # fmt: skip
MOSAIC_DIGITS = {"denoising": 8, "l1_vs_l2": 4, "anomalies": 12, "grid": 8}  # digits shown


def picture(figure, path: Path) -> np.ndarray:
    """The figure as `figures.save` writes it, decoded: (height, width, 3) RGB in [0, 1]."""
    figures.save(figure, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    return matplotlib.image.imread(path)[..., :3]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory):
    """name -> the pictures of DRAWINGS[name](0) and (1), each drawn once per module."""
    folder, drawn = tmp_path_factory.mktemp("figures"), {}

    def of(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in drawn:
            drawn[name] = tuple(picture(DRAWINGS[name](v), folder / f"{name}_{v}.png")
                                for v in (0, 1))  # fmt: skip
        return drawn[name]

    return of


def colours(pixels: np.ndarray) -> int:
    return len(np.unique(pixels.reshape(-1, 3), axis=0))


def dark(pixels: np.ndarray) -> np.ndarray:
    return pixels.max(axis=-1) < 0.05


def coloured(pixels: np.ndarray, colour) -> int:
    """How many pixels are `colour` (a matplotlib colour), give or take rounding."""
    return int((np.abs(pixels - matplotlib.colors.to_rgb(colour)).max(axis=-1) < 0.02).sum())


@pytest.mark.parametrize("name", DRAWINGS)
def test_each_figure_is_a_png_that_draws_its_inputs(pictures, name):
    first, second = pictures(name)
    assert colours(first) > 10, "a blank figure"
    assert first.shape == second.shape and not np.array_equal(first, second), "ignores its input"


@pytest.mark.parametrize("name", MOSAIC_DIGITS)
def test_mosaics_show_every_digit(pictures, name):
    """Black digits blacken at least their 28x28 pixels each; white ones none."""
    black, white = pictures(name)
    assert dark(black).sum() - dark(white).sum() >= MOSAIC_DIGITS[name] * 28 * 28


def test_the_grid_shows_the_originals_above_the_reconstructions(tmp_path: Path):
    black, white = SHADES
    top = picture(figures.reconstruction_grid(black[:4], {"ae": white[:4]}), tmp_path / "a.png")
    bottom = picture(figures.reconstruction_grid(white[:4], {"ae": black[:4]}), tmp_path / "b.png")
    # Rows of the pixels dark in one picture only: the digits' (labels and title are in both).
    upper = np.nonzero(dark(top) & ~dark(bottom))[0]
    lower = np.nonzero(dark(bottom) & ~dark(top))[0]
    assert upper.size >= 4 * 28 * 28 and lower.size >= 4 * 28 * 28
    assert upper.max() < lower.min()


def test_points_take_their_digits_colour(pictures, tmp_path: Path):
    """Every digit's colour when the codes hold every digit; only those of 0, 1 and 2 when they
    hold only those. (Digit 7's colour, grey, is left out: the text's edges have it too.)"""
    every = pictures("bare")[0]
    few = picture(figures.latent_space("ae", XY[0], LABELS % 3, {}), tmp_path / "few.png")
    digits = [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert all(coloured(every, figures.DIGIT_COLOURS(digit)) > 20 for digit in digits)
    shown = [coloured(few, figures.DIGIT_COLOURS(digit)) > 20 for digit in digits]
    assert shown == [True] * 3 + [False] * 6


def test_architecture_bars_grow_with_their_layers(pictures):
    """A 512-unit code's bar is 4 times as tall as a 32-unit one's (square root); the legend's
    patch of that colour is the same in both."""
    small, large = pictures("architecture")
    latent = figures.ROLE_COLOURS["latent"]
    assert coloured(large, latent) > 2 * coloured(small, latent)


def test_the_same_arrays_give_the_same_bytes(tmp_path):
    """DVC hashes the figures: a rerun must not change them."""
    draw = lambda: figures.latent_space("ae", IMAGES[:, :2], LABELS, {"umap": LABELS})  # noqa: E731
    assert saved(draw(), tmp_path) == saved(draw(), tmp_path)


def test_figures_of_a_variant_follow_the_default_params():
    variants = load_params(Path(__file__).parent.parent / "params.yaml").variants
    assert figure_files.denoising_pair(variants) == ("ae", "dae")
    assert figure_files.l1_vs_l2_pair(variants) == ("ae", "ae_l1")
    assert paths.DENOISING_FIGURE in figure_files.figures_of("dae", variants)
    assert paths.L1_VS_L2_FIGURE in figure_files.figures_of("ae_l1", variants)
    assert paths.DENOISING_FIGURE not in figure_files.figures_of("vae", variants)
    assert figure_files.figures_of("vae", variants)[:3] == [
        paths.ARCHITECTURE_FIGURE, paths.RECONSTRUCTIONS_FIGURE, paths.latent_space_figure("vae")
    ]  # fmt: skip
