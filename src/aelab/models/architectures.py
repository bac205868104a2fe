"""Architectures: how a network variant's encoder and decoder are built.

A variant is an objective (ae, dae, sparse, contractive, vae: aelab.models.base and
.variants) times an architecture (`arch:` in params.yaml). An architecture is one module
that registers a builder here: `build(config, code_width, activation)` returns an encoder,
images (B, 784) -> (code (B, code_width), [hidden activations (B, ...)]), and a decoder,
codes (B, latent_dim) -> images (B, 784) in [0, 1]. Both list their hidden layers
(`layers()`) for the architecture picture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class Layer(NamedTuple):
    """A layer as the architecture picture draws it."""

    role: str  # "input", "encoder", "latent", "decoder" or "output"
    units: int  # activations per image
    label: str  # e.g. "128" or "32×14×14"

    @classmethod
    def of(cls, role: str, width: int) -> Layer:
        """A flat layer, labelled with its width."""
        return cls(role, width, str(width))


Builder = Callable[..., tuple[nn.Module, nn.Module]]
_ARCHITECTURES: dict[str, Builder] = {}


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    def add(build: Builder) -> Builder:
        _ARCHITECTURES[name] = build
        return build

    return add


def build_networks(config, code_width: int, activation: str) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder of `config.arch`, sized by the config."""
    return _ARCHITECTURES[config.arch](config, code_width, activation)
