"""What each metric was computed from, read from dvc.lock: the gate's provenance.

dvc.lock records the md5 of every stage's dependencies and outputs. The stage that writes
the metrics file (evaluate) reads code, params and data: its dependencies that are other
stages' outputs (data/features, data/generated, data/split). For each variant the gate
asks whether that data is byte-identical at both revisions:

- exact: yes. The metric changed only through evaluation code or params, so its
  difference carries no noise.
- paired: no, but the test digits (data/split/test.npz) are the same file, so both runs
  were scored on the same digits and only the seeds' networks differ.
- unpaired: the test digits changed too, or a revision's dvc.lock is missing or does not
  describe its metrics file (written outside `dvc repro`): nothing is known.

dvc.lock records each variant's features folder (extract@<variant>'s output) and each
split file apart, but data/generated as one folder (one `generate` stage). When a folder
differs, its per-file md5s come from its `.dir` listing in DVC's cache, if both revisions'
listings are there (this machine made or pulled both outputs); else the whole folder
counts as changed for every variant. A file belongs to a variant when a folder or file
name in its path, below the dependency, is the variant's name (data/features/dae,
data/generated/dae/seed_0.npz); the others (the split files, data/generated/real.npz) are
read for every variant and for the pixel baseline. Evaluation's own random choices
(k-means' starts, UMAP's layout) are seeded by params, so they are part of the method: a
change that moves them is judged as a change of method, exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from aelab.core import paths
from aelab.reports.experiments import tool

EXACT, PAIRED, UNPAIRED = "exact", "paired", "unpaired"
TEST_DIGITS = paths.split_file("test").as_posix()
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a lock has 1000s of lines
DEFAULT_CACHE = Path(".dvc/cache")  # DVC's, unless `dvc cache dir` moved it

Stages = dict[str, dict]  # dvc.lock's `stages:`


@dataclass(frozen=True)
class Revision:
    """One side of a comparison: its dvc.lock's stages (None: no usable lock) and the
    bytes of its metrics file."""

    stages: Stages | None
    metrics: bytes | None


@dataclass(frozen=True)
class Provenance:
    """How each variant's metrics are judged (a variant not listed: unpaired), and a
    sentence saying why nothing is known, when nothing is."""

    bases: dict[str, str]
    unknown: str = ""

    def basis(self, variant: str) -> str:
        return self.bases.get(variant, UNPAIRED)


def git_file(root: Path, rev: str, path: str) -> bytes | None:
    """The committed bytes of `path` (relative to the project root) at `rev`, as they are
    (DVC's md5 is of the bytes); None when the revision has no such file."""
    result = tool(root, ["git", "show", f"{rev}:./{path}"], text=False)
    return result.stdout if result.returncode == 0 else None


def workspace_file(root: Path, path: str) -> bytes | None:
    try:
        return (root / path).read_bytes()
    except OSError:
        return None


def read_stages(text: bytes | None) -> Stages | None:
    """dvc.lock's stages (schema 2.0: DVC 2 and 3); None for a missing or unreadable lock."""
    try:
        lock = yaml.load(text, Loader=LOADER) if text is not None else None
    except yaml.YAMLError:
        return None
    stages = lock.get("stages") if isinstance(lock, dict) else None
    return stages if isinstance(stages, dict) else None


def outputs(stages: Stages) -> dict[str, str]:
    """{path: md5} of every stage's outputs (a folder's md5 ends in `.dir`)."""
    return {out["path"]: out.get("md5") for stage in stages.values()
            for out in stage.get("outs", []) if "path" in out}  # fmt: skip


def producer(stages: Stages, path: str) -> str | None:
    """The stage whose outputs include `path`."""
    for name, stage in stages.items():
        if any(out.get("path") == path for out in stage.get("outs", [])):
            return name
    return None


def describes(revision: Revision, metrics: str) -> bool:
    """Whether the lock records the metrics file as it is: DVC's md5 of its bytes."""
    if revision.stages is None or revision.metrics is None:
        return False
    recorded = outputs(revision.stages).get(metrics)
    return recorded == hashlib.md5(revision.metrics).hexdigest()


def data_deps(stages: Stages, stage: str) -> dict[str, str]:
    """{path: md5} of the stage's dependencies that are data: another stage's output, a
    folder holding outputs, or a file inside an output folder. The rest is code."""
    made = outputs(stages)
    found = {}
    for dep in stages[stage].get("deps", []):
        path = dep.get("path", "")
        if any(_within(out, path) or _within(path, out) for out in made):
            found[path] = dep.get("md5")
    return found


def records(stages: Stages, dep: str, md5: str | None) -> dict[str, str | None]:
    """The finest md5s dvc.lock holds for a data dependency: the outputs inside it
    (data/features -> data/features/<variant>, data/split -> its three files), else the
    dependency itself."""
    inside = {path: hash_ for path, hash_ in outputs(stages).items()
              if _within(path, dep) and path != dep}  # fmt: skip
    return inside or {dep: md5}


def judge_bases(old: Revision, new: Revision, metrics: str, variants: set[str],
                listing=None) -> Provenance:  # fmt: skip
    """Exact, paired or unpaired for each variant (see the module's docstring).
    `listing(md5)`: a folder's per-file md5s from DVC's cache, or None."""
    for side, revision in (("the baseline", old), ("the workspace", new)):
        if not describes(revision, metrics):
            return Provenance({}, f"the dvc.lock of {side} does not record its {metrics} "
                                  "(none, or written outside `dvc repro`)")  # fmt: skip
    stage = producer(new.stages, metrics)
    if stage is None or producer(old.stages, metrics) != stage:
        return Provenance({}, f"the stage writing {metrics} differs between the revisions")
    changed = changed_files(old.stages, new.stages, stage, listing or _no_listing)
    same_digits = _same_output(old.stages, new.stages, TEST_DIGITS)
    bases = {}
    for variant in variants:
        reads = [path for path, dep in changed.items() if _read_by(path, dep, variant, variants)]
        bases[variant] = EXACT if not reads else PAIRED if same_digits else UNPAIRED
    return Provenance(bases)


def changed_files(old: Stages, new: Stages, stage: str, listing) -> dict[str, str]:
    """{path: the data dependency it is in} for every record of the stage's data that
    differs (or exists on one side only), as finely as the locks and the cache allow."""
    old_deps, new_deps = data_deps(old, stage), data_deps(new, stage)
    changed = {}
    for dep in old_deps.keys() | new_deps.keys():
        if dep in old_deps and old_deps[dep] == new_deps.get(dep):
            continue  # what the stage read of it is byte-identical
        before = records(old, dep, old_deps.get(dep))
        after = records(new, dep, new_deps.get(dep))
        before, after = _expand(before, after, listing)
        differing = {path for path in before.keys() | after.keys()
                     if before.get(path) != after.get(path)}  # fmt: skip
        changed |= dict.fromkeys(differing or {dep}, dep)  # unexplained: all of it changed
    return changed


def _expand(before: dict, after: dict, listing) -> tuple[dict, dict]:
    """Folders that differ, replaced by their files where both listings are at hand."""
    before, after = dict(before), dict(after)
    for path in before.keys() & after.keys():
        old_md5, new_md5 = before[path], after[path]
        if old_md5 == new_md5 or not all(str(h).endswith(".dir") for h in (old_md5, new_md5)):
            continue
        old_files, new_files = listing(old_md5), listing(new_md5)
        if old_files is None or new_files is None:
            continue
        del before[path], after[path]
        before |= {f"{path}/{name}": md5 for name, md5 in old_files.items()}
        after |= {f"{path}/{name}": md5 for name, md5 in new_files.items()}
    return before, after


def _read_by(path: str, dep: str, variant: str, variants: set[str]) -> bool:
    """Whether evaluating `variant` reads the file or folder at `path`, inside the
    dependency `dep`: it is the variant's own, or nobody's in particular (shared)."""
    owners = set(PurePosixPath(path).relative_to(dep).parts) & variants
    return not owners or variant in owners


def _same_output(old: Stages, new: Stages, path: str) -> bool:
    before, after = outputs(old).get(path), outputs(new).get(path)
    return before is not None and before == after


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _no_listing(md5: str) -> None:
    return None


def cache_listing(root: Path, cache: Path | None = None):
    """`listing(md5)`: a folder's {relpath: md5} from its `.dir` object in DVC's cache, or
    None when the cache lacks it (DVC 3 keeps it under files/md5/, DVC 2 at the top).
    Without `cache`: the .dvc/cache of the project at `root`, then, for a listing not
    there, wherever `dvc cache dir` says (a shared cache), asked once. An object is named
    by its md5, so any cache that holds it holds the right one."""
    caches: list[Path | None] = [cache] if cache is not None else [root / DEFAULT_CACHE]

    def listing(md5: str) -> dict[str, str] | None:
        found = _read_listing(caches, md5)
        if found is None and cache is None and len(caches) == 1:
            caches.append(dvc_cache(root))
            found = _read_listing(caches[1:], md5)
        return found

    return listing


def _read_listing(caches: list[Path | None], md5: str) -> dict[str, str] | None:
    name = md5.removesuffix(".dir")
    for cache in filter(None, caches):
        for folder in (cache / "files" / "md5", cache):
            try:
                entries = json.loads((folder / name[:2] / f"{name[2:]}.dir").read_text())
            except (OSError, ValueError):
                continue
            return {entry["relpath"]: entry["md5"] for entry in entries}
    return None


def dvc_cache(root: Path) -> Path | None:
    """The DVC cache folder of the project at `root` (`dvc cache dir`: it may be shared or
    configured elsewhere); None if DVC cannot say."""
    result = tool(root, ["dvc", "cache", "dir"])
    folder = result.stdout.strip()
    return Path(folder) if result.returncode == 0 and folder else None
