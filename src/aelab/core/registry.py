"""Registries: name -> entry, each entry added once where it is defined, so a new model
kind, anomaly score, clusterer or sampler is one entry, not an edit across files.

The models register their classes (aelab.models.base), the analysis layer its methods
(aelab.analysis.scores, clusterers, samplers). params.yaml names the entries; a caller
that uses a registry hands it to `load_params`, which then checks those names against it
(core cannot import the layers that fill the registries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from aelab.core.errors import AelabError

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Entries by name, in the order they were added; `what` names one in messages."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that adds what it decorates under `name`."""
        return lambda entry: self.add(name, entry)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise AelabError(f"unknown {self.what} {name!r}; registered: {', '.join(self)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
