"""The base autoencoder (the article's SimpleAutoencoder) and the registry of objectives.

A network variant is an objective times an architecture. The objective is a subclass
that overrides one hook: `corrupt` (input noise), `sample_latent` (a probabilistic code)
or `penalty` (a term on the hidden activations); `forward` is written once, here. The
encoder and decoder come from the architecture (`arch:`, aelab.models.architectures).

A model holds S networks, its members (one per seed), trained together in one step
(aelab.models.layers): `forward` takes one batch per member, (S, B, 784), and returns every
loss part per member, (S,). A trained network is a model of one member; `encode`,
`reconstruct`, `decode` and `anomaly_score` take and return plain batches (B, ...) of it.
`build_group` makes a group whose members start as lone networks of their seeds would,
`select` takes members out of it, and `assemble` makes a model of given weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.core.params import VariantConfig
from aelab.core.registry import Registry
from aelab.data.digits import INPUT_DIM
from aelab.models.architectures import Layer, build_networks


def _per_member(loss: Callable[..., Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """A reconstruction loss as each member's mean over its batch and pixels: (S,)."""
    return lambda output, target: loss(output, target, reduction="none").flatten(1).mean(dim=1)


RECONSTRUCTION_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": _per_member(F.mse_loss),  # the article's L2
    "l1": _per_member(F.l1_loss),
    "bce": _per_member(F.binary_cross_entropy),
}


class LatentModel(nn.Module):
    """What every variant offers: a code, a reconstruction and an anomaly score."""

    closed_form = False  # True: fitted in one step (`fit`) instead of by gradient descent
    members = 1  # networks held; the single-network methods below need one

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


MODELS: Registry[type[LatentModel]] = Registry("variant kind")


def registry() -> dict[str, type[LatentModel]]:
    """kind -> model class, one entry per variant kind."""
    return dict(MODELS)


def register(kind: str) -> Callable[[type[LatentModel]], type[LatentModel]]:
    return MODELS.register(kind)


def build_model(config: VariantConfig, members: int = 1) -> LatentModel:
    return MODELS[config.kind](config, members)


def build_group(config: VariantConfig, seeds: list[int]) -> LatentModel:
    """One model of a member per seed, each starting where a lone network of its seed
    starts (torch.manual_seed(seed), then build_model)."""
    singles = []
    for seed in seeds:
        torch.manual_seed(seed)
        singles.append(build_model(config))
    return assemble(config, {key: torch.cat([model.state_dict()[key] for model in singles])
                               for key in singles[0].state_dict()})  # fmt: skip


def select(group: LatentModel, members: list[int]) -> LatentModel:
    """A model of the chosen members of `group`, in that order; one index: a lone network."""
    return assemble(
        group.config, {key: value[members] for key, value in group.state_dict().items()}
    )


def assemble(config: VariantConfig, state: dict[str, Tensor]) -> LatentModel:
    """A model holding exactly `state` (members first; a lone network's has 1). Built on the
    meta device: no random draw, so the global generator is left as it was."""
    closed_form = MODELS[config.kind].closed_form  # one model, whose state has no members
    members = 1 if closed_form else len(next(iter(state.values())))
    with torch.device("meta"):
        model = build_model(config, members)
    model.load_state_dict(state, assign=True)
    return model


@dataclass
class Output:
    reconstruction: Tensor  # (S, B, 784) in [0, 1]
    latent: Tensor  # (S, B, latent_dim), the code the decoder saw
    losses: dict[str, Tensor]  # named, already weighted parts per member (S,); their sum is trained

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

    def __init__(self, config: VariantConfig, members: int = 1):
        super().__init__()
        self.config, self.members = config, members
        code_width = config.latent_dim * self.codes_per_latent
        self.encoder, self.decoder = build_networks(
            config, code_width, self.hidden_activation, members
        )
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[config.loss]
        # Each member's own random stream for noise and sampling while training, set by
        # the trainer (aelab.training.loop); without it, torch's global generator.
        self.generators: list[torch.Generator] | None = None

    def forward(self, x: Tensor) -> Output:
        """x: (S, B, 784) in [0, 1], a batch per member. The loss compares with the clean x."""
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
        return self.encoder(self._one(x))[0][0, :, : self.config.latent_dim]  # the VAE's: μ

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(self._one(latent))[0]

    def _one(self, batch: Tensor) -> Tensor:
        """A plain batch (B, ...) as the only member's: (1, B, ...)."""
        if self.members != 1:
            raise ValueError(f"a group of {self.members} networks: select one member first")
        return batch.unsqueeze(0)

    def normal(self, like: Tensor) -> Tensor:
        """Standard normal noise shaped like `like` (S, ...), member s's from its stream."""
        if self.generators is None:
            return torch.randn_like(like)
        return torch.stack([torch.randn(like.shape[1:], generator=generator, device=like.device)
                            for generator in self.generators])  # fmt: skip

    def uniform(self, like: Tensor) -> Tensor:
        """Uniform noise in [0, 1) shaped like `like` (S, ...), member s's from its stream."""
        if self.generators is None:
            return torch.rand_like(like)
        return torch.stack([torch.rand(like.shape[1:], generator=generator, device=like.device)
                            for generator in self.generators])  # fmt: skip

    # Hooks for the variants: the plain autoencoder adds nothing.
    def corrupt(self, x: Tensor) -> Tensor:
        return x

    def sample_latent(self, code: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return code, {}

    def penalty(self, inputs: Tensor, hidden: list[Tensor]) -> dict[str, Tensor]:
        return {}


class Encoder(nn.Module):
    """A trained network as a function from images (B, 784) to codes (B, latent_dim): the
    model that MLflow serves. The whole variant stays reachable as `.model`."""

    input_dim = INPUT_DIM

    def __init__(self, model: LatentModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.encode(x)
