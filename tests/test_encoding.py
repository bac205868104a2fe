"""aelab.training.encoding: codes and reconstruction errors of whole datasets, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from test_models import config, digits_like

from aelab.models import build_model
from aelab.training.encoding import extract, reconstruct


def test_extract_gives_one_code_and_one_error_per_digit():
    model = build_model(config("vae")).train()  # extract switches to eval mode itself
    features = extract(model, digits_like(10))
    assert features["latent"].shape == (10, 4) and features["latent"].dtype == np.float32
    assert features["error"].shape == (10,) and (features["error"] >= 0).all()
    again = extract(model, digits_like(10))  # eval mode: the VAE's mean, no sampling
    np.testing.assert_array_equal(features["latent"], again["latent"])


def test_errors_are_the_mean_squared_reconstruction_error():
    model = build_model(config("ae"))
    x = digits_like(6)
    errors = extract(model, x)["error"]
    expected = ((reconstruct(model, x) - x.numpy()) ** 2).mean(axis=1)
    np.testing.assert_allclose(errors, expected, rtol=1e-6)


def test_reconstruct_never_adds_training_noise():
    model = build_model(config("dae", noise_level=1.0)).train()
    x = digits_like(4)
    torch.manual_seed(1)
    first = reconstruct(model, x)
    torch.manual_seed(2)
    np.testing.assert_array_equal(first, reconstruct(model, x))
