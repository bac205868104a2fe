"""Encode and reconstruct whole datasets with a trained variant (on one thread, subnormals
flushed: aelab.training.numerics)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aelab.models import LatentModel
from aelab.training.numerics import cpu_numerics

BATCH = 4096


@cpu_numerics()
@torch.no_grad()
def extract(model: LatentModel, inputs: Tensor) -> dict[str, np.ndarray]:
    """Latent codes (N, latent) float32 and per-sample reconstruction errors (N,) float32."""
    model.eval()
    latents, errors = [], []
    for start in range(0, len(inputs), BATCH):
        batch = inputs[start : start + BATCH]
        latents.append(model.encode(batch).cpu())
        errors.append(model.anomaly_score(batch).cpu())
    return {
        "latent": torch.cat(latents).numpy().astype(np.float32),
        "error": torch.cat(errors).numpy().astype(np.float32),
    }


@cpu_numerics()
@torch.no_grad()
def reconstruct(model: LatentModel, inputs: Tensor) -> np.ndarray:
    """Reconstructions (N, 784) float32 in eval mode."""
    model.eval()
    return torch.cat(
        [model.reconstruct(inputs[i : i + BATCH]).cpu() for i in range(0, len(inputs), BATCH)]
    ).numpy()
