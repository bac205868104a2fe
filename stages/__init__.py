"""Thin DVC stage entry points, run as `python -m stages <name> [arguments]` from the
project root (stages/__main__.py sets the process up first). Importing them changes
nothing of the process."""
