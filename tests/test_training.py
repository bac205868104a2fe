"""The trainer: deterministic, one stopping rule and schedule, clear stop on a diverging loss;
seeds that train together are the networks they would be alone."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROJECT_ROOT, command_env, run, set_params
from test_models import config, digits_like

from aelab.core.errors import AelabError
from aelab.training.loop import (
    as_inputs,
    best_epoch,
    fit,
    is_better,
    pick_device,
    stopped_by,
    training_report,
)
from aelab.training.numerics import cpu_numerics


def trained(kind: str = "dae", seed: int = 0, **changes):
    (one,) = trained_together(kind, [seed], **changes)
    return one.model, one.history


def trained_together(kind: str, seeds: list[int], **changes):
    return fit(config(kind, **changes), seeds, digits_like(64), digits_like(16, seed=1), kind)


def same_network(a, b) -> bool:
    weights = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    return a.history == b.history and all(torch.equal(x, y) for x, y in weights)


@pytest.mark.parametrize(("kind", "arch"), [("dae", "mlp"), ("vae", "mlp"), ("contractive", "mlp"),
                                          ("ae", "conv"), ("vae", "conv")])  # fmt: skip
def test_same_seed_gives_bit_identical_weights(kind, arch):
    first, history = trained(kind, max_epochs=3, arch=arch)
    again, history_again = trained(kind, max_epochs=3, arch=arch)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert history == history_again


def test_other_seed_gives_other_weights():
    first, _ = trained(seed=0, max_epochs=2)
    other, _ = trained(seed=1, max_epochs=2)
    assert not torch.equal(first.encoder.to_code.weight, other.encoder.to_code.weight)


@pytest.mark.parametrize(("kind", "arch"), [("dae", "mlp"), ("vae", "mlp"), ("contractive", "mlp"),
                                          ("sparse", "mlp"), ("vae", "conv")])  # fmt: skip
def test_a_seeds_network_does_not_depend_on_the_seeds_beside_it_nor_their_order(kind, arch):
    """Initial weights, data order, noise, schedule, stop and best weights are each seed's
    own: trained with others, in any order, a seed's network is the bytes it is alone."""
    rule = dict(arch=arch, max_epochs=12, lr=1e-2, lr_patience=1, patience=3)
    forward = {one.seed: one for one in trained_together(kind, [3, 4, 5], **rule)}
    backward = {one.seed: one for one in trained_together(kind, [5, 4, 3], **rule)}
    (alone,) = trained_together(kind, [4], **rule)
    assert [one.seed for one in trained_together(kind, [5, 3], **rule)] == [5, 3]
    assert all(same_network(forward[seed], backward[seed]) for seed in (3, 4, 5))
    assert same_network(forward[4], alone)


def test_seeds_that_train_together_stop_independently():
    """One seed's early stop leaves the others training, each to its own stop."""
    rule = dict(max_epochs=40, lr=1e-2, lr_patience=1, patience=3)
    together = trained_together("ae", [0, 1, 2, 3], **rule)
    epochs = [len(one.history) for one in together]
    assert len(set(epochs)) > 1, epochs  # they stopped at different epochs
    for one in together:
        assert stopped_by(one.history, one.model.config) == "patience"
        assert len(one.history) - best_epoch(one.history) == 3


def test_history_has_one_row_per_epoch_with_every_part():
    _, history = trained("vae", max_epochs=3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "train_reconstruction", "train_kl", "val_loss", "val_mse"} <= set(
        history[0]
    )
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_training_stops_after_patience_epochs_without_improvement_and_keeps_the_best():
    # 64 random training images: the validation loss soon stops improving.
    model, history = trained("ae", max_epochs=300, lr=1e-2, lr_patience=1, patience=3)
    assert len(history) < 300
    best = best_epoch(history)
    assert len(history) - best == 3  # three epochs without a better validation loss
    assert all(not is_better(row["val_loss"], history[best - 1]["val_loss"])
               for row in history[best:])  # fmt: skip
    with torch.no_grad():
        model.eval()
        val_loss = model(digits_like(16, seed=1)[None]).loss.item()
    assert val_loss == pytest.approx(history[best - 1]["val_loss"], rel=1e-5)  # the best kept
    assert training_report(model, history, model.config)["stopped_by"] == "patience"


