"""One training loop, one rule for every network variant.

Adam, seeded, the validation loss every epoch. The learning rate halves when the
validation loss has not improved for `lr_patience` epochs (ReduceLROnPlateau); training
stops when it has not improved for `patience` epochs, or at `max_epochs`, and the best
epoch's weights are restored. docs/tuning.md says why this schedule.

A variant's seeds train together: one model holds a network per seed, its members
(aelab.models.layers), and each step takes a batch per member through all of them at once.
Everything else is each member's own: its initial weights, data order, noise, Adam and
schedule, early stop and best weights. So a seed's network is the one it would be alone
(tests/test_training.py). A member that stops leaves the group and the others go on.

The whole training set is one (N, 784) float tensor on the device and batches are taken
by index: no DataLoader, no per-sample Python work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from aelab.core.errors import AelabError
from aelab.core.params import TrainParams, VariantConfig
from aelab.models import LatentModel, assemble, build_group, build_model, registry, select
from aelab.training.numerics import cpu_numerics

EVAL_BATCH = 4096  # rows per forward pass when only evaluating
# A validation loss is better than the best so far when below best * (1 - IMPROVEMENT):
# one definition for the schedule (ReduceLROnPlateau's default threshold) and the stop.
IMPROVEMENT = 1e-3
LR_FACTOR = 0.5  # the learning rate's cut on a plateau
# What stopped the training; PCA is fitted in one step.
PATIENCE, MAX_EPOCHS, CLOSED_FORM = "patience", "max_epochs", "closed_form"

History = list[dict[str, float]]


@dataclass
class Trained:
    """A seed's network after training: the best epoch's weights, and a row per epoch."""

    seed: int
    model: LatentModel
    history: History


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
    config: VariantConfig,
    seeds: list[int],
    train: Tensor,
    val: Tensor,
    name: str,
    after_epoch: Callable[[list[dict[str, float]]], None] | None = None,
    position: int = 0,
) -> list[Trained]:
    """A network of `config` per seed, trained by the rule, in the seeds' order, on one
    thread with subnormals flushed (aelab.training.numerics). `after_epoch` sees the rows
    of the seeds still training as each epoch ends (the tuner prunes a trial from them);
    `position`: the progress bar's line, when groups train side by side."""
    with cpu_numerics():
        if registry()[config.kind].closed_form:
            return [_fit_closed_form(config, seed, train, val) for seed in seeds]
        return _Group(config, seeds, train.device, name, position).fit(train, val, after_epoch)


def _fit_closed_form(config: VariantConfig, seed: int, train: Tensor, val: Tensor) -> Trained:
    seed_everything(seed)
    model = build_model(config).to(train.device)
    model.fit(train)
    row = {"epoch": 1, **mean_losses(model, train, "train")[0], **mean_losses(model, val, "val")[0]}
    return Trained(seed, model, [row])


@dataclass
class _Member:
    """One seed's network while its group trains: everything it owns but its weights."""

    seed: int
    shuffle: torch.Generator  # its data order
    noise: torch.Generator  # its corruption and sampling
    history: History = field(default_factory=list)
    best: float = math.inf
    best_state: dict[str, Tensor] | None = None
    optimizer: torch.optim.Adam | None = None
    schedule: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None

    @classmethod
    def of(cls, seed: int, device: torch.device) -> _Member:
        # Two independent streams from one seed: the order and the noise never correlate.
        order, noise = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
        return cls(seed, torch.Generator().manual_seed(order),
                   torch.Generator(device=device).manual_seed(noise))  # fmt: skip

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


