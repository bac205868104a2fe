"""Where a variant's generated codes come from: pure functions of its training codes.

- `prior`: z ~ N(0, I), the prior a VAE was trained towards (params allow it for kind vae only);
- `gmm`: a Gaussian mixture fitted on the training codes, then sampled: the ex-post density
  estimate of Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders"), which
  makes any autoencoder, and PCA, a generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aelab.analysis.scores import mixture
from aelab.core.params import GenerateParams


def prior(train: np.ndarray, count: int, params: GenerateParams, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, train.shape[1]))


def gmm(train: np.ndarray, count: int, params: GenerateParams, seed: int) -> np.ndarray:
    fitted = mixture(train.astype(np.float64), min(params.gmm.components, len(train)),
                     params.gmm.covariance, seed)  # fmt: skip
    fitted.random_state = seed  # sample() draws from it: the same codes for the same seed
    codes, _ = fitted.sample(count)
    # scikit-learn returns the codes grouped by component: shuffled, any n of them are a sample
    return np.random.default_rng(seed).permutation(codes)


SAMPLERS: dict[str, Callable[[np.ndarray, int, GenerateParams, int], np.ndarray]] = {
    "prior": prior,
    "gmm": gmm,
}


def draw(
    sampler: str, train: np.ndarray, count: int, params: GenerateParams, seed: int
) -> np.ndarray:
    """`count` codes (count, d) float32 from `sampler`, given the (N, d) training codes."""
    return SAMPLERS[sampler](train, count, params, seed).astype(np.float32)
