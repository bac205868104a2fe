"""aelab.core.pins: every stage and the `aelab` command hold the numerical libraries to AVX2
and one thread before they load."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import yaml
from helpers import PROJECT_ROOT

from aelab.core.pins import PINS, pin_instruction_sets


def test_pinning_sets_every_variable_whatever_it_held():
    environ = {"ATEN_CPU_CAPABILITY": "avx512", "HOME": "/home/someone"}
    pin_instruction_sets(environ)
    assert environ == {**PINS, "HOME": "/home/someone"}


def test_every_stage_runs_through_the_package_that_pins():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    commands = {name: (stage.get("do") or stage)["cmd"] for name, stage in stages.items()}
    assert all(command.startswith("python -m stages.") for command in commands.values()), commands


def test_a_stage_process_holds_pytorch_to_avx2_and_one_thread():
    """What `python -m stages.<name>` gets before its module's imports: the pins, read by
    PyTorch as it loads (on a machine with AVX2: every x86-64 one the lab supports)."""
    probe = ("import json, os, stages, torch; print(json.dumps([os.environ.copy(), "
             "torch.backends.cpu.get_cpu_capability(), torch.get_num_threads()]))")  # fmt: skip
    shown = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, check=True)  # fmt: skip
    environ, capability, threads = json.loads(shown.stdout)
    assert {key: environ.get(key) for key in PINS} == PINS
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert capability == "AVX2"
    assert threads == 1
