"""Stage `log`: the workspace into the MLflow store, one run per variant and the registry's
champions (aelab.tracking.log) -> reports/logged.json, the content keys of what it holds."""

from pathlib import Path

from aelab.core.errors import run_stage
from aelab.core.paths import project_root
from aelab.tracking.log import log_workspace
from aelab.tracking.settings import quiet_mlflow


def main(root: Path | None = None) -> None:
    quiet_mlflow()  # before the log step loads MLflow, which reads its settings as it loads
    log_workspace(root or project_root())


if __name__ == "__main__":
    run_stage(main)
