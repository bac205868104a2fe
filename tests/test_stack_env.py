"""`.stack/env` (stack.supervisor.write_env), which users `source`: a stack folder's name,
whatever shell syntax it holds, is a name and nothing more."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack import supervisor as team

# Spaces, the shell's substitutions, quotes, a command separator and a new line.
NAME = "team $(touch ran-1) `touch ran-2` 'q' \"d\" ; touch ran-3\ntouch ran-4"
SHOWN = ("PGPASSFILE", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI", "AELAB_TUNING_STORAGE")


def test_sourcing_the_env_of_a_folder_named_with_shell_syntax_runs_nothing(tmp_path: Path):
    folder = tmp_path / NAME
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "mlflow-password").write_text("pass word $(touch ran-5)")
    stack = team.Stack(folder)
    env = team.write_env(stack)
    print_variables = 'source "$1" && printf "%s\\0" ' + " ".join(f'"${name}"' for name in SHOWN)
    shown = subprocess.run(["bash", "-c", print_variables, "bash", str(env)], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout.split("\0")[:-1] == [
        str(folder / "secrets" / "pgpass"),
        "pass word $(touch ran-5)",
        stack.tracking_uri,
        stack.tuning_uri,
    ]
    assert sorted(path.name for path in tmp_path.glob("ran-*")) == []
