"""aelab.core.pins: every stage and the `aelab` command hold the numerical libraries to AVX2
and one thread before they load; stages/__main__.py, through which every stage runs, pins
first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
import yaml
from helpers import PROJECT_ROOT

from aelab.core.pins import PINS, pin_instruction_sets, pinned


def test_pinning_sets_every_variable_whatever_it_held():
    environ = {"ATEN_CPU_CAPABILITY": "avx512", "HOME": "/home/someone"}
    assert not pinned(environ)
    pin_instruction_sets(environ)
    assert environ == {**PINS, "HOME": "/home/someone"}
    assert pinned(environ)


def test_every_stage_runs_through_the_runner_that_pins():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    commands = {name: (stage.get("do") or stage)["cmd"] for name, stage in stages.items()}
    assert all(command.startswith("python -m stages ") for command in commands.values()), commands


def test_a_stage_process_holds_pytorch_to_avx2_and_one_thread():
    """What `python -m stages <name>` gives its stage before the stage module's imports:
    the pins, read by PyTorch as it loads (on a machine with AVX2: every x86-64 one the lab
    supports). Importing the runner changes nothing; setting the process up does."""
    probe = ("import json, os, sys, stages.__main__ as runner; unpinned = os.environ.copy(); "
             "runner.set_up_process(); import torch; print(json.dumps([unpinned, "
             "os.environ.copy(), torch.backends.cpu.get_cpu_capability(), "
             "torch.get_num_threads()]))")  # fmt: skip
    environ = {key: value for key, value in os.environ.items() if key not in PINS}
    shown = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, check=True, env=environ)  # fmt: skip
    unpinned, environ, capability, threads = json.loads(shown.stdout)
    assert not pinned(unpinned)
    assert {key: environ.get(key) for key in PINS} == PINS
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert capability == "AVX2"
    assert threads == 1


def test_an_unknown_stage_is_one_line_naming_the_stages():
    shown = subprocess.run([sys.executable, "-m", "stages", "trian"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 1
    assert shown.stderr.startswith("error: python -m stages: 'trian' is not a stage; choose one")
    assert "train" in shown.stderr and "__main__" not in shown.stderr
    assert len(shown.stderr.splitlines()) == 1
