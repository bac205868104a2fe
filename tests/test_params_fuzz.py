"""Fuzzed params.yaml files (hypothesis): each is either accepted, and then the code it
drives runs (split, every variant built and trained a step), or rejected with one line
that names the key. Never a traceback. conftest sets how many examples: a few locally,
300 per property in CI."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import PROJECT_ROOT, method_registries
from hypothesis import given
from hypothesis import strategies as st

from aelab.core.errors import AelabError
from aelab.core.params import load_params
from aelab.data.digits import Digits
from aelab.data.split import split_digits
from aelab.models import build_model

BASE = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def leaf_paths(tree: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(tree, dict):
        return [path for key, value in tree.items() for path in leaf_paths(value, (*prefix, key))]
    return [prefix]


LEAVES = leaf_paths(BASE)
# Besides every existing leaf: new keys at a few levels, and whole sections.
PATHS = st.one_of(
    st.sampled_from(LEAVES),
    st.sampled_from([("train",), ("variants",), ("split",), ("variants", "ae"), ("regression",)]),
    st.tuples(
        st.sampled_from(["train", "data", "variants", "evaluate", "tracking"]),
        st.text("abcdefgh_", min_size=1, max_size=8),
    ),  # fmt: skip
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["ae", "dae", "vae", "pca", "sparse", "gaussian", "masking", "mse", "bce",
                     "higher", "cpu", "cuda", "sample", "mnist", "1e-3", "0.5", "[1, 2]"]),
    st.lists(st.integers(min_value=-2, max_value=5000), max_size=4),
    st.dictionaries(st.sampled_from(["kind", "better", "tolerance", "lr", "x"]),
                    st.one_of(st.integers(-5, 5), st.floats(-1, 2), st.text(max_size=6)),
                    max_size=3),
)  # fmt: skip


def mutated(changes: list[tuple[tuple[str, ...], object]]) -> dict:
    params = copy.deepcopy(BASE)
    for path, value in changes:
        section = params
        for key in path[:-1]:
            if not isinstance(section.get(key), dict):
                section[key] = {}
            section = section[key]
        section[path[-1]] = value
    return params


def tiny_digits(n_per_digit: int = 30) -> Digits:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n_per_digit)
    images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    return Digits(images=images, labels=labels, origin=np.full(len(labels), "train"))


DIGITS = tiny_digits()


def check_runs(params) -> None:
    """What an accepted file drives: the split, and one step of every variant."""
    sets = split_digits(DIGITS, params.split, params.seed)
    train = torch.from_numpy(sets["train"].images[:64]).reshape(-1, 784).float() / 255
    for name in params.variants:
        model = build_model(params.variant(name))
        if model.closed_form:
            model.fit(train)
            continue
        model.train()
        model(train[None]).loss.sum().backward()


@given(st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=3))
def test_a_fuzzed_params_file_runs_or_is_one_line_naming_the_key(tmp_path_factory, changes):
    path = tmp_path_factory.mktemp("fuzz") / "params.yaml"
    path.write_text(yaml.safe_dump(mutated(changes), sort_keys=False))
    try:
        params = load_params(path, **method_registries())
        check_runs(params)
    except AelabError as error:
        message = str(error)
        assert "\n" not in message and message, message
        named = {".".join(p[:i]) for p, _ in changes for i in range(1, len(p) + 1)}
        assert any(key in message for key in named), (message, changes)


@given(st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_a_damaged_params_file_is_one_line(tmp_path_factory, position, junk):
    text = (PROJECT_ROOT / "params.yaml").read_bytes()
    at = position % len(text)
    path = tmp_path_factory.mktemp("fuzz") / "params.yaml"
    path.write_bytes(text[:at] + junk + text[at:])
    try:
        load_params(path)
    except AelabError as error:
        assert "\n" not in str(error) and str(error).startswith(str(path)), str(error)


def test_a_code_larger_than_the_training_set_stops_pca_with_one_line():
    params = load_params(PROJECT_ROOT / "params.yaml")
    model = build_model(params.variant("pca"))
    with pytest.raises(AelabError, match="latent_dim = 32 is more than the 10 training digits"):
        model.fit(torch.rand(10, 784))


def test_base_params_pass(tmp_path: Path):
    check_runs(load_params(PROJECT_ROOT / "params.yaml"))
