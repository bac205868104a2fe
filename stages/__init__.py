"""Thin DVC stage entry points: `python -m stages.<name>` from the project root.

This package is imported before a stage module and its imports, so the process is set up
here: the instruction sets and threads pinned before any numerical library loads
(aelab.core.pins), and a Ctrl-C during the imports is one line too."""

from aelab.core.errors import hold_interrupts_while_importing
from aelab.core.pins import pin_instruction_sets

pin_instruction_sets()
hold_interrupts_while_importing()
