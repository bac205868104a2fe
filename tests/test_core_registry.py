"""aelab.core.registry: entries by name, added once; an unknown name is one line naming
the registered ones."""

from __future__ import annotations

import pytest

from aelab.core.errors import AelabError
from aelab.core.registry import Registry
from aelab.models.base import MODELS, registry


def test_entries_keep_the_order_they_were_added_in_and_decorating_adds_one():
    found = Registry("thing")
    found.add("b", 2)

    @found.register("a")
    def entry() -> int:
        return 1

    assert list(found) == ["b", "a"] and found["a"] is entry and len(found) == 2
    assert "a" in found and "c" not in found and found.get("c") is None


def test_an_unknown_name_is_one_line_naming_the_registered_ones():
    found = Registry("thing")
    found.add("b", 2)
    with pytest.raises(AelabError, match=r"^unknown thing 'c'; registered: b$"):
        found["c"]


def test_a_name_is_registered_once():
    found = Registry("thing")
    found.add("b", 2)
    with pytest.raises(ValueError, match="thing 'b' is registered twice"):
        found.add("b", 3)


def test_the_models_register_their_kinds_in_one():
    assert registry() == dict(MODELS) and MODELS.what == "variant kind"
