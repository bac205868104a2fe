"""The one kind of error a user can fix, and the wrapper that reports it as one line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

INTERRUPTED = "interrupted: nothing was written; run `dvc repro` again to finish"
_held_interrupt = False  # a Ctrl-C came while the stage was importing


class AelabError(Exception):
    """A problem in the user's input (params, data files, arguments) with a known fix.

    Stages let it propagate to `run_stage`, which prints its message as one line and
    exits non-zero; tracebacks are kept for bugs.
    """


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`, turning an AelabError or Ctrl-C into one line and an exit code."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if _held_interrupt:
            raise KeyboardInterrupt
        main()
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


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
    """Hold a Ctrl-C that arrives before `run_stage` runs, while a stage imports torch
    (seconds): raised inside torch's C extension, a KeyboardInterrupt is either lost (the
    stage runs on) or aborts the process with a C++ message. `run_stage` then stops with
    the one line, before any work."""
    signal.signal(signal.SIGINT, _hold)


def _hold(signum: int, frame: FrameType | None) -> None:
    global _held_interrupt
    _held_interrupt = True
