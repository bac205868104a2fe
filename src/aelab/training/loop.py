"""One training loop, one rule for every network variant.

Adam, seeded, the validation loss every epoch. The learning rate halves when the
validation loss has not improved for `lr_patience` epochs (ReduceLROnPlateau); training
stops when it has not improved for `patience` epochs, or at `max_epochs`, and the best
epoch's weights are restored. docs/tuning.md says why this schedule.

The whole training set is one (N, 784) float tensor on the device and batches are taken
by index: no DataLoader, no per-sample Python work.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from aelab.core.errors import AelabError
from aelab.core.params import TrainParams, VariantConfig
from aelab.models import LatentModel

EVAL_BATCH = 4096  # rows per forward pass when only evaluating
# A validation loss is better than the best so far when below best * (1 - IMPROVEMENT):
# one definition for the schedule (ReduceLROnPlateau's default threshold) and the stop.
IMPROVEMENT = 1e-3
LR_FACTOR = 0.5  # the learning rate's cut on a plateau
# What stopped the training; PCA is fitted in one step.
PATIENCE, MAX_EPOCHS, CLOSED_FORM = "patience", "max_epochs", "closed_form"


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise AelabError(
            "train.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
        )
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def seed_everything(seed: int) -> None:
    """Same seed, same weights: bit for bit on CPU, whose kernels are deterministic (the
    tests check it). torch.use_deterministic_algorithms is left alone: it only matters on
    CUDA and costs two seconds of imports in every stage."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def as_inputs(images: np.ndarray, device: torch.device) -> Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1] on `device`, converted once."""
    return torch.from_numpy(images).to(device).reshape(len(images), -1).float().div_(255)


def fit(
    model: LatentModel,
    train: Tensor,
    val: Tensor,
    config: VariantConfig,
    seed: int,
    name: str,
    after_epoch: Callable[[dict[str, float]], None] | None = None,
    position: int = 0,
) -> list[dict[str, float]]:
    """Train `model` in place; return one row of losses per epoch. `after_epoch` sees each
    row as it is made (the tuner prunes a trial from it); `position`: the progress bar's
    line, when seeds train side by side."""
    if model.closed_form:
        model.fit(train)
        return [
            {"epoch": 1, **mean_losses(model, train, "train"), **mean_losses(model, val, "val")}
        ]
    return _fit_by_gradient(model, train, val, config, seed, name, after_epoch, position)


def _fit_by_gradient(
    model: LatentModel,
    train: Tensor,
    val: Tensor,
    config: TrainParams,
    seed: int,
    name: str,
    after_epoch: Callable[[dict[str, float]], None] | None,
    position: int,
) -> list[dict[str, float]]:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    # Its `patience` counts the bad epochs it ignores: it cuts after lr_patience of them.
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=LR_FACTOR, patience=config.lr_patience - 1, threshold=IMPROVEMENT
    )
    shuffle = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best, best_state = math.inf, None
    epochs = tqdm(range(1, config.max_epochs + 1), desc=f"train {name} seed {seed}",
                  unit="epoch", mininterval=1, position=position)  # fmt: skip
    for epoch in epochs:
        lr = optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch, **train_epoch(model, optimizer, train, config.batch_size, shuffle)}
        row |= mean_losses(model, val, "val") | {"lr": lr}
        if not math.isfinite(row["train_loss"]):
            raise AelabError(
                f"variant {name} (seed {seed}): the training loss became {row['train_loss']} in "
                f"epoch {epoch}; "
                f"lower the learning rate (lr = {config.lr}) in variants.{name} or train"
            )
        history.append(row)
        epochs.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}",
                           lr=f"{lr:.2g}", refresh=False)  # fmt: skip
        if after_epoch is not None:
            after_epoch(row)
        if is_better(row["val_loss"], best):
            best, best_state = row["val_loss"], copy.deepcopy(model.state_dict())
        if stopped_by(history, config) == PATIENCE:
            break
        schedule.step(row["val_loss"])
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def is_better(loss: float, best: float) -> bool:
    return loss < best * (1 - IMPROVEMENT) if math.isfinite(best) else math.isfinite(loss)


def best_epoch(history: list[dict[str, float]]) -> int:
    """The epoch whose weights training keeps: the last that was better than all before."""
    best, epoch = math.inf, int(history[0]["epoch"])
    for row in history:
        if is_better(row["val_loss"], best):
            best, epoch = row["val_loss"], int(row["epoch"])
    return epoch


def stopped_by(history: list[dict[str, float]], config: TrainParams) -> str | None:
    """`patience` once the validation loss has not improved for `patience` epochs,
    `max_epochs` when the cap came first, None while training may go on."""
    if len(history) - best_epoch(history) >= config.patience:
        return PATIENCE
    return MAX_EPOCHS if len(history) >= config.max_epochs else None


def training_report(
    model: LatentModel, history: list[dict[str, float]], config: VariantConfig
) -> dict[str, float | int | str | bool]:
    """What train@<variant> reports to DVC: how training stopped, epochs run, the best and
    the final losses, and the number of stored parameters. Deterministic, unlike the
    training time. A closed-form model (PCA) is converged by construction."""
    best = best_epoch(history)
    last = history[-1]
    stop = CLOSED_FORM if model.closed_form else stopped_by(history, config)
    return {
        "stopped_by": stop,
        "converged": stop != MAX_EPOCHS,
        "epochs": len(history),
        "best_epoch": best,
        "best_val_loss": history[best - int(history[0]["epoch"])]["val_loss"],
        "final_train_loss": last["train_loss"],
        "final_val_loss": last["val_loss"],
        "final_val_mse": last["val_mse"],
        "parameters": sum(tensor.numel() for tensor in model.state_dict().values()),
    }


def train_epoch(
    model: LatentModel,
    optimizer: torch.optim.Optimizer,
    data: Tensor,
    batch_size: int,
    shuffle: torch.Generator,
) -> dict[str, float]:
    """One pass over `data` in a seeded random order; the mean of each loss part."""
    model.train()
    order = torch.randperm(len(data), generator=shuffle).to(data.device)
    parts: list[Tensor] = []  # per batch: (loss, *named parts), kept on the device: no sync
    for start in range(0, len(data), batch_size):
        batch = data.index_select(0, order[start : start + batch_size])  # faster than data[idx]
        optimizer.zero_grad(set_to_none=True)
        output = model(batch)
        output.loss.backward()
        optimizer.step()
        with torch.no_grad():
            parts.append(torch.stack([output.loss, *output.losses.values()]))
    sizes = torch.full((len(parts), 1), float(batch_size), device=data.device)
    sizes[-1] = len(data) - batch_size * (len(parts) - 1)  # the last batch may be smaller
    means = ((torch.stack(parts) * sizes).sum(dim=0) / len(data)).tolist()
    return dict(zip(["train_loss", *(f"train_{p}" for p in output.losses)], means, strict=True))


@torch.no_grad()
def mean_losses(model: LatentModel, data: Tensor, prefix: str) -> dict[str, float]:
    """Every loss part, their sum, and the per-pixel MSE (comparable across variants whatever
    their loss) over `data` in eval mode: no noise, the VAE decodes its mean."""
    model.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(data), EVAL_BATCH):
        batch = data[start : start + EVAL_BATCH]
        output = model(batch)
        mse = (output.reconstruction - batch).pow(2).mean()
        for part, value in {"loss": output.loss, **output.losses, "mse": mse}.items():
            totals[part] = totals.get(part, 0.0) + value.item() * len(batch)
    return {f"{prefix}_{part}": total / len(data) for part, total in totals.items()}
