"""SIGTERM stops a stage as Ctrl-C does (clean-up runs, one line, exit 128 + signal), a
stage killed while saving leaves nothing behind, and a mirror that trickles bytes fails on
the download deadline instead of hanging. Downloads go to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT, http_server, wait_until
from test_sources import closed_port_url

from aelab.core import errors
from aelab.core.errors import (
    INTERRUPTED,
    UNPINNED,
    Terminated,
    hold_interrupts_while_importing,
    run_stage,
    stop_on_signals,
)
from aelab.core.pins import PINS
from aelab.data import download
from aelab.data.download import fetch_verified

EXIT_CODES = [
    pytest.param(signal.SIGINT, 130, id="SIGINT"),
    pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
]
NAME = "train-images-idx3-ubyte.gz"
PAYLOAD = bytes(range(256)) * 2
MD5 = hashlib.md5(PAYLOAD).hexdigest()
TRICKLE_SECONDS = 0.02  # per byte: the whole file takes 10 s, each read under 10 s


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch):
    """A stage's process in this one: the pins in its environment (put back after the
    test), SIGINT and SIGTERM handlers put back after the test, and meanwhile a SIGTERM
    nobody handles fails the test instead of killing pytest."""
    for name, value in PINS.items():
        monkeypatch.setenv(name, value)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, lambda *_: pytest.fail("SIGTERM was not handled"))
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    errors._held_signal = None


@pytest.mark.parametrize(("sig", "code"), EXIT_CODES)
def test_a_signal_runs_the_stages_cleanup_then_exits_with_one_line(handlers, capsys, sig, code):
    cleaned_up = []

    def main() -> None:
        try:
            signal.raise_signal(sig)
            time.sleep(10)
        except BaseException:  # as atomic_open and save_checkpoint clean up
            cleaned_up.append(sig)
            raise

    with pytest.raises(SystemExit) as caught:
        run_stage(main)
    assert caught.value.code == code and cleaned_up == [sig]
    assert capsys.readouterr().err == INTERRUPTED + "\n"


@pytest.mark.parametrize(("sig", "code"), EXIT_CODES)
def test_a_signal_while_importing_stops_the_stage_before_it_starts(handlers, capsys, sig, code):
    hold_interrupts_while_importing()
    signal.raise_signal(sig)  # held: nothing raised here, in the middle of the imports
    started = []
    with pytest.raises(SystemExit) as caught:
        run_stage(lambda: started.append(True))
    assert caught.value.code == code and started == []
    assert capsys.readouterr().err == INTERRUPTED + "\n"


def test_a_stage_without_the_pins_refuses_to_start(capsys, monkeypatch: pytest.MonkeyPatch):
    """`python -m stages.train`, which skips stages/__main__.py, is one line, not a model
    trained with other kernels than every other machine's."""
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    started = []
    with pytest.raises(SystemExit) as caught:
        run_stage(lambda: started.append(True))
    assert caught.value.code == 1 and started == []
    assert capsys.readouterr().err == f"error: {UNPINNED}\n"


def test_stop_on_signals_raises_sigterm_as_a_keyboard_interrupt(handlers):
    """What another entry point (`aelab log`) gets by calling it."""
    stop_on_signals()
    with pytest.raises(Terminated) as caught:
        signal.raise_signal(signal.SIGTERM)
    assert isinstance(caught.value, KeyboardInterrupt)


class Mirror(http.server.BaseHTTPRequestHandler):
    """/fast/<NAME> sends PAYLOAD at once, /trickle/<NAME> a byte at a time; `trickled`
    counts the bytes a trickle sent before its client hung up (or all of them)."""

    stopping = threading.Event()
    trickled: list[int] = []

    def do_GET(self) -> None:
        kind, _, name = self.path.strip("/").partition("/")
        if kind not in ("fast", "trickle") or name != NAME:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        step = 1 if kind == "trickle" else len(PAYLOAD)
        sent = 0
        try:
            for start in range(0, len(PAYLOAD), step):
                if self.stopping.is_set():
                    return
                self.wfile.write(PAYLOAD[start : start + step])
                self.wfile.flush()
                sent += step
                if kind == "trickle":
                    time.sleep(TRICKLE_SECONDS)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass
        if kind == "trickle":
            Mirror.trickled.append(sent)

    def log_message(self, *args) -> None:  # keep pytest's output for failures
        pass


@pytest.fixture
def mirror():
    """The URL of a Mirror on 127.0.0.1."""
    Mirror.stopping.clear()
    Mirror.trickled.clear()
    with http_server(Mirror) as url:
        yield url
        Mirror.stopping.set()


