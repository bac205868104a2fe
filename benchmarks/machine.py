"""The machine a benchmark ran on, recorded beside its figures: they hold for it only."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> dict[str, object]:
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def pinned_environment() -> dict[str, str]:
    """This process's environment with the instruction-set pins every stage holds."""
    from aelab.core.pins import pin_instruction_sets

    environ = dict(os.environ)
    pin_instruction_sets(environ)
    return environ
