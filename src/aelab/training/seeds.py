"""A variant's seeds, trained together: one group per core, one thread each.

Within a group every seed's network takes each step together with the others
(aelab.training.loop). Since a seed's result does not depend on which seeds share its
group, the seeds are split over the CPU's cores, a group per process on one thread, and
the bytes are the same on a machine of any core count. The workers return weights and
histories; only the stage writes files, so a stopped stage leaves nothing behind. On CUDA
one group holds every seed.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aelab.core.params import VariantConfig
from aelab.data import digits
from aelab.models import assemble
from aelab.training.loop import Trained, as_inputs, fit


@dataclass
class Seeds:
    """A variant's seeds after training, and what it cost: the seconds its groups trained for
    (summed over the processes, loading the digits aside) and the training digits seen."""

    trained: list[Trained]  # in the seeds' order
    seconds: float
    samples: int


def training_digits(root: Path, device: torch.device) -> tuple[Tensor, Tensor]:
    """The normal training and validation digits of the project at `root` as model inputs;
    never the test digits."""
    return tuple(as_inputs(digits.load_split(root, part).images, device)
                 for part in ("train", "val"))  # fmt: skip


def train_seeds(
    root: Path, name: str, config: VariantConfig, seeds: list[int], device: torch.device
) -> Seeds:
    """A network of `config` per seed, the seeds split into one group per core, trained on
    the digits of the project at `root`."""
    workers = min(len(seeds), len(os.sched_getaffinity(0))) if device.type == "cpu" else 1
    groups = [list(map(int, chunk)) for chunk in np.array_split(seeds, workers)]
    jobs = [(root, name, config, group, device, k) for k, group in enumerate(groups)]
    results = [_train_group(jobs[0])] if workers == 1 else _in_processes(jobs)
    return Seeds([one for group, _, _ in results for one in group],
                 sum(seconds for _, seconds, _ in results),
                 sum(samples for _, _, samples in results))  # fmt: skip


def _in_processes(jobs: list[tuple]) -> list[tuple[list[Trained], float, int]]:
    # fork: the workers inherit the imported modules (torch takes seconds to import); the
    # stage has run no tensor operation yet, so no OpenMP pool is forked half-started.
    context = multiprocessing.get_context("fork")
    with context.Pool(len(jobs), initializer=_worker_started) as pool:
        try:
            # In the groups' order: when several fail, the first seed's error is the one shown.
            results = list(pool.imap(_train_in_worker, jobs))
        except BaseException:  # Ctrl-C, SIGTERM or a worker's error: stop them all now
            pool.terminate()
            print(file=sys.stderr)  # their progress bars stopped mid-line
            raise
    return [([Trained(seed, assemble(config, state).eval(), history)
              for seed, state, history in group], *cost)
            for (_, _, config, *_), (group, *cost) in zip(jobs, results, strict=True)]  # fmt: skip


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _worker_started() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stage handles Ctrl-C for everyone
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # ... and stops the workers with SIGTERM
    # A stage killed outright (SIGKILL) cannot stop its workers: the kernel does, with
    # SIGTERM, the moment the stage dies. Linux only; elsewhere they finish their group.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the stage died before the line above ran
            os._exit(1)


def _train_in_worker(job: tuple) -> tuple[list[tuple], float, int]:
    """A group trained in a worker, returned as plain weights (the stage rebuilds them)."""
    group, *cost = _train_group(job)
    return [(one.seed, one.model.state_dict(), one.history) for one in group], *cost


def _train_group(job: tuple) -> tuple[list[Trained], float, int]:
    """A group's networks, its seconds of training and the training digits it saw."""
    root, name, config, seeds, device, position = job
    # The digits are read here: the stage forks before any tensor exists.
    train, val = training_digits(root, device)
    start = time.perf_counter()
    trained = fit(config, seeds, train, val, name, position=position)
    seconds = time.perf_counter() - start
    return trained, seconds, len(train) * sum(len(one.history) for one in trained)
