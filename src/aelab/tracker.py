"""How stages reach MLflow: one shared logging service per tracking store.

`import mlflow` and opening an SQLite store cost about two CPU-seconds per process, and
logging a model about two more; a pipeline run starts about twenty stage processes. So
stages do not import mlflow. The first stage that tracks starts `python -m aelab.tracker`,
a service on a Unix socket that imports mlflow once, keeps the store open, and runs
`aelab.tracking`'s functions for every stage that connects; it exits after
`IDLE_SECONDS` without a connection. Each call waits for its reply, so a tracking error
still stops the stage (one line) before it writes its outputs.

    with Tracker(params.tracking.experiment, stage="train@ae") as tracker:
        run_id = tracker.call("start_run", name="ae", params={...})

This module imports nothing heavy; the service imports aelab.tracking (mlflow) only after
its socket is listening, so a stage can connect at once and go on working meanwhile.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from aelab.errors import AelabError
from aelab.io import file_sha256
from aelab.params import Params

DISABLE = "AELAB_TRACKING"  # =off: run the stages without MLflow (e.g. to time its cost)
DB_FILE = "mlflow.db"
IDLE_SECONDS = 30.0  # the service exits after this long without a connected stage
START_SECONDS = 20.0  # how long a stage waits for a new service to listen
PIXELS = "pixels"  # the baseline without a model: k-means on raw pixels
RESTART = "restart"  # what a retiring service answers a new stage


def project_root(cwd: Path | None = None) -> Path:
    """The project folder, also from inside a `dvc exp run --queue` copy.

    Queued experiments run in `<project>/.dvc/tmp/exps/<tmp>/`; their runs belong in the
    project's own store, not in a copy that DVC deletes afterwards.
    """
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else an SQLite store in the project folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / DB_FILE}"


def tracking_enabled() -> bool:
    return os.environ.get(DISABLE, "on").lower() not in ("off", "0", "false", "no")


def _git_commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


class Tracker:
    """A connection to the logging service; `call` runs one function of aelab.tracking."""

    def __init__(self, experiment: str, stage: str):
        self.experiment, self.stage = experiment, stage
        self.uri = tracking_uri()
        self._ready = False
        self._socket: socket.socket | None = None
        if tracking_enabled():
            self._connect()

    def _connect(self) -> None:
        self._socket = connect_to_service(self.uri)
        self._file = self._socket.makefile("rw", encoding="utf-8")
        # Answered once the service has connected to the store; the stage goes on meanwhile.
        self._send({
            "experiment": self.experiment, "stage": self.stage, "root": str(project_root()),
            "cwd": str(Path.cwd()),
            "exp_name": os.environ.get("DVC_EXP_NAME"), "git_commit": _git_commit(),
        })  # fmt: skip

    def call(self, function: str, **kwargs: Any) -> Any:
        """Run `aelab.tracking.<function>(session, **kwargs)` in the service; its result."""
        if self._socket is None:
            return None
        while not self._ready:
            if self._receive() == RESTART:  # its SQLite file was replaced: use a new service
                self._socket.close()
                self._connect()
            else:
                self._ready = True
        self._send({"call": function, "kwargs": kwargs})
        return self._receive()

    def run_of(self, name: str, key: str, params: Params) -> str | None:
        """The run of a variant (`key`: its weights' sha256) or of the pixel baseline (`key`:
        the test digits' sha256); a new run, tagged restored, if the store has none."""
        if name == PIXELS:
            run_params = {"kind": PIXELS, **shared_params(params, ("data", "split", "evaluate"))}
        else:
            run_params = variant_params(params, name)
        return self.call("find_run", name=name, key=key, params=run_params,
                         tags=data_tags(params), restored=name != PIXELS)  # fmt: skip

    def log_evaluation(
        self,
        results: dict[str, dict[str, float | None]],
        keys: dict[str, str],
        params: Params,
        only_missing: bool = False,
    ) -> dict[str, str | None]:
        """Each variant's (and the pixel baseline's) metrics into its run: `results` as in
        reports/metrics.json, `keys` as `run_of` takes them. Returns the run ids."""
        runs = {}
        for name, metrics in results.items():
            runs[name] = self.run_of(name, keys[name], params)
            self.call("log_metrics", run_id=runs[name], metrics=metrics, only_missing=only_missing)
        return runs

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps(message) + "\n")
            self._file.flush()
        except OSError as error:
            raise AelabError(f"{self.stage}: lost the MLflow logging service ({error})") from None

    def _receive(self) -> Any:
        line = self._file.readline()
        if not line:
            raise AelabError(
                f"{self.stage}: the MLflow logging service stopped without an answer; its log "
                f"is {service_paths(self.uri)[2]} (or set {DISABLE}=off to run untracked)"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise AelabError(reply["error"])
        return reply["result"]

    def close(self, failed: bool) -> None:
        """Disconnect; without `finish` the service marks this stage's new runs FAILED."""
        if self._socket is None:
            return
        try:
            if not failed:
                self.call("finish")
        finally:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(failed=kind is not None)


def service_paths(uri: str) -> tuple[Path, Path, Path]:
    """Socket, lock and log file of the service for `uri`.

    One service per store, Python, aelab code and MLflow settings: a changed line of aelab
    or another MLFLOW_* variable starts a new service instead of reusing a stale one.
    """
    code = sorted(Path(__file__).parent.rglob("*.py"))
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("MLFLOW_"))
    key = hashlib.sha256(
        json.dumps([uri, sys.executable, settings, [file_sha256(f) for f in code]]).encode()
    ).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"aelab-tracking-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{key}.sock", folder / f"{key}.lock", folder / f"{key}.log"


