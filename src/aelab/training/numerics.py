"""How networks compute on a CPU, wherever they train or run.

- Subnormal floats are flushed to zero. Weights that decay towards zero (the contractive
  penalty's) become subnormal, and x86 arithmetic on subnormals is many times slower: the
  contractive variant's epochs slowed eightfold once 5 % of its weights were subnormal.
  Their values are below 1.2e-38, so flushing them changes nothing a network computes.
  The flag is the CPU's own (it would also flush numpy's and every other library's
  floats), so it is set only meanwhile.
- One intra-op thread: a network's sums then do not depend on the machine's core count,
  and these small networks gain little from a second thread (aelab.training.seeds uses
  the cores for seeds instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def cpu_numerics() -> Iterator[None]:
    """Subnormals flushed and one intra-op thread meanwhile; both as they were after."""
    threads, flushing = torch.get_num_threads(), flushes_subnormals()
    torch.set_flush_denormal(True)  # returns False on a CPU without the instructions
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(flushing)


def flushes_subnormals() -> bool:
    """Whether the CPU flushes subnormal floats now (torch has no getter for the flag)."""
    return (torch.tensor(1e-39) * 1.0).item() == 0.0
