"""`python -m stages <name> [arguments]`: DVC's entry point to stage <name> (stages/<name>.py).

The process is set up before the stage's module and its imports load: the instruction
sets and threads pinned before any numerical library loads (aelab.core.pins), and a Ctrl-C
or SIGTERM during the imports (torch: seconds) held until `run_stage` can stop the stage
in one line (aelab.core.errors). Then stages/<name>.py runs as the main module, with the
arguments after its name."""

import pkgutil
import runpy
import sys
from pathlib import Path

from aelab.core.errors import AelabError, hold_interrupts_while_importing
from aelab.core.pins import pin_instruction_sets

STAGES = sorted(module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)])
                if not module.name.startswith("_"))  # fmt: skip


def start(argv: list[str]) -> None:
    """Set the process up, then run the stage `argv[0]` with the arguments after it."""
    name, *arguments = argv or [""]
    if name not in STAGES:
        raise AelabError(f"python -m stages: {name!r} is not a stage; choose one of "
                         f"{', '.join(STAGES)}")  # fmt: skip
    set_up_process()
    sys.argv = [f"stages/{name}.py", *arguments]
    runpy.run_module(f"stages.{name}", run_name="__main__", alter_sys=True)


def set_up_process() -> None:
    """What a stage's process needs before its imports: the pins, and interrupts held."""
    pin_instruction_sets()
    hold_interrupts_while_importing()


if __name__ == "__main__":
    try:
        start(sys.argv[1:])
    except AelabError as error:
        sys.exit(f"error: {error}")
