"""Thin DVC stage entry points: `python -m stages.<name>` from the project root."""

from aelab.errors import report_interrupts_in_one_line

# Runs before a stage module's own imports: a Ctrl-C during them is one line too.
report_interrupts_in_one_line()
