"""The trainer: deterministic, early stopping, clear stop on a diverging loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models import config, digits_like

from aelab.core.errors import AelabError
from aelab.models import build_model
from aelab.training.loop import as_inputs, fit, pick_device, seed_everything


def trained(kind: str = "dae", seed: int = 0, **changes):
    seed_everything(seed)
    model = build_model(config(kind, **changes))
    history = fit(model, digits_like(64), digits_like(16, seed=1), model.config, seed, kind)
    return model, history


@pytest.mark.parametrize(("kind", "arch"), [("dae", "mlp"), ("vae", "mlp"), ("contractive", "mlp"),
                                          ("ae", "conv"), ("vae", "conv")])  # fmt: skip
def test_same_seed_gives_bit_identical_weights(kind, arch):
    first, history = trained(kind, epochs=3, arch=arch)
    again, history_again = trained(kind, epochs=3, arch=arch)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert history == history_again


def test_other_seed_gives_other_weights():
    first, _ = trained(seed=0, epochs=2)
    other, _ = trained(seed=1, epochs=2)
    assert not torch.equal(first.encoder.to_code.weight, other.encoder.to_code.weight)


def test_history_has_one_row_per_epoch_with_every_part():
    _, history = trained("vae", epochs=3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "train_reconstruction", "train_kl", "val_loss", "val_mse"} <= set(
        history[0]
    )
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_early_stopping_stops_and_keeps_the_best_epoch():
    # 64 random training images: the validation loss soon stops improving.
    model, history = trained("ae", epochs=300, lr=1e-2, early_stopping_patience=3)
    assert len(history) < 300
    best = min(row["val_loss"] for row in history)
    assert history[-1]["val_loss"] > best  # stopped after a worse epoch...
    with torch.no_grad():
        model.eval()
        val_loss = model(digits_like(16, seed=1)).loss.item()
    assert val_loss == pytest.approx(best, rel=1e-5)  # ...but kept the best weights


def test_diverging_loss_stops_with_one_line_naming_variant_epoch_and_fix():
    with pytest.raises(AelabError) as caught:
        trained("vae", epochs=5, lr=1.0)  # the log-variance explodes
    message = str(caught.value)
    assert message.startswith("variant vae (seed 0): the training loss became nan in epoch 2")
    assert "lower the learning rate (lr = 1.0)" in message


def test_device_choice(monkeypatch: pytest.MonkeyPatch):
    """auto: CUDA exactly when torch sees it (no CUDA tensor is made: CPU-only CI runs this)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(
        AelabError,
        match=r"^train\.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'$",
    ):
        pick_device("cuda")


def test_inputs_are_scaled_once_to_unit_range():
    """Each pixel / 255, whatever the brightest pixel of the batch (here 200, not 255)."""
    images = np.array([[[0, 1], [51, 200]]], dtype=np.uint8).repeat(14, 1).repeat(14, 2)
    images = np.concatenate([images, images // 2])  # a second, dimmer image
    inputs = as_inputs(images, torch.device("cpu"))
    assert inputs.shape == (2, 784) and inputs.dtype == torch.float32
    expected = torch.from_numpy(images.reshape(2, 784).astype(np.float32) / 255)
    assert torch.equal(inputs, expected)
    assert inputs[0].max().item() == pytest.approx(200 / 255)
