"""Layers of S independent networks, the members of a group, one per seed, trained in one
step. Every parameter has the members first: member s's weights are `parameter[s]`, and
every activation is (S, B, ...), one batch per member.

Why: a variant's networks are small, and one batched matrix product (torch.baddbmm) over
all members costs little more than one member's, where S separate models pay PyTorch's
per-operation overhead S times (docs/performance.md). A member's arithmetic never mixes
with another's, so its result is the same whatever the group: alone, beside others, in any
order (tests/test_training.py). Convolutions run one call per member: a grouped
convolution (groups=S) was slower on the CPU and its results depended on S.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _uniform(members: int, shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    """PyTorch's default initialisation of a layer (uniform in ±1/sqrt(fan_in)), per member."""
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(members, *shape).uniform_(-bound, bound))


class Linear(nn.Module):
    """x (S, B, in) -> x @ weight + bias, (S, B, out): one torch.baddbmm for all members."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform(members, (in_features, out_features), in_features)
        self.bias = _uniform(members, (1, out_features), in_features)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class Conv2d(nn.Module):
    """x (S, B, in, H, W) -> (S, B, out, H', W'), each member's own convolution."""

    def __init__(self, members: int, channels: tuple[int, int], kernel: int, stride: int,
                 padding: int):  # fmt: skip
        super().__init__()
        c_in, c_out = channels
        self.stride, self.padding = stride, padding
        self.weight = _uniform(members, (c_out, c_in, kernel, kernel), c_in * kernel**2)
        self.bias = _uniform(members, (c_out,), c_in * kernel**2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([
            F.conv2d(member, weight, bias, self.stride, self.padding)
            for member, weight, bias in zip(x, self.weight, self.bias, strict=True)
        ])  # fmt: skip


class ConvTranspose2d(nn.Module):
    """x (S, B, in, H, W) -> (S, B, out, H', W'), each member's own transposed convolution."""

    def __init__(self, members: int, channels: tuple[int, int], kernel: int, stride: int,
                 padding: int, output_padding: int):  # fmt: skip
        super().__init__()
        c_in, c_out = channels
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        # PyTorch's fan-in for a transposed convolution: its weight's second dimension.
        self.weight = _uniform(members, (c_in, c_out, kernel, kernel), c_out * kernel**2)
        self.bias = _uniform(members, (c_out,), c_out * kernel**2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([
            F.conv_transpose2d(member, weight, bias, self.stride, self.padding,
                               self.output_padding)
            for member, weight, bias in zip(x, self.weight, self.bias, strict=True)
        ])  # fmt: skip
