"""A variant's seeds, trained side by side: one process per core, one thread each.

The networks are small: an epoch of the dense one on the sample is a few dozen matrix
products of a few MFLOP each, which a second thread speeds up little, while a second
process training another seed doubles the work done. Each seed trains on one intra-op
thread whatever the machine's core count, so its result does not depend on how many
seeds ran at once. The workers return weights and histories; only the stage writes files,
so a stopped stage leaves nothing behind. On CUDA the seeds take turns on the device.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from aelab.core.params import VariantConfig
from aelab.data import digits
from aelab.models import LatentModel, build_model
from aelab.training.loop import as_inputs, fit, seed_everything


@dataclass
class Trained:
    model: LatentModel
    history: list[dict[str, float]]
    seconds: float  # training alone, not loading the digits
    samples: int  # training digits seen: the set's size times the epochs


def training_digits(device: torch.device) -> tuple[Tensor, Tensor]:
    """The normal training and validation digits as model inputs; never the test digits."""
    return tuple(as_inputs(digits.load_split(part).images, device) for part in ("train", "val"))


def train_seeds(
    name: str, config: VariantConfig, seeds: list[int], device: torch.device
) -> list[Trained]:
    """Train one network of `config` per seed, in the seeds' order."""
    workers = min(len(seeds), len(os.sched_getaffinity(0))) if device.type == "cpu" else 1
    if workers == 1:
        data = training_digits(device)
        with one_thread(device):
            return [_train(name, config, seed, data, position=0) for seed in seeds]
    # fork: the workers inherit the imported modules (torch takes seconds to import); the
    # stage has run no tensor operation yet, so no OpenMP pool is forked half-started.
    context = multiprocessing.get_context("fork")
    jobs = [(name, config, seed, device, k) for k, seed in enumerate(seeds)]
    with context.Pool(workers, initializer=_worker_started) as pool:
        try:
            # In the seeds' order: when several fail, the first seed's error is the one shown.
            results = list(pool.imap(_train_in_worker, jobs))
        except BaseException:  # Ctrl-C, SIGTERM or a worker's error: stop them all now
            pool.terminate()
            print(file=sys.stderr)  # their progress bars stopped mid-line
            raise
    return [Trained(_rebuilt(config, state), *rest) for state, *rest in results]


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """On a CPU, one intra-op thread meanwhile (as in a worker)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_started() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stage handles Ctrl-C for everyone
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # ... and stops the workers with SIGTERM
    torch.set_num_threads(1)


def _train_in_worker(job: tuple[str, VariantConfig, int, torch.device, int]) -> tuple:
    name, config, seed, device, position = job
    # The digits are read here: the stage forks before any tensor exists.
    trained = _train(name, config, seed, training_digits(device), position)
    return trained.model.state_dict(), trained.history, trained.seconds, trained.samples


def _train(
    name: str, config: VariantConfig, seed: int, data: tuple[Tensor, Tensor], position: int
) -> Trained:
    train, val = data
    seed_everything(seed)
    model = build_model(config).to(train.device)
    start = time.perf_counter()
    history = fit(model, train, val, config, seed, name, position=position)
    return Trained(model, history, time.perf_counter() - start, len(train) * len(history))


def _rebuilt(config: VariantConfig, state: dict) -> LatentModel:
    model = build_model(config)
    model.load_state_dict(state)
    return model