def expected_rates(history: list[dict], lr: float, lr_patience: int) -> list[float]:
    """The rule in words: the rate halves once the validation loss has gone lr_patience
    epochs without improving; the count restarts after a cut and after an improvement."""
    rates, best, bad = [], float("inf"), 0
    for row in history:
        rates.append(lr)
        if is_better(row["val_loss"], best):
            best, bad = row["val_loss"], 0
        else:
            bad += 1
        if bad == lr_patience:
            lr, bad = lr * 0.5, 0
    return rates


def test_the_learning_rate_halves_after_lr_patience_epochs_without_improvement():
    _, history = trained("ae", max_epochs=60, lr=1e-2, lr_patience=2, patience=8)
    rates = [row["lr"] for row in history]
    assert rates == pytest.approx(expected_rates(history, 1e-2, 2))
    assert min(rates) < 1e-2  # it did cut


def test_training_with_the_schedule_is_deterministic():
    first, history = trained("ae", max_epochs=40, lr=1e-2, lr_patience=1, patience=4)
    again, history_again = trained("ae", max_epochs=40, lr=1e-2, lr_patience=1, patience=4)
    assert history == history_again
    assert len({row["lr"] for row in history}) > 1  # the schedule acted
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("losses", "max_epochs", "stop", "best"),
    [
        ([0.5, 0.4, 0.41, 0.42, 0.43], 100, "patience", 2),
        ([0.5, 0.4, 0.41, 0.42], 100, None, 2),  # may still improve
        ([0.5, 0.4, 0.3, 0.2], 4, "max_epochs", 4),  # the cap came first: not converged
        ([0.5, 0.4, 0.39999, 0.41, 0.42], 100, "patience", 2),  # below 1e-4 relative: no gain
        ([0.5, 0.4, 0.41, 0.42, 0.43], 5, "patience", 2),  # both at once: patience says it
    ],
)
def test_the_stopping_rule(losses, max_epochs, stop, best):
    history = [{"epoch": k + 1, "val_loss": loss} for k, loss in enumerate(losses)]
    rule = config("ae", max_epochs=max_epochs, lr_patience=2, patience=3)
    assert stopped_by(history, rule) == stop
    assert best_epoch(history) == best


def test_the_report_says_how_training_stopped():
    model, history = trained("ae", max_epochs=2, lr_patience=1, patience=2)
    report = training_report(model, history, model.config)
    assert report["stopped_by"] == "max_epochs" and report["converged"] is False
    assert report["epochs"] == 2 and report["best_epoch"] in (1, 2)


def test_diverging_loss_stops_with_one_line_naming_variant_epoch_and_fix():
    with pytest.raises(AelabError) as caught:
        trained("vae", max_epochs=5, lr=1.0)  # the log-variance explodes
    message = str(caught.value)
    assert re.match(r"variant vae \(seed 0\): the training loss became nan in epoch \d+; ", message)
    assert "lower the learning rate (lr = 1.0)" in message


def test_the_training_context_flushes_subnormal_floats():
    """Arithmetic on subnormals is slow on x86; where networks train they become 0."""
    tiny = torch.full((4,), 1e-39)  # below float32's smallest normal, 1.18e-38
    assert (tiny * 1.0 != 0).all()  # torch's default: subnormals kept
    threads = torch.get_num_threads()
    with cpu_numerics():
        assert torch.get_num_threads() == 1
        if torch.backends.cpu.get_cpu_capability() != "DEFAULT":  # x86 with SSE and above
            assert (tiny * 1.0 == 0).all()
            assert (torch.full((4,), 1e-39) == 0).all()
    assert (tiny * 1.0 != 0).all()  # the CPU's flag is restored: numpy needs subnormals too
    assert torch.get_num_threads() == threads


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


@pytest.mark.slow  # three stage processes
def test_seeds_trained_side_by_side_equal_seeds_trained_alone(workspace: Path):
    """train@ae with two seeds runs them in two worker processes; each seed's weights are
    the bytes a one-seed run of that seed writes."""
    set_params(workspace, train__max_epochs=3, train__seeds=2)
    train = ["python", "-m", "stages", "train", "--variant", "ae"]
    env = command_env(PROJECT_ROOT)  # the project's stages and code, in the workspace
    env["PYTHONPATH"] = f"{PROJECT_ROOT}{os.pathsep}{env['PYTHONPATH']}"
    run(train, cwd=workspace, env=env)
    together = [(workspace / f"models/ae/seed_{k}/model.pt").read_bytes() for k in (0, 1)]
    for k, seed in enumerate((42, 43)):
        set_params(workspace, seed=seed, train__seeds=1)
        run(train, cwd=workspace, env=env)
        assert (workspace / "models/ae/seed_0/model.pt").read_bytes() == together[k], seed