def test_a_trickling_mirror_fails_on_the_deadline_and_the_next_serves(
    tmp_path: Path, mirror, monkeypatch
):
    monkeypatch.setattr(download, "DEADLINE_SECONDS", 0.5)
    path = fetch_verified(NAME, MD5, tmp_path, [f"{mirror}/trickle/", f"{mirror}/fast/"])
    assert path.read_bytes() == PAYLOAD and list(tmp_path.iterdir()) == [path]
    # The trickle (10 s in all) was abandoned part-way: the client hung up on the deadline.
    wait_until(lambda: Mirror.trickled, timeout=30, what="the trickle to end")
    assert 0 < Mirror.trickled[0] < len(PAYLOAD)


def test_no_mirror_within_the_deadline_is_one_error_naming_each(
    tmp_path: Path, mirror, monkeypatch
):
    monkeypatch.setattr(download, "DEADLINE_SECONDS", 0.5)
    mirrors = [f"{mirror}/trickle/", closed_port_url()]
    with pytest.raises(errors.AelabError) as caught:
        fetch_verified(NAME, MD5, tmp_path, mirrors)
    message = str(caught.value)
    assert f"{mirror}/trickle/{NAME}: no complete file within 0.5 s; " in message
    assert f"{mirrors[1]}{NAME}: " in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no temporary file either


def start(script: str, *args: str) -> subprocess.Popen:
    """`python -c script args` with the project's code (and the tests' helpers) importable,
    pinned as `python -m stages` pins a stage."""
    path = os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT / "tests")])
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **PINS, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen, sig: int) -> tuple[str, list[str]]:
    """Send `sig`; the process's stdout, and its stderr lines but tqdm's progress bars."""
    process.send_signal(sig)
    process.wait(timeout=30)
    stderr = process.stderr.read().splitlines()
    return process.stdout.read(), [line for line in stderr if line.strip() and NAME not in line]


SLEEPING_STAGE = """
import time
from aelab.core.errors import run_stage

def main():
    try:
        print("started", flush=True)
        time.sleep(60)
    finally:
        print("cleaned up", flush=True)

run_stage(main)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), EXIT_CODES)
def test_a_stage_process_stops_with_one_line_and_128_plus_the_signal(sig, code):
    process = start(SLEEPING_STAGE)
    assert process.stdout.readline() == "started\n"
    stdout, stderr = stop(process, sig)
    assert process.returncode == code
    assert stdout == "cleaned up\n" and stderr == [INTERRUPTED]


SAVING_STAGE = """
import sys, time
import torch
from test_models import config
from aelab.models.checkpoints import save_checkpoint
from aelab.core.errors import run_stage
from aelab.models import build_model

def slow_save(*args, **kwargs):  # into the staging folder, which exists by now
    print("saving", flush=True)
    time.sleep(60)

torch.save = slow_save
run_stage(lambda: save_checkpoint(sys.argv[1], "ae", build_model(config("ae")), []))
"""


@pytest.mark.slow
def test_sigterm_while_saving_a_checkpoint_leaves_no_staging_folder(tmp_path: Path):
    models = tmp_path / "models"
    process = start(SAVING_STAGE, str(models / "ae"))
    assert process.stdout.readline() == "saving\n"
    assert [path.name.endswith(".tmp") for path in models.iterdir()] == [True]
    _, stderr = stop(process, signal.SIGTERM)
    assert process.returncode == 143 and stderr == [INTERRUPTED]
    assert list(models.iterdir()) == []


DOWNLOAD_STAGE = """
import sys
from pathlib import Path
from aelab.data.download import fetch_verified
from aelab.core.errors import run_stage

name, md5, folder, url = sys.argv[1:]
run_stage(lambda: fetch_verified(name, md5, Path(folder), [url]))
"""


@pytest.mark.slow
def test_sigterm_while_downloading_leaves_no_file(tmp_path: Path, mirror):
    folder = tmp_path / "raw"
    folder.mkdir()
    process = start(DOWNLOAD_STAGE, NAME, MD5, str(folder), f"{mirror}/trickle/")
    # The temporary file: bytes are coming.
    wait_until(lambda: any(folder.iterdir()) or process.poll() is not None, timeout=30,
               what="the download to start")  # fmt: skip
    assert process.poll() is None, process.stderr.read()
    _, stderr = stop(process, signal.SIGTERM)
    assert process.returncode == 143 and stderr == [INTERRUPTED]
    assert list(folder.iterdir()) == []
