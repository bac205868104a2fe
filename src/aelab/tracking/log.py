"""The log step: `aelab log`, and the pipeline's last DVC stage (`python -m stages log`).

It reads the workspace's runs (aelab.tracking.workspace) and gives the MLflow store each
one it lacks (aelab.tracking.store), then writes their content keys to reports/logged.json
whether or not it logged (AELAB_TRACKING=off): DVC's record of the step must not depend on
the store. A SIGTERM or Ctrl-C ends the run being logged as FAILED (MLflow's run context).

By hand, `aelab log` first asks DVC whether the workspace is what params.yaml and the code
say: with a stage out of date (params changed, say, and not rerun), the runs would pair
params with metrics they did not make. It refuses, or with --force logs runs tagged
`aelab.stale_stages` and registers nothing. Nor does a run of the one-class benchmark
(`aelab benchmark oneclass`). As the pipeline's stage, DVC has just run every
stage before it. `dvc status` compares params.yaml only: another file given as --params
is compared with what dvc.lock says each stage ran with, and a difference is refused (or,
with --force, tagged) the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from aelab.core.errors import AelabError
from aelab.core.io import save_json
from aelab.core.params import PARAMS_FILE, Params, load_params
from aelab.core.paths import DVC_LOCK, LOGGED
from aelab.data.protocols import protocol_of
from aelab.tracking.urls import redacted
from aelab.tracking.workspace import dvc_lock_params, workspace_runs

DISABLE = "AELAB_TRACKING"  # =off: `aelab log` logs nothing
STALE = "aelab.stale_stages"  # the tag of runs logged with --force from a stale workspace
STATUS_TIMEOUT = 600  # seconds: a `dvc repro` holds the project's lock while it runs


def logging_enabled() -> bool:
    return os.environ.get(DISABLE, "on").lower() not in ("off", "0", "false", "no")


def log_workspace(root: Path, params_file: str | Path | None = None, force: bool = False) -> None:
    """Mirror the workspace of the project at `root` into the store (with the params of
    `params_file`, by default the project's params.yaml); print what it did."""
    params_file = params_file or root / PARAMS_FILE
    params = load_params(params_file)
    runs = workspace_runs(root, params)
    enabled = logging_enabled()
    not_run = params_not_run(root, params_file) if enabled else {}
    if not_run and not force:
        shown = "; ".join(f"{stage} ({change})" for stage, change in list(not_run.items())[:3])
        more = f"; and {len(not_run) - 3} more stages" if len(not_run) > 3 else ""
        raise AelabError(f"{params_file} holds other params than DVC ran these stages with "
                         f"(dvc.lock): {shown}{more}; the runs would pair them with metrics they "
                         f"did not make: log with params.yaml, or add --force (runs tagged "
                         f"{STALE}, no registry)")  # fmt: skip
    stale = stale_stages(root) if enabled else []
    if stale and not force:
        raise AelabError(f"DVC says these stages are not up to date: {', '.join(stale)} "
                         f"(the metrics are not those of params.yaml and the code); run "
                         f"`dvc repro` first, or `aelab log --force` (runs tagged {STALE}, "
                         f"no registry)")  # fmt: skip
    stale = sorted({*stale, *not_run})
    for run in runs if stale else []:
        run.tags[STALE] = ",".join(stale)
    keys = [run.key() for run in runs]
    if enabled:
        from aelab.tracking import store  # imports mlflow: only when logging

        uri, new, registry = store.log_runs(root, runs, keys, params.champions,
                                            not_registered(params, stale))  # fmt: skip
        listed = f": {', '.join(new)}" if new else ""
        print(f"log: {len(new)} new run(s) in {redacted(uri)}, {len(runs) - len(new)} already there"
              f"{listed}")  # fmt: skip
        print(*registry, sep="\n")
    else:
        print(f"log: {DISABLE}=off, nothing logged; `aelab log` logs this workspace later")
    save_json(
        root / LOGGED, {f"{r.experiment}/{r.name}": k for r, k in zip(runs, keys, strict=True)}
    )


def not_registered(params: Params, stale: list[str]) -> str | None:
    """Why the workspace's models must not compete for the registry, if they must not: its
    metrics are stale, or it is a run of the one-class benchmark, whose detectors know one
    or nine digits and whose scores do not compare with the lab's split's."""
    if stale:
        return "stale stages"
    if protocol_of(params.split.normal_digits) is not None:
        return "a one-class benchmark run"
    return None


def params_not_run(root: Path, params_file: str | Path) -> dict[str, str]:
    """The stages but `log` whose params in dvc.lock differ from `params_file`'s, each with
    its first difference (`variants.ae.lr: 0.5 here, 0.000367 in dvc.lock`). None for the
    project's own params.yaml, which `dvc status` compares, nor inside a DVC stage."""
    if os.environ.get("DVC_STAGE") or Path(params_file).resolve() == (root / PARAMS_FILE).resolve():
        return {}
    given = yaml.load(Path(params_file).read_text(), Loader=yaml.CSafeLoader)  # read already
    found = {}
    for stage, recorded in dvc_lock_params(root / DVC_LOCK).items():
        if _is_log(stage):
            continue
        changes = [change for key, value in recorded.items()
                   for change in _differences(key, value, _value_at(given, key))]  # fmt: skip
        if changes:
            found[stage] = changes[0]
    return found


MISSING = object()  # a key the params file lacks


def _value_at(params: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(params, dict) or part not in params:
            return MISSING
        params = params[part]
    return params


def _differences(key: str, recorded: Any, given: Any) -> list[str]:
    """Where `given` differs from `recorded`, down to the innermost key."""
    if isinstance(recorded, dict) and isinstance(given, dict):
        return [change for part in sorted(set(recorded) | set(given), key=str)
                for change in _differences(f"{key}.{part}", recorded.get(part, MISSING),
                                           given.get(part, MISSING))]  # fmt: skip
    if recorded == given:
        return []
    return [f"{key}: {_shown(given)} here, {_shown(recorded)} in dvc.lock"]


def _shown(value: Any) -> str:
    return "missing" if value is MISSING else json.dumps(value)


def stale_stages(root: Path) -> list[str]:
    """The stages but `log` that `dvc status` says are not up to date in the project at
    `root`; none inside a DVC stage (DVC_STAGE: it ran the stages before) or outside a DVC
    project."""
    if os.environ.get("DVC_STAGE") or not (root / "dvc.yaml").is_file():
        return []
    # Another DVC command (a second `aelab log`, a `dvc repro`) may hold the project's
    # lock; DVC alone gives up after 3 s.
    command = ["dvc", "--wait-for-lock", "status", "--json"]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True,
                              timeout=STATUS_TIMEOUT)  # fmt: skip
    except OSError as error:
        raise AelabError(f"cannot run `dvc status` ({error.strerror}): install the project "
                         f"(make install) or use --force") from None  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AelabError(
            f"`dvc status` did not finish within {STATUS_TIMEOUT} s (another DVC command "
            "holding the project's lock?); run it again once that one has finished"
        ) from None
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200]
        raise AelabError(f"`dvc status` failed ({reason}); fix it or use --force")
    changed = json.loads(done.stdout or "{}")
    return sorted(name for name in changed if not _is_log(name))


def _is_log(stage: str) -> bool:
    """Whether a stage of dvc.lock or `dvc status` is this step itself."""
    return stage.split("@")[0] == "log"
