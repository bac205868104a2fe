"""Thin DVC stage entry points: `python -m stages.<name>` from the project root."""

from aelab.core.errors import hold_interrupts_while_importing

# Runs before a stage module's own imports: a Ctrl-C during them is one line too.
hold_interrupts_while_importing()
