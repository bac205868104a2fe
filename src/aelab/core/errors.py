"""The one kind of error a user can fix, and the wrapper that reports it as one line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from aelab.core.pins import pinned

INTERRUPTED = "interrupted: nothing was written; run `dvc repro` again to finish"
_held_signal: int | None = None  # a Ctrl-C or SIGTERM that came while the stage was importing


class AelabError(Exception):
    """A problem in the user's input (params, data files, arguments) with a known fix.

    Stages let it propagate to `run_stage`, which prints its message as one line and
    exits non-zero; tracebacks are kept for bugs.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a CI timeout, `docker stop`) raised like Ctrl-C's KeyboardInterrupt,
    so every `except KeyboardInterrupt` and `except BaseException` clean-up handles both;
    only the exit code differs (143, not 130)."""


UNPINNED = (
    "this stage process lacks the instruction-set pins (aelab.core.pins), so its numbers "
    "could differ from every other machine's; run it as `python -m stages <name>`, as "
    "dvc.yaml does"
)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` and exit with run_command's status; refuse, in one line, a
    process that did not pin before PyTorch loaded (`python -m stages.<name>`)."""
    if not pinned():
        print(f"error: {UNPINNED}", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_command(main))


def run_command(main: Callable[[], None]) -> int:
    """Run `main`, turning an AelabError, an OSError, Ctrl-C or SIGTERM into one line and
    an exit status: 1, 130 (128 + SIGINT) or 143 (128 + SIGTERM), as a shell reports them;
    0 when it returns."""
    try:
        stop_on_signals()
        main()
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a write that failed (a full disk, a read-only folder)
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        print(INTERRUPTED, file=sys.stderr)
        return interrupted_status(stop)
    return 0


def interrupted_status(stop: KeyboardInterrupt) -> int:
    """The exit status a shell gives a process its signal ended: 128 + the signal."""
    return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


def stop_on_signals() -> None:
    """Make SIGINT raise KeyboardInterrupt and SIGTERM raise Terminated wherever the main
    thread is, so the code running cleans up on the way out. SIGTERM's default would end
    the process at once, leaving temporary files and folders behind. A signal held while
    importing (`hold_interrupts_while_importing`) is raised here, before any work."""
    global _held_signal
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    held, _held_signal = _held_signal, None
    if held is not None:
        _stop(held, None)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one AelabError line, not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise AelabError(f"{self.prog}: {message} (see --help)")


def parse_variant(prog: str) -> str:
    """The `--variant <name>` argument of the per-variant stages."""
    parser = ArgumentParser(prog=prog)
    parser.add_argument("--variant", required=True, help="a key of `variants:` in params.yaml")
    return parser.parse_args().variant


def hold_interrupts_while_importing() -> None:
    """Hold a Ctrl-C or SIGTERM that arrives before `run_stage` runs, while a stage imports
    torch (seconds): raised inside torch's C extension, a KeyboardInterrupt is either lost
    (the stage runs on) or aborts the process with a C++ message. `run_stage` then stops
    with the one line, before any work."""
    signal.signal(signal.SIGINT, _hold)
    signal.signal(signal.SIGTERM, _hold)


def _hold(signum: int, frame: FrameType | None) -> None:
    global _held_signal
    _held_signal = signum


def _stop(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
