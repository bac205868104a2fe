"""A convolutional architecture: strided convolutions down to the code, and transposed
convolutions back, each halving or doubling the image side (28 -> 14 -> 7 ...)."""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from aelab.data.digits import INPUT_DIM
from aelab.models.architectures import ACTIVATIONS, Layer, output_layer, register_architecture
from aelab.models.layers import Conv2d, ConvTranspose2d, Linear

SIDE = 28
STRIDE = 2


def sides(layers: int, kernel: int) -> list[int]:
    """The image side before and after each strided convolution: [28, 14, 7, ...]."""
    out = [SIDE]
    for _ in range(layers):
        out.append((out[-1] + 2 * (kernel // 2) - kernel) // STRIDE + 1)
    return out


def feature_maps(channels: list[int], kernel: int) -> list[Layer]:
    """The encoder's feature map after each convolution, as the picture labels them."""
    side = sides(len(channels), kernel)[1:]
    return [
        Layer("encoder", c * s * s, f"{c}×{s}×{s}") for c, s in zip(channels, side, strict=True)
    ]


class ConvEncoder(nn.Module):
    """`channels` strided convolutions with `activation` after each, then a linear map of
    the last feature map to the code."""

    def __init__(self, members: int, channels: list[int], kernel: int, code_width: int,
                 activation: str):  # fmt: skip
        super().__init__()
        self.convs = nn.ModuleList(
            Conv2d(members, pair, kernel, STRIDE, padding=kernel // 2)
            for pair in pairwise([1, *channels])
        )
        self.activation = ACTIVATIONS[activation]()
        self.maps = feature_maps(channels, kernel)
        self.to_code = Linear(members, self.maps[-1].units, code_width)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x (S, B, 784) -> the code (S, B, code_width) and each feature map (S, B, C, H, W)."""
        x = x.view(*x.shape[:2], 1, SIDE, SIDE)
        hidden = []
        for conv in self.convs:
            x = self.activation(conv(x))
            hidden.append(x)
        return self.to_code(x.flatten(2)), hidden

    def layers(self) -> list[Layer]:
        return self.maps


class ConvDecoder(nn.Module):
    """A linear map of the code to the encoder's last feature map, then transposed
    convolutions that restore each earlier side exactly, ending in one channel through
    `output`."""

    def __init__(self, members: int, latent_dim: int, channels: list[int], kernel: int,
                 output: nn.Module):  # fmt: skip
        super().__init__()
        side = sides(len(channels), kernel)
        self.start = (channels[-1], side[-1], side[-1])
        self.from_code = Linear(members, latent_dim, channels[-1] * side[-1] ** 2)
        padding = kernel // 2
        self.deconvs = nn.ModuleList()
        outputs = [1, *channels]
        for i in reversed(range(len(channels))):
            # The output_padding that makes the side exactly the encoder's input side.
            natural = (side[i + 1] - 1) * STRIDE - 2 * padding + kernel
            self.deconvs.append(ConvTranspose2d(
                members, (outputs[i + 1], outputs[i]), kernel, STRIDE, padding, side[i] - natural
            ))  # fmt: skip
        self.relu, self.output = nn.ReLU(), output
        self.maps = [m._replace(role="decoder") for m in reversed(feature_maps(channels, kernel))]

    def forward(self, code: Tensor) -> Tensor:
        """code (S, B, latent_dim) -> images (S, B, 784)."""
        x = self.relu(self.from_code(code)).view(*code.shape[:2], *self.start)
        *hidden, last = self.deconvs
        for deconv in hidden:
            x = self.relu(deconv(x))
        return self.output(last(x)).view(*code.shape[:2], INPUT_DIM)

    def layers(self) -> list[Layer]:
        """The encoder's feature maps in reverse: the mirror image."""
        return self.maps


@register_architecture("conv")
def build_conv(config, code_width: int, activation: str, members: int) -> tuple[nn.Module, ...]:
    encoder = ConvEncoder(members, config.channels, config.kernel_size, code_width, activation)
    decoder = ConvDecoder(members, config.latent_dim, config.channels, config.kernel_size,
                          output_layer(config.loss))  # fmt: skip
    return encoder, decoder
