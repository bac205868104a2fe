"""Autoencoder variants behind one interface, looked up by their params `kind`."""

from aelab.models import pca, variants  # noqa: F401  (importing registers the variants)
from aelab.models.base import (
    INPUT_DIM,
    Autoencoder,
    Encoder,
    LatentModel,
    Output,
    build_model,
    registry,
)

__all__ = [
    "INPUT_DIM",
    "Autoencoder",
    "Encoder",
    "LatentModel",
    "Output",
    "build_model",
    "registry",
]
