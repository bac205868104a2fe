"""Atomic, byte-stable file writes and checked reads shared by every stage.

Outputs are written to a temporary file beside the target and renamed into place, so a
crash never leaves a half-written file that DVC could accept. Temporaries are named
`.<target>.<random>.tmp`: .dvcignore hides them from DVC, and the next write of the same
target deletes those a killed process (SIGKILL, power cut) left. Archives are written
with fixed zip timestamps so the same arrays always give the same bytes (and DVC hashes).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from aelab.core.errors import AelabError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time zip can store: constant bytes


def _file_mode() -> int:
    """The mode `open()` would give a new file (mkstemp's is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", permissions: int | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`. The new file
    gets `permissions`, or the mode `open()` would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode() if permissions is None else permissions)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; on success it replaces `path`, which
    appears whole or not at all. Named like atomic_open's files, for the same reasons."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from other users
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_leftovers(path: str | Path) -> None:
    """Delete the temporary files or folders, `.<name>.<random>.tmp`, that earlier writes
    of `path` left beside it when killed before their clean-up ran. Only those of `path`:
    the random part has no dot, so `.ae.json.x1.tmp` (ae.json's) is not ae's. No other
    process writes `path` meanwhile: DVC runs one stage per output at a time."""
    path = Path(path)
    prefix = f".{path.name}."
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        if "." in leftover.name[len(prefix) : -len(".tmp")]:
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an uncompressed .npz that `np.load` reads, byte-identical per content."""
    with atomic_open(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)


def load_arrays(path: str | Path, required: tuple[str, ...], fix: str) -> dict[str, np.ndarray]:
    """Read an .npz written by `save_arrays`; a missing, corrupt or incomplete file is one error.

    `fix` tells the user how to get a good file back (usually the `dvc repro` command).
    """
    path = Path(path)
    if not path.is_file():
        raise AelabError(f"{path}: file not found; {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # zipfile, numpy and OS errors all mean "unreadable"
        raise AelabError(f"{path}: unreadable ({error}); {fix}") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise AelabError(f"{path}: missing arrays {missing}; {fix}")
    return arrays


def save_json(path: str | Path, data: object) -> None:
    """Write JSON with sorted keys and a final newline, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    with atomic_open(path, "w") as handle:
        handle.write(text)


def load_json(path: str | Path, stage: str) -> dict:
    """A JSON output of DVC stage `stage`; missing or damaged, one line naming the fix."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run `dvc repro {stage}` first") from None
    except ValueError as error:
        raise AelabError(f"{path}: not valid JSON ({error}); run `dvc repro -f {stage}`") from None


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes: how MLflow runs find the model or data they belong to."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
