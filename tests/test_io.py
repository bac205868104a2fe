"""Atomic, byte-stable writes and checked reads."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import PROJECT_ROOT

from aelab.core.errors import AelabError
from aelab.core.io import (
    atomic_folder,
    atomic_open,
    load_arrays,
    remove_leftovers,
    save_arrays,
    save_json,
)
from aelab.data import digits

FIX = "run `dvc repro -f split`"


def whole(message: str) -> str:
    """A pytest.raises match for exactly this one-line message."""
    return f"^{re.escape(message)}\\Z"


def test_same_arrays_give_the_same_bytes(tmp_path: Path):
    arrays = {"b": np.arange(5, dtype=np.uint8), "a": np.eye(3, dtype=np.float32)}
    save_arrays(tmp_path / "one.npz", arrays)
    save_arrays(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = load_arrays(tmp_path / "one.npz", ("a", "b"), FIX)
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path):
    target = tmp_path / "out" / "file.json"
    with (
        pytest.raises(RuntimeError, match=whole("crash mid-write")),
        atomic_open(target, "w") as handle,
    ):
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    target = tmp_path / "file.json"
    save_json(target, {"ok": 1})
    with (
        pytest.raises(RuntimeError, match=whole("crash mid-write")),
        atomic_open(target, "w") as handle,
    ):
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "ok": 1\n}\n'


def test_the_temporary_file_is_a_hidden_dot_tmp_file_beside_the_target(tmp_path: Path):
    with atomic_open(tmp_path / "file.json", "w") as handle:
        handle.write("{}")
        (temporary,) = tmp_path.iterdir()
        assert temporary.name.startswith(".file.json.") and temporary.name.endswith(".tmp")


def test_leftovers_of_killed_writes_go_with_the_next_write_of_that_file_only(tmp_path: Path):
    leftovers = [tmp_path / ".file.json.k1lled_0.tmp", tmp_path / ".file.json.dir.tmp" / "x"]
    others = [
        tmp_path / ".file.json.gz.k1lled_0.tmp",  # file.json.gz's
        tmp_path / ".file.k1lled_0.tmp",  # file's
        tmp_path / ".file.jsonl.k1lled_0.tmp",
        tmp_path / "file.json.k1lled_0.tmp",  # not ours: ours are hidden
    ]
    for path in leftovers + others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    save_json(tmp_path / "file.json", {})
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "file.json", *others])


def test_removing_leftovers_when_there_are_none_is_fine(tmp_path: Path):
    remove_leftovers(tmp_path / "missing" / "file.json")


def test_dvc_ignores_temporaries_and_staging_folders_only(tmp_path: Path):
    """With the project's .dvcignore, as `dvc check-ignore` reports it."""
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True)
    shutil.copy(PROJECT_ROOT / ".dvcignore", tmp_path / ".dvcignore")
    ignore = Repo(str(tmp_path)).dvcignore
    for folder, ignored in [("models/.ae.abc123.tmp", True), ("models/ae", False)]:
        assert ignore.is_ignored_dir(str(tmp_path / folder)) == ignored, folder
    for file, ignored in [
        ("data/raw/.digits.npz.k1lled_0.tmp", True),
        ("models/.ae.abc123.tmp/model.pt", True),
        ("models/.gitignore", False),
        ("data/raw/digits.npz", False),
    ]:
        assert ignore.is_ignored_file(str(tmp_path / file)) == ignored, file


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process's umask set to the parameter for the test, then restored."""
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], indirect=True, ids=oct)
def test_written_files_get_the_usual_permissions(tmp_path: Path, umask: int):
    """What `open()` gives a new file (0o666 less the umask), not mkstemp's 0o600."""
    save_json(tmp_path / "file.json", {})
    save_arrays(tmp_path / "arrays.npz", {"a": np.zeros(2)})
    for name in ("file.json", "arrays.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.mark.parametrize("umask", [0o022], indirect=True, ids=oct)
def test_written_folders_get_mode_755(tmp_path: Path, umask: int):
    """0o755, not mkdtemp's 0o700 (which would hide a model from other users)."""
    with atomic_folder(tmp_path / "model") as staging:
        (staging / "weights").write_bytes(b"w")
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_object_arrays_are_refused(tmp_path: Path):
    with pytest.raises(
        ValueError, match=whole("Object arrays cannot be saved when allow_pickle=False")
    ):
        save_arrays(tmp_path / "x.npz", {"x": np.array([object()])})


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "file not found"),
        (b"", "unreadable (No data left in file)"),
        (b"PK\x03\x04garbage", "unreadable (File is not a zip file)"),
    ],
)
def test_missing_or_corrupt_file_is_one_line_with_the_fix(tmp_path: Path, content, words):
    path = tmp_path / "train.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AelabError, match=whole(f"{path}: {words}; {FIX}")) as caught:
        digits.load(path, digits.SplitSet, FIX)
    assert "\n" not in str(caught.value)


def test_truncated_file_is_refused(tmp_path: Path):
    path = tmp_path / "train.npz"
    subset = digits.SplitSet(
        np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8), np.zeros(4, bool)
    )
    digits.save(path, subset)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        AelabError, match=whole(f"{path}: unreadable (File is not a zip file); {FIX}")
    ):
        digits.load(path, digits.SplitSet, FIX)


def test_wrong_arrays_are_refused(tmp_path: Path):
    path = tmp_path / "train.npz"
    save_arrays(path, {"images": np.zeros((4, 28, 28), np.uint8), "labels": np.zeros(4)})
    with pytest.raises(AelabError, match=whole(f"{path}: missing arrays ['is_anomaly']; {FIX}")):
        digits.load(path, digits.SplitSet, FIX)
    save_arrays(
        path, {"images": np.zeros((4, 784)), "labels": np.zeros(4), "is_anomaly": np.zeros(4)}
    )
    expected = f"{path}: images are float64 (4, 784), expected uint8 (4, 28, 28); {FIX}"
    with pytest.raises(AelabError, match=whole(expected)):
        digits.load(path, digits.SplitSet, FIX)


def test_pickled_objects_are_not_loaded(tmp_path: Path):
    path = tmp_path / "evil.npz"
    np.savez(path, images=np.array([{"code": "x"}], dtype=object))
    reason = "Object arrays cannot be loaded when allow_pickle=False"
    with pytest.raises(AelabError, match=whole(f"{path}: unreadable ({reason}); {FIX}")):
        load_arrays(path, ("images",), FIX)
