"""The team set-up for real: the pipeline logging to an `mlflow server` on 127.0.0.1 whose
backend store is a PostgreSQL server that this module starts (Debian's packages).

Skipping is not passing: without PostgreSQL these tests fail and say why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import VENV_BIN, run
from test_tracking import check_logged_models, check_variant_runs

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed: `apt-get install postgresql` (.ci/run does)"
        )
    return found


def as_postgres_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: there, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free local port; its SQLAlchemy URI."""
    folder = Path(tempfile.mkdtemp(prefix="aelab-pg-"))  # not under pytest's root-only tmp
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(
        as_postgres_user(
            [postgres_tool("initdb"), "-D", str(data), "-U", "aelab", "-A", "trust", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    server = as_postgres_user(
        [
            postgres_tool("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
        ]
    )
    started = subprocess.run([*server, "-w", "start"], capture_output=True, text=True)
    if started.returncode != 0:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        pytest.fail(f"PostgreSQL did not start: {started.stderr}{log}")
    try:
        subprocess.run(
            [
                postgres_tool("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "aelab",
                "mlflow",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://aelab@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*server, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` over that PostgreSQL, serving artifacts from a local folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    with open(folder / "server.log", "w") as log:
        command = [
            str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", postgres,
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        uri = wait_for_health(f"http://127.0.0.1:{port}", server, folder / "server.log")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_health(uri: str, server: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 180  # the first start creates the schema
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return uri
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not start:\n{log.read_text()}")
        time.sleep(0.5)


def test_the_log_step_fills_a_postgresql_backed_mlflow_server(small: Path, mlflow_server: str):
    """A reproduced workspace pointed at a team server: `aelab log` (the log stage's
    command) gives it every run, with the models in the server's artifact store."""
    (small / "mlflow.db").unlink()
    run(["python", "-m", "aelab.cli", "log"], cwd=small, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert not (small / "mlflow.db").exists()  # everything went to the server
    check_variant_runs(small, mlflow_server)
    check_logged_models(small, mlflow_server, ["ae", "pca"], "mlflow-artifacts:/")
