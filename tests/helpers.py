"""What tests share besides fixtures: copies of the project, commands run as `make` runs
them, free ports, waits with deadlines, and local HTTP servers."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LOCALHOST = "127.0.0.1"


def method_registries() -> dict:
    """Every registry whose names params.yaml chooses, as `load_params` takes them: what
    the stages that run the methods check a params file against."""
    from aelab.analysis.clusterers import CLUSTERERS
    from aelab.analysis.samplers import SAMPLERS
    from aelab.analysis.scores import SCORES

    return {"scores": SCORES, "clusterers": CLUSTERERS, "samplers": SAMPLERS}


# The project and commands in copies of it.


def project_files() -> list[str]:
    """Files git would commit: tracked ones plus new ones that are not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [name for name in listing.stdout.splitlines() if (PROJECT_ROOT / name).is_file()]


def copy_project(folder: Path) -> Path:
    """A fresh git + DVC copy of the project in `folder`, with no outputs and no cache."""
    copy = folder / "project"
    for name in project_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(PROJECT_ROOT / name, target)
        except FileNotFoundError:  # replaced meanwhile: `make test-all` runs dvc repro beside
            continue
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    return copy


def copy_of(project: Path, folder: Path) -> Path:
    """A copy of a reproduced project, its outputs, DVC cache and MLflow store included,
    the store moved with it (relocate_store)."""
    copy = folder / "project"
    shutil.copytree(project, copy, symlinks=True)
    relocate_store(copy, project)
    return copy


def relocate_store(copy: Path, original: Path) -> None:
    """Point the copied project's SQLite store (mlflow.db) at the copy's own artifacts.
    MLflow records absolute paths, and `aelab log` refuses a store whose artifacts are in
    another project; MLflow has no command to move them, so every path is rewritten."""
    database = copy / "mlflow.db"
    if not database.exists():
        return
    old, new = str(original.resolve()), str(copy.resolve())
    with closing(sqlite3.connect(database)) as store, store:
        tables = [row[0] for row in store.execute("SELECT name FROM sqlite_master "
                                                  "WHERE type = 'table'")]  # fmt: skip
        for table in tables:
            columns = [row[1] for row in store.execute(f"PRAGMA table_info('{table}')")
                       if row[2].upper().startswith(("VARCHAR", "TEXT"))]  # fmt: skip
            for column in columns:
                store.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                              f'WHERE "{column}" LIKE ?', (old, new, f"%{old}%"))  # fmt: skip


def set_params(project: Path, **changes: object) -> None:
    """Change params.yaml keys, given as paths with '__' between the parts."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = params
        for key in parents:
            section = section[key]
        section[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def variant_names(project: Path) -> list[str]:
    return list(yaml.safe_load((project / "params.yaml").read_text())["variants"])


def command_env(cwd: Path, **extra: str) -> dict[str, str]:
    """The environment `make` gives a command: the venv's tools first on PATH, the copy's
    code, the copy's own MLflow store (unless `extra` names another), a fixed git author."""
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("MLFLOW_TRACKING_URI", "AELAB_TRACKING")}  # fmt: skip
    return {
        **inherited,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd / "src"),
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_AUTHOR_NAME": "aelab tests",
        "GIT_AUTHOR_EMAIL": "tests@aelab.invalid",
        "GIT_COMMITTER_NAME": "aelab tests",
        "GIT_COMMITTER_EMAIL": "tests@aelab.invalid",
        **extra,
    }


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command in `cwd` with command_env (plus `env`); with `check`, a failure shows
    its output."""
    result = subprocess.run(args, cwd=cwd, env=command_env(cwd, **(env or {})),
                            capture_output=True, text=True)  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def commit(project: Path) -> None:
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "test", "--allow-empty"], cwd=project)


def stages_run(dvc_output: str) -> list[str]:
    """The stages `dvc repro` ran, in order, from its output."""
    return [line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running")]


def error_lines(stderr: str) -> list[str]:
    """The `error: ...` lines of a command's standard error."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def processes_in(folder: Path) -> list[str]:
    """The command lines of the processes whose working folder is inside `folder`."""
    found = []
    for process in Path("/proc").iterdir():
        try:
            cwd = (process / "cwd").resolve(strict=True)
            cmdline = (process / "cmdline").read_bytes()
        except (OSError, RuntimeError):
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


# Ports, waits and servers on 127.0.0.1.


def free_port() -> int:
    """A port nobody listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def free_port_block(size: int) -> int:
    """The first of `size` consecutive ports that are free."""
    while True:
        first = free_port()
        if first + size < 65536 and all(port_is_free(first + i) for i in range(size)):
            return first


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               interval: float = 0.05) -> object:  # fmt: skip
    """Poll `condition` until it returns something true, and return that; past `timeout`
    seconds, fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def answers_http(url: str) -> bool:
    """Whether `url` answers 200 now."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output for failures
        pass


@contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in a thread, for the `with` block: its base URL."""
    server = http.server.ThreadingHTTPServer((LOCALHOST, 0), handler)
    server.daemon_threads = True  # a handler still sleeping does not hold the shutdown
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{LOCALHOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


# Memory.


def memory_growth(setup: str, work: str, cwd: Path) -> tuple[float, float, str]:
    """Run `setup` then `work` (Python; `work` sets `result`) in a new interpreter in `cwd`:
    how far `work` took the peak resident memory above what `setup` left (MiB), the
    process's peak over its whole life (MiB), and str(result). The peak is reset between the
    two (Linux's /proc/self/clear_refs), so imports and a loaded model are not counted."""
    child = "\n".join([
        "import re",
        setup,
        "def rss(field):",
        "    status = open('/proc/self/status').read()",
        "    return int(re.search(field + r':\\s*(\\d+) kB', status)[1]) / 1024",
        "whole_life = rss('VmHWM')",
        "open('/proc/self/clear_refs', 'w').write('5')  # the peak restarts from here",
        "before = rss('VmRSS')",
        work,
        "print(rss('VmHWM') - before, max(whole_life, rss('VmHWM')))",
        "print(result)",
    ])  # fmt: skip
    done = subprocess.run([sys.executable, "-c", child], cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    *_, peaks, result = done.stdout.rstrip("\n").rsplit("\n", 2)
    growth, peak = map(float, peaks.split())
    return growth, peak, result


def blank_idx_files(folder: Path, count: int) -> list[Path]:
    """`count` gzipped IDX files of 100,000 blank digits each, 76 KB apiece."""
    import gzip
    import struct

    content = struct.pack(">BBBBiii", 0, 0, 8, 3, 100_000, 28, 28) + bytes(100_000 * 784)
    packed = gzip.compress(content, compresslevel=9, mtime=0)
    paths = [folder / f"blank{i}-images-idx3-ubyte.gz" for i in range(count)]
    for path in paths:
        path.write_bytes(packed)
    return paths
