"""PCA with the same latent size: the classical baseline beside every network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aelab.core.errors import AelabError
from aelab.core.params import PCAConfig
from aelab.models.architectures import Layer
from aelab.models.base import INPUT_DIM, LatentModel, Output, register


@register("pca")
class PCABaseline(LatentModel):
    """x -> (x - mean) @ components^T -> latent @ components + mean.

    Fitted with scikit-learn's exact SVD; the result lives in buffers, so it saves and
    loads as a plain state dict like every network.
    """

    closed_form = True

    def __init__(self, config: PCAConfig, members: int = 1):
        super().__init__()
        if members != 1:
            raise ValueError("PCA is fitted in closed form, one model at a time")
        self.config = config
        self.register_buffer("mean", torch.zeros(INPUT_DIM))
        self.register_buffer("components", torch.zeros(config.latent_dim, INPUT_DIM))

    def fit(self, x: Tensor) -> None:
        from sklearn.decomposition import PCA

        if self.config.latent_dim > len(x):
            raise AelabError(
                f"pca: latent_dim = {self.config.latent_dim} is more than the {len(x)} training "
                f"digits; PCA finds at most that many components"
            )
        pca = PCA(n_components=self.config.latent_dim, svd_solver="full").fit(x.cpu().numpy())
        self.mean.copy_(torch.from_numpy(pca.mean_))
        self.components.copy_(torch.from_numpy(pca.components_))

    def forward(self, x: Tensor) -> Output:
        """x (1, B, 784): the interface of every model (aelab.models.base), one member."""
        latent = self.encode(x)
        reconstruction = latent @ self.components + self.mean
        error = F.mse_loss(reconstruction, x, reduction="none").flatten(1).mean(dim=1)
        return Output(reconstruction, latent, {"reconstruction": error})

    def architecture(self) -> list[Layer]:
        return [Layer.of("input", INPUT_DIM), Layer.of("latent", len(self.components)),
                Layer.of("output", INPUT_DIM)]  # fmt: skip

    def encode(self, x: Tensor) -> Tensor:
        return (x - self.mean) @ self.components.T

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def decode(self, latent: Tensor) -> Tensor:
        return latent @ self.components + self.mean
