"""Digits a trained variant generates: codes (from a sampler, or along straight lines
between two test digits' codes) decoded and read by the digit classifier, its features
and class probabilities, ready for aelab.analysis.generation."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aelab.models import LatentModel
from aelab.training.classifier import DigitClassifier, classify
from aelab.training.numerics import cpu_numerics

BATCH = 4096
SHOWN = 64  # samples per sampler kept for the pictures (an 8 x 8 grid)
SHOWN_PAIRS = 8  # interpolation paths kept for the pictures


def interpolation_pairs(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` seeded pairs (count, 2) of indices into `labels`, of different digits when
    there are two or more (otherwise of different images)."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(labels), (count, 2))
    distinct = len(np.unique(labels)) > 1
    while True:
        same = (
            labels[pairs[:, 0]] == labels[pairs[:, 1]] if distinct else pairs[:, 0] == pairs[:, 1]
        )
        if not same.any() or len(labels) < 2:
            return pairs
        pairs[same, 1] = rng.integers(0, len(labels), same.sum())


@cpu_numerics()
@torch.no_grad()
def decode(model: LatentModel, codes: Tensor) -> Tensor:
    """Images (N, 784) of codes, kept in [0, 1] (PCA's may leave it)."""
    model.eval()
    return torch.cat([model.decode(codes[i : i + BATCH]).clamp(0, 1)
                      for i in range(0, len(codes), BATCH)])  # fmt: skip


def read_samples(
    model: LatentModel, classifier: DigitClassifier, codes: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """For each sampler's codes, the decoded digits' classifier features and probabilities,
    and the first SHOWN digits."""
    device = next(classifier.parameters()).device
    arrays = {}
    for sampler, drawn in codes.items():
        images = decode(model, torch.from_numpy(drawn).to(device))
        read = classify(classifier, images)
        arrays |= {f"{sampler}_features": read["features"],
                   f"{sampler}_probabilities": read["probabilities"],
                   f"{sampler}_images": images[:SHOWN].cpu().numpy()}  # fmt: skip
    return arrays


@cpu_numerics()
@torch.no_grad()
def interpolations(
    model: LatentModel, classifier: DigitClassifier, ends: Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """The straight lines between the codes of the image pairs `ends` (P, 2, 784), decoded
    at `steps` points (P, steps, 784), and their midpoints' classifier features."""
    model.eval()
    first, last = (model.encode(ends[:, i]) for i in (0, 1))  # (P, d) each
    t = torch.linspace(0, 1, steps, device=ends.device)[None, :, None]
    lines = (1 - t) * first[:, None] + t * last[:, None]  # (P, steps, d)
    paths = decode(model, lines.flatten(0, 1)).view(len(ends), steps, ends.shape[-1])
    midpoints = classify(classifier, decode(model, (first + last) / 2))["features"]
    return midpoints, paths.cpu().numpy()
