"""Test-only: what each DVC stage of the session pipeline reads and writes, recorded while
it runs (conftest's `reproduced` puts this folder on PYTHONPATH, so Python imports this
module at start-up). tests/stage_reads.py holds the records to dvc.yaml's declarations.

Active only in a stage's processes (DVC sets DVC_STAGE) when AELAB_RECORD names a folder.
Each process appends one JSON line per new event to <AELAB_RECORD>/<stage>.<pid>.jsonl as
it happens, so forked workers that never run atexit handlers are recorded too:
- {"read": path} / {"write": path}: project files opened (Python's "open" audit event) or
  renamed into place (atomic writes: "os.rename", which os.replace raises too);
- {"param": key}: a params.yaml key the stage's code used, as dvc.yaml names it: a field
  read from the validated params, a whole section where the code dumps or iterates it,
  `variants` where it iterates the variants' names, and `train.<key>` for a variant's
  value that params.yaml gives in `train:` only.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

FOLDER = os.environ.get("AELAB_RECORD")
STAGE = os.environ.get("DVC_STAGE")
ROOT = os.getcwd()  # DVC runs each stage in the project root
TEMPORARY = re.compile(r"^\..*\.tmp$")  # aelab.core.io's atomic writes before their rename
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_seen: set[tuple[str, str]] = set()
_log: dict[int, object] = {}  # pid -> its open record file
_busy = False  # inside our own write: its "open" event is not the stage's


def note(kind: str, value: str) -> None:
    global _busy
    if (kind, value) in _seen or _busy:
        return
    _seen.add((kind, value))
    _busy = True
    try:
        pid = os.getpid()
        if pid not in _log:
            _log[pid] = open(  # noqa: SIM115 (kept open for the process's life)
                os.path.join(FOLDER, f"{STAGE}.{pid}.jsonl"), "a", buffering=1
            )
        _log[pid].write(json.dumps({kind: value}) + "\n")
    finally:
        _busy = False


def project_path(path: object) -> str | None:
    """`path` relative to the project root; None outside it, or a temporary file."""
    if isinstance(path, int | bytes) or path is None:
        return None
    absolute = os.path.abspath(os.fspath(path))
    if not absolute.startswith(ROOT + os.sep):
        return None
    relative = os.path.relpath(absolute, ROOT)
    parts = relative.split(os.sep)
    if any(TEMPORARY.match(part) for part in parts):
        return None
    return "/".join(parts)


def audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        found = project_path(path)
        writes = any(c in mode for c in "wax+") if mode else bool(flags & WRITE_FLAGS)
        # A read is of a file: shutil.rmtree opens folders by names relative to a folder
        # (dir_fd, which the event leaves out), which would resolve against the root.
        if found is not None and (writes or os.path.isfile(found)):
            note("write" if writes else "read", found)
    elif event == "os.rename":
        found = project_path(args[1])
        if found is not None:
            note("write", found)


# The params: each validated section knows its key path; reading a field notes it.


class Names(dict):
    """A mapping of sections (the variants) whose names, when iterated, are a read of the
    whole mapping; a lookup by name is not (that entry's fields note themselves)."""

    key = ""


def _noting_names(method):
    def wrapper(self, *args):
        note("param", self.key)
        return method(self, *args)

    return wrapper


for _method in ("__iter__", "keys", "items", "values", "__len__"):
    setattr(Names, _method, _noting_names(getattr(dict, _method)))


def record_params() -> None:
    import yaml

    from aelab.core import params as module

    section = module.Section
    keys: dict[int, tuple[object, str, set[str] | None]] = {}  # id -> (section, key, own)

    def register(value: object, key: str, own: set[str] | None) -> None:
        keys[id(value)] = (value, key, own)
        for name in type(value).model_fields:
            child = value.__dict__[name]
            if isinstance(child, section):
                register(child, f"{key}.{name}".lstrip("."), None)
            elif (
                isinstance(child, dict)
                and child
                and all(isinstance(entry, section) for entry in child.values())
            ):
                mapping = Names(child)
                mapping.key = f"{key}.{name}".lstrip(".")
                value.__dict__[name] = mapping
                raw = RAW.get(name, {}) if not key else {}
                for entry, config in dict.items(mapping):
                    given = raw.get(entry) if isinstance(raw, dict) else None
                    register(config, f"{mapping.key}.{entry}",
                             set(given) if isinstance(given, dict) else None)  # fmt: skip

    def source(value: object, field: str) -> str | None:
        """The params.yaml key of `value`'s `field`: a variant's own, or train's default."""
        found = keys.get(id(value))
        if found is None or found[0] is not value:
            return None
        _, key, own = found
        if own is not None and field not in own and key.startswith("variants."):
            return f"train.{field}"
        return f"{key}.{field}".lstrip(".")

    def whole(value: object) -> None:
        """Every key under `value`: what dumping or comparing it reads."""
        found = keys.get(id(value))
        if found is None or found[0] is not value:
            return
        for field in type(value).model_fields:
            child = value.__dict__[field]
            if isinstance(child, Names):
                note("param", child.key)
            elif isinstance(child, section):
                whole(child)
            else:
                note("param", source(value, field))

    getattribute = section.__getattribute__

    def reading(self, name):
        value = getattribute(self, name)
        if name in type(self).model_fields and not isinstance(value, section | Names):
            key = source(self, name)
            if key is not None:
                note("param", key)
        return value

    section.__getattribute__ = reading
    for method in ("model_dump", "model_dump_json", "__iter__", "__eq__"):
        original = getattr(section, method)

        def wrapper(self, *args, _original=original, **kwargs):
            whole(self)
            return _original(self, *args, **kwargs)

        setattr(section, method, wrapper)

    load = module.load_params
    RAW: dict = {}

    def load_params(path, **registries):
        params = load(path, **registries)
        RAW.clear()
        RAW.update(yaml.safe_load(Path(path).read_text()))
        register(params, "", None)
        return params

    module.load_params = load_params


if FOLDER and STAGE:
    os.makedirs(FOLDER, exist_ok=True)
    sys.addaudithook(audit)
    record_params()
