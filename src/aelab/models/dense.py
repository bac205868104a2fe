"""Stacks of dense layers differentiated by hand, for the training step.

A step of the article's 784-128-32 autoencoder is about 1 ms of matrix products on this
2-core CPU. Under autograd it costs a further ~0.15 ms of bookkeeping: a graph node per
operation (linear alone is two: transpose and addmm), saved tensors, the engine, an
AccumulateGrad per parameter (measured: benchmarks/train_speed.py, docs in the README).
The backward pass of linear layers with elementwise activations is short and the same for
every variant, so it is written out here once, with the very kernels autograd would call:
the gradients are bit for bit autograd's (tests/test_models.py checks every variant).
Whatever a variant adds (noise, a probabilistic code, a penalty) stays with autograd.

A stack is a list of (nn.Linear, activation) pairs, activation "relu", "sigmoid" or None.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

Stack = list[tuple[nn.Linear, str | None]]


@torch.no_grad()
def forward(stack: Stack, x: Tensor) -> list[Tensor]:
    """Every layer's output, first to last: [(B, width_k), ...]."""
    outputs = []
    for layer, activation in stack:
        x = torch.addmm(layer.bias, x, layer.weight.t())  # what F.linear runs on a batch
        if activation == "relu":
            x.clamp_min_(0)  # in place: the backward pass needs only the output
        elif activation == "sigmoid":
            x.sigmoid_()
        outputs.append(x)
    return outputs


@torch.no_grad()
def backward(
    stack: Stack,
    x: Tensor,
    outputs: list[Tensor],
    output_grads: list[Tensor | None],
    input_grad: bool = True,
) -> Tensor | None:
    """Add d loss / d parameter to each layer's .grad; return d loss / d x if `input_grad`.

    `output_grads[k]` is the gradient arriving at layer k's output from outside the stack
    (the loss, a penalty on a hidden activation), or None. Without `input_grad` the first
    layer skips its largest product: the images need no gradient.
    """
    grad: Tensor | None = None
    for k in reversed(range(len(stack))):
        layer, activation = stack[k]
        if output_grads[k] is not None:
            grad = output_grads[k] if grad is None else grad + output_grads[k]
        if grad is None:  # nothing below this layer reaches the loss
            continue
        if activation == "relu":
            grad = torch.ops.aten.threshold_backward(grad, outputs[k], 0)
        elif activation == "sigmoid":
            grad = torch.ops.aten.sigmoid_backward(grad, outputs[k])
        layer_input = outputs[k - 1] if k else x
        accumulate(layer.weight, grad.t().mm(layer_input))  # (out, in)
        accumulate(layer.bias, grad.sum(0))
        if k > 0 or input_grad:
            grad = grad.mm(layer.weight)  # (B, in)
    if not input_grad:
        return None
    return grad if grad is not None else torch.zeros_like(x)


def accumulate(parameter: nn.Parameter, grad: Tensor) -> None:
    """As autograd does: set .grad, or add to what another term already put there."""
    if parameter.grad is None:
        parameter.grad = grad
    else:
        parameter.grad += grad