class _Group:
    """The members still training, as one model (members first) and their own state."""

    def __init__(self, config: TrainParams, seeds: list[int], device: torch.device, name: str,
                 position: int):  # fmt: skip
        self.config, self.name = config, name
        self.members = [_Member.of(seed, device) for seed in seeds]
        self.model = build_group(config, seeds).to(device)
        self._attach()
        self.done: list[_Member] = []
        self.bar = tqdm(desc=f"train {name} " + _seed_range(seeds), unit="epoch",
                        bar_format="{desc}{postfix} [{elapsed}]", postfix="epoch 0", mininterval=1,
                        position=position)  # fmt: skip

    def _attach(self) -> None:
        """Each member's Adam and schedule over its slices of the group's parameters (its
        state carried over when the group shrinks), and the noise streams."""
        params = list(self.model.parameters())
        for p in params:  # kept, zeroed in place: each slice's .grad below is a view of it
            p.grad = torch.zeros_like(p)
        for i, member in enumerate(self.members):
            slices = [p.detach()[i] for p in params]
            for piece, p in zip(slices, params, strict=True):
                piece.grad = p.grad[i]
            optimizer = torch.optim.Adam(slices, lr=self.config.lr, fused=True)
            # Its `patience` counts the bad epochs it ignores: it cuts after lr_patience of them.
            schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=LR_FACTOR, patience=self.config.lr_patience - 1,
                threshold=IMPROVEMENT,
            )  # fmt: skip
            if member.optimizer is not None:
                optimizer.load_state_dict(member.optimizer.state_dict())
                schedule.load_state_dict(member.schedule.state_dict())
            member.optimizer, member.schedule = optimizer, schedule
        self.model.generators = [member.noise for member in self.members]

    def fit(self, train: Tensor, val: Tensor, after_epoch) -> list[Trained]:
        seeds = [member.seed for member in self.members]
        for epoch in range(1, self.config.max_epochs + 1):
            rows = self._epoch(epoch, train, val)
            for i, (member, row) in enumerate(zip(self.members, rows, strict=True)):
                self._record(i, member, row)
            self._show(epoch)
            if after_epoch is not None:
                after_epoch(rows)
            self._leave_stopped()
            if not self.members:
                break
        self.bar.close()
        self.done += self.members
        by_seed = {member.seed: member for member in self.done}
        return [self._trained(by_seed[seed]) for seed in seeds]

    def _epoch(self, epoch: int, train: Tensor, val: Tensor) -> list[dict[str, float]]:
        """Each member's row of the epoch: its training and validation losses, its rate."""
        rates = [member.lr for member in self.members]  # before the epoch's schedule step
        optimizers, orders = zip(*((m.optimizer, m.shuffle) for m in self.members), strict=True)
        trained = train_epoch(self.model, optimizers, train, self.config.batch_size, orders)
        held_out = mean_losses(self.model, val, "val")
        return [{"epoch": epoch, **row, **val_row, "lr": lr}
                for row, val_row, lr in zip(trained, held_out, rates, strict=True)]  # fmt: skip

    def _record(self, i: int, member: _Member, row: dict[str, float]) -> None:
        if not math.isfinite(row["train_loss"]):
            raise AelabError(
                f"variant {self.name} (seed {member.seed}): the training loss became "
                f"{row['train_loss']} in epoch {row['epoch']}; lower the learning rate "
                f"(lr = {self.config.lr}) in variants.{self.name} or train"
            )
        member.history.append(row)
        if is_better(row["val_loss"], member.best):
            member.best = row["val_loss"]
            member.best_state = {key: value[i : i + 1].clone()
                                 for key, value in self.model.state_dict().items()}  # fmt: skip
        if stopped_by(member.history, self.config) is None:
            member.schedule.step(row["val_loss"])

    def _show(self, epoch: int) -> None:
        """The epoch, and the member furthest from stopping: its best epoch and patience."""
        longest = max(self.members, key=lambda m: best_epoch(m.history))
        best = best_epoch(longest.history)
        self.bar.set_postfix_str(
            f"epoch {epoch} · best {best} · patience {epoch - best}/{self.config.patience} · "
            f"{len(self.members)} training", refresh=False,
        )  # fmt: skip
        self.bar.update(0)

    def _leave_stopped(self) -> None:
        """Members whose training stopped leave the group: the rest train on without them."""
        going = [i for i, member in enumerate(self.members)
                 if stopped_by(member.history, self.config) is None]  # fmt: skip
        if len(going) == len(self.members):
            return
        self.done += [m for i, m in enumerate(self.members) if i not in going]
        self.members = [self.members[i] for i in going]
        if going:
            self.model = select(self.model, going)
            self._attach()

    def _trained(self, member: _Member) -> Trained:
        model = assemble(self.config, member.best_state) if member.best_state else None
        if model is None:
            raise AelabError(f"variant {self.name} (seed {member.seed}): no epoch finished")
        return Trained(member.seed, model.eval(), member.history)


