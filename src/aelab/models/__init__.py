"""Autoencoder variants behind one interface, looked up by their params `kind`."""

# Importing registers the architectures and the objectives.
from aelab.models import conv, mlp, pca, variants  # noqa: F401
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
