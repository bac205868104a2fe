"""Dense stacks differentiated by hand: the same numbers as autograd, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aelab.models import dense

ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, None: lambda x: x}


def stack(widths: list[int], activations: list[str | None]) -> dense.Stack:
    torch.manual_seed(0)
    layers = [nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False)]
    return list(zip(layers, activations, strict=True))


def by_autograd(layers: dense.Stack, x: torch.Tensor, weights: list[torch.Tensor]):
    """Each layer's output through nn.functional, and the loss sum_k <output_k, weight_k>."""
    outputs, loss = [], 0
    for (layer, activation), weight in zip(layers, weights, strict=True):
        x = ACTIVATIONS[activation](nn.functional.linear(x, layer.weight, layer.bias))
        outputs.append(x)
        loss = loss + (x * weight).sum() if weight is not None else loss
    return outputs, loss


@pytest.mark.parametrize(
    "activations", [["relu", None], ["sigmoid", "relu", "sigmoid"], [None, "relu", "relu"]]
)
def test_gradients_equal_autograds(activations):
    widths = [20, 12, 7, 5][: len(activations) + 1]
    layers = stack(widths, activations)
    x = torch.rand(9, widths[0]) - 0.3
    # Gradients arrive at the last output and at one hidden output, as a penalty's would.
    weights = [torch.randn(9, w) if k in (0, len(activations) - 1) else None
               for k, w in enumerate(widths[1:])]  # fmt: skip
    x_auto = x.clone().requires_grad_()
    expected_outputs, loss = by_autograd(layers, x_auto, weights)
    loss.backward()
    expected = {id(p): p.grad for layer, _ in layers for p in layer.parameters()}
    for layer, _ in layers:
        layer.zero_grad(set_to_none=True)

    outputs = dense.forward(layers, x)
    x_grad = dense.backward(layers, x, outputs, weights)

    for got, want in zip(outputs, expected_outputs, strict=True):
        assert torch.equal(got, want.detach())
    assert torch.equal(x_grad, x_auto.grad)
    for layer, _ in layers:
        for p in layer.parameters():
            assert torch.equal(p.grad, expected[id(p)])


def test_gradients_add_to_what_is_already_there_and_the_input_gradient_is_optional():
    layers = stack([6, 4, 3], ["relu", None])
    x = torch.rand(5, 6)
    outputs = dense.forward(layers, x)
    grads = [None, torch.ones(5, 3)]
    assert dense.backward(layers, x, outputs, grads, input_grad=False) is None
    once = [p.grad.clone() for layer, _ in layers for p in layer.parameters()]
    dense.backward(layers, x, outputs, grads, input_grad=False)
    twice = [p.grad for layer, _ in layers for p in layer.parameters()]
    for a, b in zip(once, twice, strict=True):
        assert torch.equal(b, 2 * a)


def test_no_gradient_from_above_leaves_the_parameters_alone():
    layers = stack([6, 4, 3], ["relu", None])
    x = torch.rand(5, 6)
    x_grad = dense.backward(layers, x, dense.forward(layers, x), [None, None])
    assert torch.equal(x_grad, torch.zeros_like(x))
    assert all(p.grad is None for layer, _ in layers for p in layer.parameters())
