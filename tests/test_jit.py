"""aelab.analysis.jit: a package's numba functions compiled once into numba's disk cache,
keyed by the CPU they are compiled for, one process at a time. Each case runs a toy
package (a jitted function declared without cache=True, as umap-learn declares most of
its own) in fresh processes, as the stages do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from aelab.analysis import jit

TOY = """import numba


@numba.njit
def twice(x):
    return 2 * x
"""
# Prints a line before asking for the cache, then what the call found in it.
RUN = """import json, sys, time
sys.path.insert(0, sys.argv[1])
from aelab.analysis import jit
print("asking", flush=True)
with jit.cached("toy"):
    entered = time.time()
    import toy
    value = toy.twice(21.0)
hits, misses = (sum(counts.values()) for counts in
                (toy.twice.stats.cache_hits, toy.twice.stats.cache_misses))
import numba
numba.set_num_threads(1)  # as umap-learn does: starts numba's thread pool
print(json.dumps({"value": value, "hits": hits, "misses": misses, "entered": entered,
                  "layer": numba.threading_layer()}))
"""


def start(tmp_path: Path, **env: str) -> subprocess.Popen:
    package = tmp_path / "package"
    package.mkdir(exist_ok=True)
    (package / "toy.py").write_text(TOY)
    # Without the NUMBA_ settings this session's own maps put in its environment.
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    env = {**inherited, jit.CACHE_ENV: str(tmp_path / "cache"), **env}
    return subprocess.Popen([sys.executable, "-c", RUN, str(package)], env=env, text=True,
                            stdout=subprocess.PIPE)  # fmt: skip


def run(tmp_path: Path, **env: str) -> dict:
    out, _ = start(tmp_path, **env).communicate(timeout=120)
    found = json.loads(out.splitlines()[-1])
    assert found["layer"] == "workqueue"  # not OpenMP's pool, which slows k-means after it
    return {key: found[key] for key in ("value", "hits", "misses")}


def test_the_first_process_compiles_into_the_cache_and_later_ones_load_from_it(tmp_path):
    """numba's key holds the CPU: under a pinned NUMBA_CPU_NAME (issue 35's pins) a process
    compiles that CPU's entry once, and later ones load it."""
    assert run(tmp_path) == {"value": 42.0, "hits": 0, "misses": 1}
    assert run(tmp_path) == {"value": 42.0, "hits": 1, "misses": 0}
    assert list((tmp_path / "cache").glob("*/toy.twice-*.nbi"))
    assert run(tmp_path, NUMBA_CPU_NAME="generic") == {"value": 42.0, "hits": 0, "misses": 1}
    assert run(tmp_path, NUMBA_CPU_NAME="generic") == {"value": 42.0, "hits": 1, "misses": 0}


def test_a_process_waits_while_another_holds_the_cache(tmp_path):
    (tmp_path / "cache").mkdir()
    with FileLock(tmp_path / "cache" / jit.LOCK):
        waiting = start(tmp_path)
        assert waiting.stdout.readline().strip() == "asking"
        time.sleep(0.5)
        released = time.time()
    out, _ = waiting.communicate(timeout=120)
    assert json.loads(out.splitlines()[-1])["entered"] >= released


def test_the_cache_is_numba_cache_dir_or_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(jit.CACHE_ENV, str(tmp_path / "set"))
    assert jit.cache_dir() == tmp_path / "set"
    if sys.platform != "linux":
        pytest.skip("the user's cache folder is XDG_CACHE_HOME's on Linux")
    monkeypatch.delenv(jit.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit.cache_dir() == tmp_path / "xdg" / "aelab" / "numba"
