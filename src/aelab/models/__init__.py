"""Autoencoder variants behind one interface, looked up by their params `kind`."""

# Importing registers the architectures and the objectives.
from aelab.models import conv, layers, mlp, pca, variants  # noqa: F401
from aelab.models.base import (
    INPUT_DIM,
    Autoencoder,
    Encoder,
    LatentModel,
    Output,
    assemble,
    build_group,
    build_model,
    registry,
    select,
)

__all__ = [
    "INPUT_DIM",
    "Autoencoder",
    "Encoder",
    "LatentModel",
    "Output",
    "assemble",
    "build_group",
    "build_model",
    "registry",
    "select",
]
