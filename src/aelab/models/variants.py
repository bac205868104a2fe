"""The variants of the article, each adding only its own term to the base autoencoder."""

from __future__ import annotations

import torch
from torch import Tensor

from aelab.models.base import INPUT_DIM, Autoencoder, register


@register("dae")
class DenoisingAutoencoder(Autoencoder):
    """Corrupts the input while training; the loss still compares with the clean input."""

    def corrupt(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        level = self.config.noise_level
        if self.config.noise == "gaussian":  # x + N(0, sigma^2), kept in [0, 1]
            return (x + level * self.normal(x)).clamp(0.0, 1.0)
        if self.config.noise == "uniform":  # x + U(-a, a), kept in [0, 1]
            return (x + level * (2 * self.uniform(x) - 1)).clamp(0.0, 1.0)
        return x * (self.uniform(x) >= level)  # masking: zero each pixel with probability p


@register("sparse")
class SparseAutoencoder(Autoencoder):
    """lambda * sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of hidden unit j
    of the encoder's last hidden layer (a conv unit: one channel at one position).

    Sigmoid hidden units keep rho_hat_j in (0, 1), where the KL divergence is defined.
    """

    hidden_activation = "sigmoid"

    def penalty(self, inputs: Tensor, hidden: list[Tensor]) -> dict[str, Tensor]:
        rho = self.config.sparsity_target
        rho_hat = hidden[-1].flatten(2).mean(dim=1).clamp(1e-6, 1 - 1e-6)  # (S, units)
        return {"sparsity": self.config.sparsity_weight * kl_bernoulli(rho, rho_hat).sum(dim=1)}


def kl_bernoulli(rho: float, rho_hat: Tensor) -> Tensor:
    """KL(rho || rho_hat) between Bernoulli distributions, elementwise."""
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


@register("contractive")
class ContractiveAutoencoder(Autoencoder):
    """lambda * ||J(x)||_F^2, J the Jacobian of the encoder x -> latent, mean over the batch.
    Dense encoders only (`arch: mlp`; params validation rejects the others)."""

    def penalty(self, inputs: Tensor, hidden: list[Tensor]) -> dict[str, Tensor]:
        weight = self.config.contractive_weight
        return {"contractive": weight * self.jacobian_norm_sq(hidden).mean(dim=1)}

    def jacobian_norm_sq(self, hidden: list[Tensor]) -> Tensor:
        """||d latent / d x||_F^2 per member and sample, in closed form: (S, B).

        With the layers' weights W_k as they multiply (x @ W_k) and D_k the activation
        derivatives, J = W_c^T D_L W_L^T ... D_1 W_1^T. Writing J = G D_1 W_1^T,
        ||J||^2 = sum_ik (G^T G)_ik d_i d_k (W_1^T W_1)_ik, which costs O(h1^2) per sample
        instead of building the (latent x 784) Jacobian.
        """
        derivatives = [self.activation_derivative(h) for h in hidden]  # (S, B, h_k) each
        first, *later = [layer.weight for layer in self.encoder.hidden_layers]  # (S, in, out)
        g = self.encoder.to_code.weight.transpose(1, 2).unsqueeze(1)  # (S, 1, latent, h_last)
        for weight, derivative in zip(reversed(later), reversed(derivatives[1:]), strict=True):
            g = (g * derivative.unsqueeze(2)) @ weight.transpose(1, 2).unsqueeze(1)
        # g: (S, 1 or B, latent, h1); q likewise (S, 1 or B, h1, h1)
        q = (g.transpose(2, 3) @ g) * (first.transpose(1, 2) @ first).unsqueeze(1)
        d = derivatives[0]  # (S, B, h1)
        # With one hidden layer q is the same for every sample: one (B, h1) x (h1, h1) product.
        dq = torch.bmm(d, q[:, 0]) if q.shape[1] == 1 else (d.unsqueeze(2) @ q).squeeze(2)
        return (dq * d).sum(dim=2)

    def activation_derivative(self, activation: Tensor) -> Tensor:
        return (activation > 0).to(activation.dtype)  # ReLU'


@register("vae")
class VariationalAutoencoder(Autoencoder):
    """Gaussian encoder q(z|x) = N(mu, sigma^2), reparameterised; KL to N(0, I) weighted by beta.

    The KL (nats per sample) is divided by the 784 pixels so that it sits on the same
    per-pixel scale as the reconstruction loss: the ELBO divided by the input size.

    Why its prior's samples are poor (docs/generation.md). Measured on the sample with the
    default params, Fréchet distances to the validation digits, 500 samples, seeds 0-2:
    z ~ N(0, I) gives 18-28 (vae) and 29-31 (conv_vae); a Gaussian with the mean and
    covariance of the encoder's aggregate posterior q(z) gives 8-12 and 12-14; q(z) itself
    (a training digit's posterior, sampled) 0.9-1.4 and 0.8-1.6, as good as the ex-post
    mixture. So the decoder is good where the encoder puts codes, and the prior puts them
    elsewhere: q(z)'s covariance has eigenvalues from 0.3 to 2.3, not 1 (half the gap),
    and its shape is not Gaussian (the rest). Not a bug: the KL is the ELBO's. Not training
    length: every seed stops by patience (~100 epochs). It is the objective: its KL pulls
    each digit's posterior towards N(0, I), not their aggregate (Hoffman and Johnson 2016,
    "ELBO surgery"), and with 1,800 digits the codes' information wins. A larger KL weight
    narrows it only partly (vae, seed 42: beta 2 gives a prior FD of 10.8 against 16.1,
    at -1.2 dB of PSNR; beta 4 gives 11.8 at -2.5 dB; a 16-d code 19.3), so beta stays the
    ELBO's 1 and the `gmm` sampler is the lab's answer.
    """

    codes_per_latent = 2

    def sample_latent(self, code: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        mu, log_var = code.chunk(2, dim=2)  # (S, B, latent) each
        latent = mu + torch.exp(0.5 * log_var) * self.normal(mu) if self.training else mu
        kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=2).mean(dim=1)  # (S,)
        return latent, {"kl": self.config.beta * kl / INPUT_DIM}
