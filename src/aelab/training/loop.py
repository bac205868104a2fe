"""One training loop for every variant.

The whole training set is one (N, 784) float tensor on the device and batches are taken
by index: no DataLoader, no per-sample Python work. Adam; seeded; validation loss every
epoch; optional early stopping that restores the best epoch's weights.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from aelab.core.errors import AelabError
from aelab.core.params import TrainParams, VariantConfig
from aelab.models import LatentModel

EVAL_BATCH = 4096  # rows per forward pass when only evaluating


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
    model: LatentModel, train: Tensor, val: Tensor, config: VariantConfig, seed: int, name: str
) -> list[dict[str, float]]:
    """Train `model` in place; return one row of losses per epoch."""
    if model.closed_form:
        model.fit(train)
        return [
            {"epoch": 1, **mean_losses(model, train, "train"), **mean_losses(model, val, "val")}
        ]
    return _fit_by_gradient(model, train, val, config, seed, name)


def _fit_by_gradient(
    model: LatentModel, train: Tensor, val: Tensor, config: TrainParams, seed: int, name: str
) -> list[dict[str, float]]:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    shuffle = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best, best_state, stale = math.inf, None, 0
    epochs = tqdm(range(1, config.epochs + 1), desc=f"train {name} seed {seed}", unit="epoch",
                  mininterval=1)  # fmt: skip
    for epoch in epochs:
        row = {"epoch": epoch, **train_epoch(model, optimizer, train, config.batch_size, shuffle)}
        row |= mean_losses(model, val, "val")
        if not math.isfinite(row["train_loss"]):
            raise AelabError(
                f"variant {name} (seed {seed}): the training loss became {row['train_loss']} in "
                f"epoch {epoch}; "
                f"lower the learning rate (lr = {config.lr}) in variants.{name} or train"
            )
        history.append(row)
        epochs.set_postfix(
            train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}", refresh=False
        )
        if config.early_stopping_patience:
            if row["val_loss"] < best:
                best, best_state, stale = row["val_loss"], copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= config.early_stopping_patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def training_report(model: LatentModel, history: list[dict[str, float]]) -> dict[str, float]:
    """What train@<variant> reports to DVC: epochs run, the best and the final losses, and
    the number of stored parameters. Deterministic, unlike the training time."""
    best = min(history, key=lambda row: row["val_loss"])
    last = history[-1]
    return {
        "epochs": len(history),
        "best_epoch": int(best["epoch"]),
        "best_val_loss": best["val_loss"],
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
