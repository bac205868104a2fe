"""`make test-all` runs the tests on two xdist workers with `--dist loadgroup`: the users
of one expensive session fixture (the team stack, conftest's `experiments`) must share a
worker, or one worker builds it while the other waits for its lock. pytest-xdist 3.8
silently stops grouping under pytest 9.2 (pytest-dev/pytest-xdist#1386), hence
pyproject's `pytest<9.2`; this test fails when grouping is lost again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import run

# As conftest does: a group for the users of one fixture, added at collection.
CONFTEST = """
import os
import pytest

@pytest.fixture
def shared():
    return os.environ["PYTEST_XDIST_WORKER"]

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if "shared" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("shared"))
"""
TESTS = """
import time
import pytest

@pytest.mark.parametrize("i", range(4))
def test_grouped(shared, i, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / f"{__name__}-{i}").write_text(shared)

@pytest.mark.parametrize("i", range(4))
def test_alone(i):
    time.sleep(0.2)  # keeps both workers busy
"""


@pytest.mark.slow  # pytest with two workers
def test_the_users_of_a_shared_fixture_run_on_one_worker(tmp_path: Path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    for module in ("test_a", "test_b"):
        (suite / f"{module}.py").write_text(TESTS)
    temp = tmp_path / "temp"
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", f"--basetemp={temp}"], cwd=suite)  # fmt: skip
    workers = {path.name: path.read_text() for path in temp.glob("test_*-*")}
    assert len(workers) == 8
    assert len(set(workers.values())) == 1, workers
