"""The article's dense architecture: 784 -> hidden_dims -> code, and the mirror back."""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from aelab.data.digits import INPUT_DIM
from aelab.models.architectures import ACTIVATIONS, Layer, output_layer, register_architecture
from aelab.models.layers import Linear


class MLPEncoder(nn.Module):
    """Linear layers with `activation` after each, then a linear map to the code."""

    def __init__(self, members: int, hidden_dims: list[int], code_width: int, activation: str):
        super().__init__()
        widths = [INPUT_DIM, *hidden_dims]
        self.hidden_layers = nn.ModuleList(Linear(members, a, b) for a, b in pairwise(widths))
        self.activation = ACTIVATIONS[activation]()
        self.to_code = Linear(members, widths[-1], code_width)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x (S, B, 784) -> the code (S, B, code_width) and each hidden layer (S, B, width)."""
        hidden = []
        for layer in self.hidden_layers:
            x = self.activation(layer(x))
            hidden.append(x)
        return self.to_code(x), hidden

    def layers(self) -> list[Layer]:
        return [Layer.of("encoder", layer.out_features) for layer in self.hidden_layers]


class MLPDecoder(nn.Sequential):
    """The hidden widths in reverse, with ReLU, then 784 outputs through `output`."""

    def __init__(self, members: int, latent_dim: int, hidden_dims: list[int], output: nn.Module):
        widths = [latent_dim, *reversed(hidden_dims)]
        modules: list[nn.Module] = []
        for a, b in pairwise(widths):
            modules += [Linear(members, a, b), nn.ReLU()]
        super().__init__(*modules, Linear(members, widths[-1], INPUT_DIM), output)

    def layers(self) -> list[Layer]:
        linears = [module for module in self if isinstance(module, Linear)][:-1]
        return [Layer.of("decoder", layer.out_features) for layer in linears]


@register_architecture("mlp")
def build_mlp(config, code_width: int, activation: str, members: int) -> tuple[nn.Module, ...]:
    encoder = MLPEncoder(members, config.hidden_dims, code_width, activation)
    decoder = MLPDecoder(members, config.latent_dim, config.hidden_dims, output_layer(config.loss))
    return encoder, decoder