def connect_to_service(uri: str) -> socket.socket:
    """A connection to the service for `uri`, starting it if none is listening."""
    address, lock, log = service_paths(uri)
    with open(lock, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # one stage at a time may start the service
        connection = _try_connect(address)
        if connection is not None:
            return connection
        address.unlink(missing_ok=True)  # left by a service that was killed
        with open(log, "a") as log_file:
            subprocess.Popen(
                [sys.executable, "-m", "aelab.tracker", uri, str(address)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True,  # outlives this stage, and its Ctrl-C
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            connection = _try_connect(address)
            if connection is not None:
                return connection
            time.sleep(0.02)
    raise AelabError(f"the MLflow logging service for {uri} did not start; see {log}")


def _try_connect(address: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(address))
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    return connection


# The service side.


class _Service(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, uri: str):
        super().__init__(address, _StageConnection)
        self.uri = uri
        self.store: Any = None
        self.store_error: str | None = None
        self.store_ready = threading.Event()
        self.connected = 0
        self.last_seen = time.monotonic()
        self.lock = threading.Lock()
        self.retired = False

    def open_store(self) -> None:
        from aelab import tracking  # mlflow: imported now that stages can connect

        try:
            self.store = tracking.Store(self.uri)
        except Exception as error:
            self.store_error = tracking.describe_failure(self.uri, error)
        self.store_ready.set()

    def current_store(self) -> Any:
        """The open store; None if its SQLite file was deleted or replaced since it was
        opened. MLflow keeps one engine per URI in the process, so the service then retires:
        the stage starts a new one, and this one exits once its last stage is done."""
        self.store_ready.wait()
        if self.store is not None and self.store.is_stale():
            with self.lock:
                self.retired = True
                Path(self.server_address).unlink(missing_ok=True)
            return None
        return self.store

    def watch_idle(self) -> None:
        """Shut down once no stage has been connected for IDLE_SECONDS (at once, if the
        store could not be opened: the next stage tries afresh)."""
        while True:
            time.sleep(0.5)
            with self.lock:
                idle = self.connected == 0 and time.monotonic() - self.last_seen
                done = self.connected == 0 and (self.retired or self.store_error is not None)
            if done or (idle and idle > IDLE_SECONDS):
                Path(self.server_address).unlink(missing_ok=True)
                self.shutdown()
                return


class _StageConnection(socketserver.StreamRequestHandler):
    server: _Service

    def handle(self) -> None:
        with self.server.lock:
            self.server.connected += 1
        try:
            self._serve_stage()
        finally:
            with self.server.lock:
                self.server.connected -= 1
                self.server.last_seen = time.monotonic()

    def _reply(self, **message: Any) -> None:
        self.wfile.write((json.dumps(message) + "\n").encode())
        self.wfile.flush()

    def _serve_stage(self) -> None:
        from_stage = self.rfile.readline()
        if not from_stage:
            return
        store = self.server.current_store()
        if self.server.store_error:
            self._reply(error=self.server.store_error)
            return
        if store is None:
            self._reply(result=RESTART)
            return
        from aelab import tracking

        session = tracking.Session(store, **json.loads(from_stage))
        try:
            self._reply(result="ready")
            for line in self.rfile:
                message = json.loads(line)
                try:
                    result = tracking.COMMANDS[message["call"]](session, **message["kwargs"])
                except Exception as error:
                    self._reply(error=tracking.describe_failure(self.server.uri, error))
                else:
                    self._reply(result=result)
        except OSError:
            pass  # the stage went away (Ctrl-C, killed): its runs are marked below
        finally:
            session.fail_unfinished()  # a stage that ends without `finish` failed


def serve(uri: str, address: str) -> None:
    # Not the starting stage's folder: a queued experiment's copy is deleted when it ends.
    # Every path a stage sends is resolved against that stage's own folder.
    os.chdir(Path(address).parent)
    service = _Service(address, uri)  # listening from here on: stages may connect
    threading.Thread(target=service.open_store, daemon=True).start()
    threading.Thread(target=service.watch_idle, daemon=True).start()
    service.serve_forever()
    os._exit(0)  # skip the interpreter's second-long teardown of torch and SQLAlchemy


def variant_params(params: Params, name: str) -> dict[str, Any]:
    """What a variant's run shows as params: its resolved config, the data and the split."""
    return {**params.variant(name).model_dump(), **shared_params(params)}


def shared_params(params: Params, sections: tuple[str, ...] = ("data", "split")) -> dict[str, Any]:
    """The seed and the given params.yaml sections, as `section.key` params of a run."""
    flat: dict[str, Any] = {"seed": params.seed}
    for section in sections:
        for key, value in getattr(params, section).model_dump().items():
            flat[f"{section}.{key}"] = value
    return flat


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"size": 9}} -> {"train_size": 9}: nested figures as metric names."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        flat |= flatten(value, f"{name}_") if isinstance(value, dict) else {name: value}
    return flat


def data_tags(params: Params, trained_on: str = "data/split/train.npz") -> dict[str, str]:
    """The data source and the checksum of the digits the variants were trained on."""
    tags = {"data.source": params.data.source}
    if Path(trained_on).is_file():
        tags["data.sha256"] = file_sha256(trained_on)
    return tags


if __name__ == "__main__":
    serve(*sys.argv[1:3])
