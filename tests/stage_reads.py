"""What each DVC stage read and wrote while the session pipeline ran (recorded by
tests/recorder/sitecustomize.py), held to what dvc.yaml declares: every params key it used
is under one of its `params`, every project file it read is under one of its deps (or its
own outputs), every file it wrote is one of its outputs, and every data dep is read.
tests/test_stage_deps.py runs the check; code is checked by import (stage_imports.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

RECORDER = Path(__file__).resolve().parent / "recorder"
# Not data deps: the code (stage_imports.py checks it), params.yaml (the params check), and
# DVC's and git's own files.
NOT_DATA = ("src/", "stages/", "tests/", ".dvc/", ".git/", "params.yaml", ".dvcignore")
# The log step's MLflow store and its locks: outside DVC by design (docs/tracking.md).
STORE = ("mlflow.db", "mlartifacts/", ".aelab/")


@dataclass
class Record:
    """One stage's reads and writes, its processes' together."""

    params: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)


@dataclass
class Declared:
    params: list[str]
    deps: list[str]
    outs: list[str]


def recorded(folder: Path) -> dict[str, Record]:
    """The records in `folder`, by stage (`train@ae`)."""
    found: dict[str, Record] = defaultdict(Record)
    kinds = {"param": "params", "read": "reads", "write": "writes"}
    for path in folder.glob("*.jsonl"):
        stage = path.name.rsplit(".", 2)[0]
        for line in path.read_text().splitlines():
            ((kind, value),) = json.loads(line).items()
            getattr(found[stage], kinds[kind]).add(value)
    return dict(found)


def body_of(stages: dict, stage: str) -> dict:
    """A stage's definition among dvc.yaml's `stages`, a foreach stage's `do`."""
    return stages[stage].get("do", stages[stage])


def declared(stages: dict, stage: str) -> Declared:
    """A stage's params, deps and outputs (outs, metrics, plots) among dvc.yaml's `stages`,
    a foreach stage's `${key}` filled in from its name (`train@ae`)."""
    name, _, key = stage.partition("@")
    body = body_of(stages, name)
    fill = lambda entries: [_path(e).replace("${key}", key) for e in entries or []]  # noqa: E731
    outs = [*fill(body.get("outs")), *fill(body.get("metrics")), *fill(body.get("plots"))]
    return Declared(fill(body.get("params")), fill(body.get("deps")), outs)


def _path(entry: str | dict) -> str:
    """A dvc.yaml entry's path: `path` or `{path: options}`."""
    return entry if isinstance(entry, str) else next(iter(entry))


def under(path: str, entries: list[str]) -> bool:
    """Whether `path` is one of `entries` or inside one of them (keys: after a dot)."""
    return any(path == e or path.startswith(e.rstrip("/") + "/") for e in entries)


def covered(key: str, params: list[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in params)


def problems(dvc_file: Path, records: dict[str, Record]) -> list[str]:
    """One line per undeclared param, read or write, and per data dep never read."""
    found = []
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    for stage, record in sorted(records.items()):
        stated = declared(stages, stage)
        params = sorted(k for k in record.params if not covered(k, stated.params))
        if params:
            found.append(f"{stage}: reads params {params} that dvc.yaml does not list")
        data = [p for p in record.reads if not p.startswith(NOT_DATA + STORE)]
        reads = sorted(p for p in data if not under(p, stated.deps + stated.outs))
        if reads:
            found.append(f"{stage}: reads {reads}, which are not among its deps")
        writes = sorted(p for p in record.writes
                        if not p.startswith(STORE) and not under(p, stated.outs))  # fmt: skip
        if writes:
            found.append(f"{stage}: writes {writes}, which are not among its outputs")
        unread = [dep for dep in stated.deps if not dep.startswith(NOT_DATA)
                  and not any(under(p, [dep]) for p in data)]  # fmt: skip
        if unread:
            found.append(f"{stage}: depends on {unread}, which it does not read")
    return found