def _seed_range(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}"


def is_better(loss: float, best: float) -> bool:
    return loss < best * (1 - IMPROVEMENT) if math.isfinite(best) else math.isfinite(loss)


def best_epoch(history: History) -> int:
    """The epoch whose weights training keeps: the last that was better than all before."""
    best, epoch = math.inf, int(history[0]["epoch"])
    for row in history:
        if is_better(row["val_loss"], best):
            best, epoch = row["val_loss"], int(row["epoch"])
    return epoch


def stopped_by(history: History, config: TrainParams) -> str | None:
    """`patience` once the validation loss has not improved for `patience` epochs,
    `max_epochs` when the cap came first, None while training may go on."""
    if len(history) - best_epoch(history) >= config.patience:
        return PATIENCE
    return MAX_EPOCHS if len(history) >= config.max_epochs else None


def training_report(
    model: LatentModel, history: History, config: VariantConfig
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
    optimizers: list[torch.optim.Optimizer],
    data: Tensor,
    batch_size: int,
    shuffles: list[torch.Generator],
) -> list[dict[str, float]]:
    """One pass over `data` for every member, each in its own seeded order and with its own
    optimizer; each member's mean of each loss part."""
    model.train()
    orders = torch.stack([torch.randperm(len(data), generator=g) for g in shuffles])
    orders = orders.to(data.device)  # (S, N)
    parts: list[Tensor] = []  # per batch: (S, 1 + parts), kept on the device: no sync
    for start in range(0, len(data), batch_size):
        chosen = orders[:, start : start + batch_size]  # (S, B)
        batch = data.index_select(0, chosen.flatten()).view(*chosen.shape, -1)  # (S, B, 784)
        model.zero_grad(set_to_none=False)
        output = model(batch)
        output.loss.sum().backward()  # each member's gradient is its own loss's
        for optimizer in optimizers:
            optimizer.step()
        with torch.no_grad():
            parts.append(torch.stack([output.loss, *output.losses.values()], dim=1))
    # Summed in Python, member by member: a tensor's sum over batches would be reduced in
    # an order that depends on how many members lie beside it.
    sizes = [min(batch_size, len(data) - start) for start in range(0, len(data), batch_size)]
    per_batch = torch.stack(parts).tolist()  # (batches, S, 1 + parts)
    keys = ["train_loss", *(f"train_{part}" for part in output.losses)]
    return [{key: math.fsum(size * batch[member][k]
                            for size, batch in zip(sizes, per_batch, strict=True)) / len(data)
             for k, key in enumerate(keys)}
            for member in range(len(shuffles))]  # fmt: skip


@torch.no_grad()
def mean_losses(model: LatentModel, data: Tensor, prefix: str) -> list[dict[str, float]]:
    """For each member, every loss part, their sum, and the per-pixel MSE (comparable across
    variants whatever their loss) over `data` in eval mode: no noise, the VAE decodes its
    mean."""
    model.eval()
    totals: dict[str, Tensor] = {}
    for start in range(0, len(data), EVAL_BATCH):
        batch = data[start : start + EVAL_BATCH].expand(model.members, -1, -1)  # (S, B, 784)
        output = model(batch)
        mse = (output.reconstruction - batch).pow(2).flatten(1).mean(dim=1)
        for part, value in {"loss": output.loss, **output.losses, "mse": mse}.items():
            totals[part] = totals.get(part, 0.0) + value * len(batch[0])
    means = {part: (total / len(data)).tolist() for part, total in totals.items()}
    return [{f"{prefix}_{part}": means[part][i] for part in means} for i in range(model.members)]
