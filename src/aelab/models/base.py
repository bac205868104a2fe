"""The base autoencoder (the article's SimpleAutoencoder) and the registry of objectives.

A network variant is an objective times an architecture. The objective is a subclass
that overrides one hook: `corrupt` (input noise), `sample_latent` (a probabilistic code)
or `penalty` (a term on the hidden activations); `forward` is written once, here. The
encoder and decoder come from the architecture (`arch:`, aelab.models.architectures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from aelab.core.params import VariantConfig
from aelab.data.digits import INPUT_DIM
from aelab.models.architectures import Layer, build_networks

RECONSTRUCTION_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,  # the article's L2, mean over pixels and samples
    "l1": F.l1_loss,
    "bce": F.binary_cross_entropy,
}


class LatentModel(nn.Module):
    """What every variant offers: a code, a reconstruction and an anomaly score."""

    closed_form = False  # True: fitted in one step (`fit`) instead of by gradient descent

    def encode(self, x: Tensor) -> Tensor:
        """The deterministic code of x (B, 784): (B, latent_dim)."""
        raise NotImplementedError

    def reconstruct(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, latent: Tensor) -> Tensor:
        """Images (B, 784) of codes (B, latent_dim): how generated codes become digits."""
        raise NotImplementedError

    def anomaly_score(self, x: Tensor) -> Tensor:
        """The article's score: squared reconstruction error, mean over pixels: (B,)."""
        return (x - self.reconstruct(x)).pow(2).mean(dim=1)

    def architecture(self) -> list[Layer]:
        """Each layer from input to output, read off the built modules."""
        raise NotImplementedError


_REGISTRY: dict[str, type[LatentModel]] = {}


def registry() -> dict[str, type[LatentModel]]:
    """kind -> model class, one entry per variant kind."""
    return dict(_REGISTRY)


def register(kind: str) -> Callable[[type[LatentModel]], type[LatentModel]]:
    def add(model_class: type[LatentModel]) -> type[LatentModel]:
        _REGISTRY[kind] = model_class
        return model_class

    return add


def build_model(config: VariantConfig) -> LatentModel:
    return _REGISTRY[config.kind](config)


@dataclass
class Output:
    reconstruction: Tensor  # (B, 784) in [0, 1]
    latent: Tensor  # (B, latent_dim), the code the decoder saw
    losses: dict[str, Tensor]  # named, already weighted parts; their sum is trained

    @property
    def loss(self) -> Tensor:
        first, *rest = self.losses.values()
        return sum(rest, first)


@register("ae")
class Autoencoder(LatentModel):
    """images -> encoder -> latent_dim -> decoder -> images (sigmoid), the encoder and
    decoder built by the variant's architecture."""

    hidden_activation = "relu"  # of the encoder's hidden layers (architectures.ACTIVATIONS)
    codes_per_latent = 1  # the VAE's encoder emits a mean and a log-variance per dimension

    def __init__(self, config: VariantConfig):
        super().__init__()
        self.config = config
        code_width = config.latent_dim * self.codes_per_latent
        self.encoder, self.decoder = build_networks(config, code_width, self.hidden_activation)
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[config.loss]

    def forward(self, x: Tensor) -> Output:
        """x: (B, 784) in [0, 1]. The loss always compares with the clean x."""
        inputs = self.corrupt(x)
        code, hidden = self.encoder(inputs)
        latent, code_losses = self.sample_latent(code)
        reconstruction = self.decoder(latent)
        losses = {"reconstruction": self.reconstruction_loss(reconstruction, x)}
        losses |= code_losses | self.penalty(inputs, hidden)
        return Output(reconstruction, latent, losses)

    def architecture(self) -> list[Layer]:
        return [
            Layer.of("input", INPUT_DIM), *self.encoder.layers(),
            Layer.of("latent", self.config.latent_dim), *self.decoder.layers(),
            Layer.of("output", INPUT_DIM),
        ]  # fmt: skip

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)[0][:, : self.config.latent_dim]  # the VAE's: its mean

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encode(x))

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(latent)

    # Hooks for the variants: the plain autoencoder adds nothing.
    def corrupt(self, x: Tensor) -> Tensor:
        return x

    def sample_latent(self, code: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return code, {}

    def penalty(self, inputs: Tensor, hidden: list[Tensor]) -> dict[str, Tensor]:
        return {}


class Encoder(nn.Module):
    """A variant as a function from images (B, 784) to codes (B, latent_dim): the model that
    MLflow serves. The whole variant stays reachable as `.model`."""

    input_dim = INPUT_DIM

    def __init__(self, model: LatentModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.encode(x)
