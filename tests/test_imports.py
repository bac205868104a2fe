"""No effects at import: importing every module of aelab and stages/ leaves the process as
it was (environment, logger levels, warning filters, signal handlers). The entry points
make those changes themselves (aelab.cli.main, stages/__main__.py, quiet_mlflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import PROJECT_ROOT

# Imports every project module in turn; `before` takes the state, `after` reports changes.
OURS = """
import importlib, pkgutil, aelab, stages
def our_modules():
    found = ["aelab", "stages"]
    for package in (aelab, stages):
        prefix = package.__name__ + "."
        found += [module.name for module in pkgutil.walk_packages(package.__path__, prefix)]
    return found
def import_ours():
    for name in our_modules():
        importlib.import_module(name)
"""
# The third-party modules that importing ours loads, in the order they loaded.
THIRD_PARTY = (
    OURS
    + """
import json, sys
import_ours()
print(json.dumps([name for name in sys.modules if name.split(".")[0] not in ("aelab", "stages")]))
"""
)
# Those first (whatever they change is theirs), then ours: what changed is ours.
CHANGES = (
    OURS
    + """
import importlib, json, logging, os, signal, sys, warnings
def state():
    loggers = logging.Logger.manager.loggerDict
    return {
        "environment": dict(os.environ),
        "logger levels": {name: getattr(logger, "level", 0) for name, logger in loggers.items()}
                         | {"root": logging.getLogger().level},
        "warning filters": [repr(entry) for entry in warnings.filters],
        "signal handlers": {sig.name: repr(signal.getsignal(sig))
                            for sig in (signal.SIGINT, signal.SIGTERM)},
    }
for name in json.loads(sys.stdin.read()):
    try:
        importlib.import_module(name)
    except Exception:  # a private or platform module that is not importable on its own
        pass
before = state()
import_ours()
after = state()
changed = {}
for what, old in before.items():
    new = after[what]
    if isinstance(old, dict):
        keys = set(old) | set(new)
        diff = {key: [old.get(key), new.get(key)] for key in sorted(keys)
                if old.get(key, 0 if what == "logger levels" else None)
                != new.get(key, 0 if what == "logger levels" else None)}
    else:
        diff = [entry for entry in new if entry not in old]
    if diff:
        changed[what] = diff
print(json.dumps(changed))
"""
)


def python(script: str, given: str = "") -> str:
    """The output of `script` in a fresh interpreter, in the project, in an environment of
    the bare necessities: a variable an import sets only when missing (setdefault) shows."""
    environ = {key: os.environ[key] for key in ("PATH", "HOME", "PYTHONPATH") if key in os.environ}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, input=given,
                          env=environ, capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout


@pytest.mark.slow  # two fresh interpreters import everything: 13 s, a fifth of `make test`
def test_importing_every_module_changes_nothing_of_the_process():
    third_party = python(THIRD_PARTY)
    changed = json.loads(python(CHANGES, third_party))
    assert changed == {}
