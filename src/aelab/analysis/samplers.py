"""Where a variant's generated codes come from: pure functions of its training codes, each
sampler one entry of `SAMPLERS`.

- `prior`: z ~ N(0, I), the prior a VAE was trained towards (kind vae only);
- `gmm`: a Gaussian mixture fitted on the training codes, then sampled: the ex-post density
  estimate of Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders"), which
  makes any autoencoder, and PCA, a generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aelab.analysis.scores import mixture
from aelab.core.params import GenerateParams, Params
from aelab.core.registry import Registry


@dataclass(frozen=True)
class Sampler:
    """A sampler: (training codes (N, d), count, params, seed) -> count codes (count, d)."""

    draw: Callable[[np.ndarray, int, GenerateParams, int], np.ndarray]
    # The variant kinds it can draw from (those whose objective defines what it draws);
    # None: any variant, PCA included.
    kinds: tuple[str, ...] | None = None

    def fits(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


SAMPLERS: Registry[Sampler] = Registry("sampler")


def prior(train: np.ndarray, count: int, params: GenerateParams, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, train.shape[1]))


def gmm(train: np.ndarray, count: int, params: GenerateParams, seed: int) -> np.ndarray:
    fitted = mixture(train.astype(np.float64), min(params.gmm.components, len(train)),
                     params.gmm.covariance, seed)  # fmt: skip
    fitted.random_state = seed  # sample() draws from it: the same codes for the same seed
    codes, _ = fitted.sample(count)
    # scikit-learn returns the codes grouped by component: shuffled, any n of them are a sample
    return np.random.default_rng(seed).permutation(codes)


SAMPLERS.add("prior", Sampler(prior, kinds=("vae",)))
SAMPLERS.add("gmm", Sampler(gmm))


def draw(
    sampler: str, train: np.ndarray, count: int, params: GenerateParams, seed: int
) -> np.ndarray:
    """`count` codes (count, d) float32 from `sampler`, given the (N, d) training codes."""
    return SAMPLERS[sampler].draw(train, count, params, seed).astype(np.float32)


def sampled(params: Params, name: str) -> list[str]:
    """The samplers that draw from variant `name`, in params order: those that list it,
    and those set to `all` that can draw from its kind."""
    kind = params.variants[name].kind
    return [sampler for sampler, chosen in params.generate.samplers.items()
            if name in chosen or chosen == "all" and SAMPLERS[sampler].fits(kind)]  # fmt: skip
