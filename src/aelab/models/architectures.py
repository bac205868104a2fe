"""Architectures: how a network variant's encoder and decoder are built.

A variant is an objective (ae, dae, sparse, contractive, vae: aelab.models.base and
.variants) times an architecture (`arch:` in params.yaml). An architecture is one module
that registers a builder here: `build(config, code_width, activation, members)` returns an
encoder, images (S, B, 784) -> (code (S, B, code_width), [hidden activations (S, B, ...)]),
and a decoder, codes (S, B, latent_dim) -> images (S, B, 784) in [0, 1] through
`output_layer(loss)`, for S members (aelab.models.layers). Both list their hidden layers
(`layers()`) for the architecture picture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class ClampedOutput(nn.Module):
    """Pixels in [0, 1] for the L1 loss: clamped going forward, the identity going back
    (a straight-through estimator).

    Why not the sigmoid the other losses use. L1's gradient is the sign of the error, as
    large for a pixel off by 0.001 as by 0.9, and the minimiser of L1 is the median. Before
    the code carries any information, the median of almost every pixel over the digits is
    black, so L1 first drives every output logit down, at Adam's full step, until the
    sigmoid saturates; its derivative there is ~e^logit, which stops every gradient into
    the network. At lr 0.003 that happened in the first epoch: 98 % of the output logits
    below -8, the all-black image for every digit (9.3 dB). Through a clamp a black pixel's
    error is 0 once reached, so nothing pushes further, and a missing stroke still pulls
    with gradient 1: trained the same way, 19.5 dB.
    """

    def forward(self, logits: Tensor) -> Tensor:
        return logits + (logits.clamp(0.0, 1.0) - logits).detach()


def output_layer(loss: str) -> nn.Module:
    """The decoder's last activation for a reconstruction loss: binary cross-entropy needs
    probabilities (a sigmoid, which MSE keeps too, as the article); L1 a clamp."""
    return ClampedOutput() if loss == "l1" else nn.Sigmoid()


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


def build_networks(
    config, code_width: int, activation: str, members: int
) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder of `config.arch` for `members` networks, sized by the config,
    the decoder ending in the output layer of `config.loss`."""
    return _ARCHITECTURES[config.arch](config, code_width, activation, members)
