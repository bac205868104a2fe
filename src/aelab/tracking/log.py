"""The log step: `aelab log`, and the pipeline's last DVC stage (`python -m stages.log`).

It reads the workspace's runs (aelab.tracking.workspace) and gives the MLflow store each
one it lacks (aelab.tracking.store), then writes their content keys to reports/logged.json
whether or not it logged (AELAB_TRACKING=off): DVC's record of the step must not depend on
the store. A SIGTERM or Ctrl-C ends the run being logged as FAILED (MLflow's run context).
"""

from __future__ import annotations

import os

from aelab.core.io import save_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.core.paths import LOGGED
from aelab.tracking.workspace import workspace_runs

DISABLE = "AELAB_TRACKING"  # =off: `aelab log` logs nothing


def logging_enabled() -> bool:
    return os.environ.get(DISABLE, "on").lower() not in ("off", "0", "false", "no")


def log_workspace(params_file: str = PARAMS_FILE) -> None:
    """Mirror the workspace into the store, from the project root; print what it did."""
    params = load_params(params_file)
    runs = workspace_runs(params)
    keys = [run.key() for run in runs]
    if logging_enabled():
        from aelab.tracking import store  # imports mlflow: only when logging

        uri, new, registry = store.log_runs(runs, keys, params.champions)
        listed = f": {', '.join(new)}" if new else ""
        print(f"log: {len(new)} new run(s) in {uri}, {len(runs) - len(new)} already there"
              f"{listed}")  # fmt: skip
        print(*registry, sep="\n")
    else:
        print(f"log: {DISABLE}=off, nothing logged; `aelab log` logs this workspace later")
    save_json(LOGGED, {f"{r.experiment}/{r.name}": k for r, k in zip(runs, keys, strict=True)})
