"""Which figure files show a variant: the pairs the article's comparisons need, picked from
params.yaml's variants, and every file the log step attaches to a variant's run. Light on
purpose (no plotting library): the log step reads the workspace through it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aelab.core import paths

if TYPE_CHECKING:
    from aelab.core.params import VariantConfig


def first_of(variants: dict[str, VariantConfig], **wanted) -> str | None:
    """The first variant whose config has all the `wanted` values."""
    for name, config in variants.items():
        if all(getattr(config, key, None) == value for key, value in wanted.items()):
            return name
    return None


def denoising_pair(variants: dict[str, VariantConfig]) -> tuple[str, str] | None:
    """(plain, denoising): the variants figure (2) compares, if params.yaml has both."""
    plain = first_of(variants, kind="ae", loss="mse")
    denoiser = first_of(variants, kind="dae", noise="gaussian")
    return (plain, denoiser) if plain and denoiser else None


def l1_vs_l2_pair(variants: dict[str, VariantConfig]) -> tuple[str, str] | None:
    """(L2, L1): the variants figure (3) compares, if params.yaml has both."""
    l2, l1 = first_of(variants, kind="ae", loss="mse"), first_of(variants, kind="ae", loss="l1")
    return (l2, l1) if l2 and l1 else None


def figures_of(name: str, variants: dict[str, VariantConfig]) -> list[Path]:
    """The figure files that show variant `name` (the anomaly one only exists when the test
    digits have anomalies, the samples one when a sampler draws from it)."""
    shown = [paths.ARCHITECTURE_FIGURE, paths.RECONSTRUCTIONS_FIGURE,
             paths.latent_space_figure(name), paths.anomalies_figure(name),
             paths.samples_figure(name), paths.interpolation_figure(name)]  # fmt: skip
    if name in (denoising_pair(variants) or ()):
        shown.append(paths.DENOISING_FIGURE)
    if name in (l1_vs_l2_pair(variants) or ()):
        shown.append(paths.L1_VS_L2_FIGURE)
    return shown
