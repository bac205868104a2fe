"""The team stack for real (stack): PostgreSQL, SeaweedFS's S3 and `mlflow server` on
127.0.0.1, started once for this module on free ports in a temporary folder, as `make stack`
starts it, and stopped at the end. The command line: `up` again, a taken port, a start that
fails, `down` and `up`. The log step fills the server and its models land in S3; DVC
round-trips through S3; either server stopped is one error line and loses nothing; two
clones share an experiment through a git remote, S3 and the server.

Every server requires the stack's credentials, which the tests' clients get as
`source .stack/env` gives them to a shell. Another local user (MALLORY, through a uid change)
tries SeaweedFS's own doors beside its S3 gateway, and gets through none. Skipping is not
passing: without PostgreSQL or SeaweedFS these tests fail and say why.
Each test that stops a component starts it again, whatever happens, for the tests after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path

import numpy as np
import optuna
import psycopg
import pytest
import yaml
from dvc.repo import Repo
from helpers import (
    PROJECT_ROOT,
    command_env,
    commit,
    free_port_block,
    run,
    set_params,
    variant_names,
    wait_until,
)
from mlflow import MlflowClient
from test_tracking import check_logged_models, check_variant_runs, runs_by_name

from aelab.core import paths
from aelab.tracking.integrity import CONTENT
from aelab.tracking.store import describe_failure
from stack import seaweedfs
from stack import supervisor as team

# One worker runs them all, so that the module's one stack serves every test (make test-all
# passes --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stack")]


PORTS = 10  # a stack's: PostgreSQL, S3, MLflow, then SeaweedFS's seven
MALLORY = "nobody"  # another local user, without the stack's credentials
TARGET = "mallory-target"  # her bucket to attack: the other tests' buckets stay whole


@contextmanager
def reachable_folder() -> Iterator[Path]:
    """A folder for a stack, deleted afterwards. Not under pytest's tmp_path, which is
    private to root: PostgreSQL runs as the postgres user, who must reach it."""
    folder = Path(tempfile.mkdtemp(prefix="aelab-stack-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def listening(port: int) -> bool:
    """Whether a server takes connections on `port` (binding it may fail for another
    minute after: the closed connections' TIME_WAIT)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def port_options(first: int) -> list[str]:
    """The command line's options for a stack on the PORTS ports from `first`."""
    return ["--postgres-port", str(first), "--s3-port", str(first + 1),
            "--mlflow-port", str(first + 2), "--weed-port", str(first + 3)]  # fmt: skip


def mallory_prefix() -> list[str] | None:
    """What runs a command as MALLORY: runuser as root, else passwordless sudo; None if
    neither can."""
    if os.geteuid() == 0:
        return ["runuser", "-u", MALLORY, "--"]
    sudo = ["sudo", "-n", "-u", MALLORY, "--"]
    allowed = shutil.which("sudo") and subprocess.run([*sudo, "true"], capture_output=True)
    return sudo if allowed and allowed.returncode == 0 else None


def tmp_socket_names(stack: team.Stack) -> list[Path]:
    """The Unix sockets a `weed server` of this stack's ports makes in /tmp, under fixed
    names: its filer's and S3's, and one for each gRPC server."""
    ports = stack.weed_ports()
    grpc = [f"{name.removesuffix('.grpc')}-grpc-{port}" for name, port in ports.items()
            if name.endswith(".grpc")]  # fmt: skip
    names = [f"filer-{ports['filer']}", f"s3-{ports['s3']}", *grpc]
    return [Path(f"/tmp/seaweedfs-{name}.sock") for name in names]


@contextmanager
def squatted(names: list[Path]) -> Iterator[None]:
    """A folder, not empty, at each of `names`, made by MALLORY (by this user if it cannot
    act as her: a folder that is not empty blocks a socket whoever made it)."""
    prefix = mallory_prefix() or []
    subprocess.run([*prefix, "mkdir", "-p", *(str(name / "mallory") for name in names)],
                   check=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run([*prefix, "rm", "-rf", *map(str, names)], check=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[team.Stack]:
    """One stack for the module (every stack test runs on one worker, xdist_group), on free
    ports, started as `make stack` starts it: by a command that exits, so that no server is
    a child of this process (whose zombies a stop from another process would wait for).
    MALLORY has taken every name in /tmp that SeaweedFS's sockets had before it starts.
    Stopped when the module's tests end, beside the other worker's tests, not at the
    session's end, where SeaweedFS's filer's 15 s drain would be the run's last seconds."""
    with reachable_folder() as folder:
        first = free_port_block(PORTS)
        started = team.Stack(folder, postgres_port=first, s3_port=first + 1,
                             mlflow_port=first + 2, weed_port=first + 3)  # fmt: skip
        try:
            with squatted(tmp_socket_names(started)), pytest.MonkeyPatch.context() as patch:
                up_again(started, *port_options(first))
                # What `source .stack/env` gives a shell: every client below is the stack's user.
                for name, value in started.client_env().items():
                    patch.setenv(name, value)
                yield started
        finally:
            team.down(started)


def up_again(stack: team.Stack, *options: str) -> None:
    """`make stack`: starts what is not running."""
    done = stack_command("up", "--folder", str(stack.folder), *options, project=stack.folder)
    if done.returncode != 0:
        pytest.fail(f"the team stack did not start: {done.stderr.strip()}")
    print(done.stdout)


def remote_url(name: str) -> str:
    """A path of its own in the DVC bucket for each test: a push must not find its files
    already there from another test."""
    return f"s3://{team.DVC_BUCKET}/{name}"


def key_prefix(url: str) -> str:
    """The key prefix in its bucket of an s3:// URL: s3://bucket/a/b -> a/b."""
    return url.removeprefix("s3://").split("/", 1)[1]


def log(project: Path, stack: team.Stack, check: bool = True) -> subprocess.CompletedProcess:
    """The log step (`aelab log`), into the stack's server."""
    return run(["python", "-m", "aelab.cli", "log"], cwd=project, check=check,
               env={"MLFLOW_TRACKING_URI": stack.tracking_uri})  # fmt: skip


def bucket_keys(stack: team.Stack, bucket: str, prefix: str = "") -> set[str]:
    pages = team.s3_client(stack).get_paginator("list_objects_v2")
    return {item["Key"] for page in pages.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])}  # fmt: skip


def dvc_outputs(project: Path) -> dict[str, str]:
    """The SHA-256 of every file of every output of the project's stages and .dvc files, by
    path: what DVC must bring back. DVC's own list, so new stages count by themselves
    (dvc.lock may keep entries of stages that are gone)."""
    with Repo(str(project)) as repo:
        outs = [Path(out.fs_path) for out in repo.index.outs]
    found = {}
    for path in outs:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        assert files, f"{path} is missing"
        found |= {str(f.relative_to(project)): sha256(f) for f in files}
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def fresh_clone(source: Path, stack: team.Stack, url: str, folder: Path) -> Path:
    """`git clone` of `source` with the stack's S3 remote, and `dvc pull`: a second machine."""
    run(["git", "clone", "-q", str(source), str(folder)], cwd=folder.parent)
    team.configure_dvc_remote(folder, stack, url)
    run(["dvc", "pull"], cwd=folder)
    return folder


def assert_dvc_is_clean(project: Path) -> None:
    assert json.loads(run(["dvc", "status", "--json"], cwd=project).stdout) == {}


def stack_command(*args: str, project: Path, env: dict[str, str] | None = None):
    """`python -m stack ARGS` as `make stack` runs it, from the project root, with --project
    `project` (a folder without .dvc: no DVC remote is set)."""
    return run(["python", "-m", "stack", *args, "--project", str(project)], cwd=PROJECT_ROOT,
               check=False, env=env)  # fmt: skip


def states(status: subprocess.CompletedProcess) -> list[list[str]]:
    """`python -m stack status`'s lines as [component, running|stopped]."""
    return [line.split()[:2] for line in status.stdout.splitlines()]


def every_component(state: str) -> list[list[str]]:
    return [[name, state] for name in team.COMPONENTS]


def test_up_again_says_so_and_status_lists_every_component_running(stack, tmp_path: Path):
    again = stack_command("up", "--folder", str(stack.folder), project=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "the stack is already up" in again.stdout
    status = stack_command("status", "--folder", str(stack.folder), project=tmp_path)
    assert status.returncode == 0
    assert states(status) == every_component("running")


def secret_values(stack: team.Stack) -> list[str]:
    return list(asdict(stack.credentials()).values())


def test_every_server_refuses_a_client_without_the_stacks_credentials(stack):
    """PostgreSQL wants a password, and its role `aelab` is no superuser; S3 and SeaweedFS's
    filer refuse unsigned requests; MLflow refuses a request without its user. Each secret
    is in files of mode 0600 only, never on a process's command line."""
    database = {"host": "127.0.0.1", "port": stack.postgres_port, "dbname": "mlflow",
                "connect_timeout": 5}  # fmt: skip
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**database, user="aelab", passfile=os.devnull)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**database, user="postgres", passfile=os.devnull)
    connection = psycopg.connect(**database, user="aelab")  # PGPASSFILE: the stack's file
    with connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("COPY (SELECT 1) TO PROGRAM 'id'")

    for method, url in [("PUT", f"{stack.s3_endpoint}/{team.ARTIFACT_BUCKET}/planted.py"),
                        ("DELETE", f"{stack.s3_endpoint}/{team.ARTIFACT_BUCKET}/x"),
                        ("PUT", f"http://127.0.0.1:{stack.weed_ports()['filer']}/buckets/"
                                f"{team.ARTIFACT_BUCKET}/planted.py"),
                        ("PUT", f"{stack.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/"
                                "planted.py"),
                        ("GET", f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search"
                                "?max_results=1")]:  # fmt: skip
        request = urllib.request.Request(url, data=b"x" if method == "PUT" else None,
                                         method=method)  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (401, 403), (method, url)

    # Every file but the servers' data (a volume of SeaweedFS is 1 GiB): their logs too.
    data = (stack.folder / "seaweedfs", stack.folder / "postgresql" / "data")
    files = [path for path in stack.folder.rglob("*")
             if path.is_file() and not path.is_relative_to(data[0])
             and not path.is_relative_to(data[1])]  # fmt: skip
    for value in secret_values(stack):
        holders = [path for path in files if value.encode() in path.read_bytes()]
        assert holders and all(path.stat().st_mode & 0o777 == 0o600 for path in holders)
    command_lines = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes()
                              for pid in os.listdir("/proc") if pid.isdigit()
                              if Path(f"/proc/{pid}/cmdline").exists())  # fmt: skip
    assert not [v for v in secret_values(stack) if v.encode() in command_lines]


# Another local user against SeaweedFS (docs/team.md's threat model): what she tried on a
# stack before it was locked, each of which worked then.

Mallory = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def mallory() -> Iterator[Mallory]:
    """Runs a command as MALLORY, in a home of hers, with her own copy of `weed` and a file
    to plant (tools/), and nothing of the stack's: no environment, no configuration."""
    prefix = mallory_prefix()
    if prefix is None:
        pytest.fail(f"acting as another local user ({MALLORY}) needs root or passwordless sudo")
    tools = Path(tempfile.mkdtemp(prefix="aelab-mallory-"))
    tools.chmod(0o755)
    shutil.copy(team.installed("weed"), tools / "weed")
    (tools / "planted.py").write_text("print('mallory was here')\n")
    home = subprocess.run([*prefix, "mktemp", "-d"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip

    def run_as_mallory(*args: str, input: str | None = None,
                       timeout: float = 30) -> subprocess.CompletedProcess:  # fmt: skip
        command = [*prefix, "env", "-i", f"HOME={home}", f"PATH={tools}:/usr/bin:/bin", *args]
        process = subprocess.Popen(command, cwd="/", stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)  # fmt: skip
        try:
            out, err = process.communicate(input, timeout=timeout)
            return subprocess.CompletedProcess(command, process.returncode, out, err)
        except subprocess.TimeoutExpired:  # weed shell waits for a master forever
            # Her process too, not only the uid change above it (which would leave it
            # running): everything in the command's session, killed as her.
            subprocess.run([*prefix, "pkill", "-KILL", "-s", str(process.pid)], check=False)
            out, err = process.communicate()
            return subprocess.CompletedProcess(command, None, out, err)

    run_as_mallory.tools = tools
    try:
        yield run_as_mallory
    finally:
        subprocess.run([*prefix, "rm", "-rf", home])
        shutil.rmtree(tools)


def put_in_target(stack: team.Stack, key: str, body: bytes) -> None:
    client = team.s3_client(stack)
    with suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=TARGET)
    client.put_object(Bucket=TARGET, Key=key, Body=body)


@pytest.fixture(scope="module")
def target(stack) -> dict[str, str]:
    """An object of the stack's user in TARGET, and its file id on the volume server, as
    the stack's user finds it: with `weed shell` and the stack's configuration."""
    body = b"the stack's user's bytes"
    put_in_target(stack, "probe.txt", body)
    shown = owner_weed_shell(stack, f"fs.meta.cat /buckets/{TARGET}/probe.txt")
    found = re.search(r'"fileId":\s*"([^"]+)"', shown.stdout)
    assert found, shown.stdout + shown.stderr
    return {"key": "probe.txt", "body": body.decode(), "fid": found.group(1)}


def weed_addresses(stack: team.Stack) -> list[str]:
    ports = stack.weed_ports()
    return [f"-master=127.0.0.1:{ports['master']}.{ports['master.grpc']}",
            f"-filer=127.0.0.1:{ports['filer']}.{ports['filer.grpc']}"]  # fmt: skip


def owner_weed_shell(stack: team.Stack, commands: str) -> subprocess.CompletedProcess:
    """`weed shell` as the stack's user runs it (docs/team.md): with its configuration."""
    weed = team.installed("weed")
    return subprocess.run([weed, f"-config_dir={stack.secrets}", "shell",
                           *weed_addresses(stack)], input=commands, capture_output=True,
                          text=True, timeout=60, cwd="/")  # fmt: skip


def mallory_curl(mallory: Mallory, url: str, *options: str) -> tuple[int | None, str]:
    """Her request: the HTTP status (None: no HTTP answer) and the whole answer."""
    answer = mallory("curl", "-s", "-i", "-k", "--max-time", "10", *options, url).stdout
    status = re.match(r"HTTP/\S+ (\d+)", answer)
    return (int(status.group(1)) if status else None), answer


def object_body(stack: team.Stack, key: str) -> bytes | None:
    """The bytes of `key` in TARGET, through S3; None when it is gone or unreadable."""
    client = team.s3_client(stack)
    try:
        return client.get_object(Bucket=TARGET, Key=key)["Body"].read()
    except client.exceptions.ClientError:
        return None


def test_another_user_gets_no_token_and_no_write_from_the_master(stack, mallory, target):
    """The master's HTTP API once gave anyone a write token for a file id (`/dir/lookup`)
    or a new one (`/dir/assign`), stored files (`/submit`) and deleted buckets
    (`/col/delete`). Over HTTP or HTTPS, without the stack's certificate, it answers none
    of that; the volume server takes no write without a token, and her target is whole."""
    ports = stack.weed_ports()
    master, volume = ports["master"], ports["volume"]
    planted = f"file=@{mallory.tools / 'planted.py'}"
    token = ""
    for scheme in ("http", "https"):
        for path, options in [(f"/dir/lookup?fileId={target['fid']}", ()),
                              ("/dir/assign", ()),
                              (f"/col/delete?collection={TARGET}", ()),
                              ("/submit", ("-F", planted))]:  # fmt: skip
            status, answer = mallory_curl(mallory, f"{scheme}://127.0.0.1:{master}{path}",
                                          *options)  # fmt: skip
            token = token or "".join(re.findall(r"(?im)^authorization: (.*?)\r?$", answer))
            assert status is None or status >= 400, (scheme, path, answer)
        assert not token, (scheme, token)
    status, answer = mallory_curl(mallory, f"http://127.0.0.1:{volume}/{target['fid']}",
                                  "-F", planted, "-H", f"Authorization: {token}")  # fmt: skip
    assert status == 401, answer
    assert object_body(stack, target["key"]) == target["body"].encode()


def test_another_user_runs_no_weed_shell_and_no_filer_copy(stack, mallory, target):
    """`weed shell` (fs.rm, collection.delete) and `weed filer.copy` once worked for anyone
    over gRPC. Every gRPC port and the master's HTTP now want the stack's certificate:
    her copy is refused, her shell never reaches the master, nothing changes."""
    ports = stack.weed_ports()
    filer = f"127.0.0.1:{ports['filer']}.{ports['filer.grpc']}"
    copied = mallory("weed", "filer.copy", str(mallory.tools / "planted.py"),
                     f"http://{filer}/buckets/{TARGET}/")  # fmt: skip
    commands = [f"fs.rm /buckets/{TARGET}/{target['key']}", "lock",
                f"collection.delete -collection={TARGET} -apply", "unlock"]  # fmt: skip
    shell = mallory("weed", "shell", *weed_addresses(stack), input="\n".join(commands) + "\n",
                    timeout=8)  # fmt: skip
    assert "planted.py" not in bucket_keys(stack, TARGET), copied
    assert object_body(stack, target["key"]) == target["body"].encode(), shell
    collections = owner_weed_shell(stack, "collection.list").stdout
    assert f'collection:"{TARGET}"' in collections, (collections, shell)
    assert "error reading server preface" in copied.stdout + copied.stderr, copied
    grpc = {name: port for name, port in ports.items() if name.endswith(".grpc")}
    assert [name for name, port in {**grpc, "master": ports["master"]}.items()
            if not seaweedfs.refusing("127.0.0.1", port, stack.secrets)] == []  # fmt: skip


def test_another_user_cannot_drive_supervisord(stack, mallory):
    """supervisord's control socket sits in a 0700 folder, is 0700 itself and wants the
    stack's own user and password: she cannot connect to it, and the stack's user without
    the password is refused (401). Everything still runs."""
    control = stack.folder / "supervisor" / "supervisord.sock"
    call = ["--unix-socket", str(control), "-H", "Content-Type: text/xml", "-d",
            "<?xml version='1.0'?><methodCall><methodName>supervisor.getAllProcessInfo"
            "</methodName></methodCall>"]  # fmt: skip
    status, answer = mallory_curl(mallory, "http://localhost/RPC2", *call)
    assert status is None, answer
    assert mallory("ls", str(control.parent)).returncode != 0
    owner = subprocess.run(["curl", "-s", "-i", "--max-time", "10", *call,
                            "http://localhost/RPC2"], capture_output=True, text=True)  # fmt: skip
    assert re.match(r"HTTP/\S+ 401", owner.stdout), owner.stdout
    assert control.stat().st_mode & 0o777 == 0o700
    assert team.status(stack) == dict.fromkeys(team.COMPONENTS, True)


def test_another_user_reads_no_data_file(stack, mallory):
    """SeaweedFS's volumes (.dat: every object's bytes; .idx: their file ids) were 0644 in a
    0755 folder. Now it and all in it are its user's alone: she cannot list or read them.
    (SeaweedFS makes a new volume's .vif, its version and settings, 0644 whatever the
    umask: the folder keeps it.)"""
    secret = b"bytes for the stack's user only"
    put_in_target(stack, "secret.txt", secret)
    data = stack.folder / "seaweedfs"
    volumes = sorted(path for path in data.iterdir() if path.suffix in (".dat", ".idx"))
    assert any(secret in path.read_bytes() for path in volumes)
    for path in [data, *volumes]:
        read = mallory("ls" if path.is_dir() else "cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr, (path, read)
    loose = [path for path in [data, *data.rglob("*")]
             if path.stat().st_mode & 0o077 and path.suffix != ".vif"]  # fmt: skip
    assert loose == []


def test_names_in_tmp_block_nothing_and_sockets_stay_in_the_stack_folder(stack):
    """MALLORY made a folder at each name that SeaweedFS's Unix sockets had in /tmp before
    the session's stack started (the fixture): once that blocked `make stack`. The stack
    runs; its only sockets are the filer's and S3's, in its own 0700 folder, its user's
    alone; and /tmp has nothing of it."""
    squats = tmp_socket_names(stack)
    assert all((name / "mallory").is_dir() for name in squats)  # hers, untouched
    assert team.status(stack) == dict.fromkeys(team.COMPONENTS, True)
    data = stack.folder / "seaweedfs"
    sockets = {path.name: path.stat().st_mode & 0o777 for path in data.iterdir()
               if path.is_socket()}  # fmt: skip
    assert sockets == {"filer.sock": 0o700, "s3.sock": 0o700}
    assert sorted(in_tmp(stack)) == sorted(squats)


def in_tmp(stack: team.Stack) -> list[Path]:
    """What in /tmp is named like a socket of SeaweedFS on one of the stack's ports."""
    ports = {str(port) for port in stack.weed_ports().values()}
    return [path for path in Path("/tmp").glob("seaweedfs-*.sock")
            if path.name.removesuffix(".sock").rsplit("-", 1)[-1] in ports]  # fmt: skip


def test_a_stack_made_before_credentials_is_refused_in_one_line(tmp_path: Path):
    cluster = tmp_path / "old" / "postgresql" / "data"
    cluster.mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("15\n")
    first = free_port_block(PORTS)
    failed = stack_command("up", "--folder", str(tmp_path / "old"), *port_options(first),
                           project=tmp_path)  # fmt: skip
    assert failed.returncode == 1
    (line,) = failed.stderr.splitlines()
    assert line.startswith(f"error: the stack in {tmp_path / 'old'} has no credentials"), line


def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path: Path):
    first = free_port_block(PORTS)
    folder = tmp_path / "stack"
    with socket.create_server(("127.0.0.1", first + 2)):  # another program on MLflow's port
        failed = stack_command("up", "--folder", str(folder), *port_options(first),
                               project=tmp_path)  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        f"error: port {first + 2} on 127.0.0.1, for mlflow, is in use by another program; "
        "stop it or choose other ports (--help)"
    ]
    assert stack_command("status", "--folder", str(folder), project=tmp_path).returncode == 3
    assert not folder.exists()


def test_a_start_that_fails_is_one_line_with_its_log_and_leaves_nothing_running(tmp_path: Path):
    """An mlflow server that cannot import mlflow exits at once, after PostgreSQL and
    SeaweedFS have started: `up` names it with its log's last line and stops the other two.
    Their data stays."""
    broken = tmp_path / "broken" / "mlflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("a broken mlflow, for this test")')
    first = free_port_block(PORTS)
    with reachable_folder() as folder:
        options = ["--folder", str(folder), *port_options(first)]
        failed = stack_command("up", *options, project=tmp_path,
                               env={"PYTHONPATH": str(broken.parent)})  # fmt: skip
        assert failed.returncode == 1
        (line,) = failed.stderr.splitlines()
        assert line.startswith("error: mlflow exited at start: ImportError: a broken mlflow"), line
        assert f"(log: {folder / 'mlflow.log'})" in line
        status = stack_command("status", "--folder", str(folder), project=tmp_path)
        assert (status.returncode, states(status)) == (3, every_component("stopped"))
        assert not any(listening(port) for port in range(first, first + PORTS))
        assert (folder / "postgresql" / "data" / "PG_VERSION").exists()


def test_the_log_step_fails_in_one_line_while_the_server_is_down_then_fills_it_once(
    small: Path, stack
):
    """A reproduced workspace pointed at the stack's server. With the server stopped, `aelab
    log` (the log stage's command) exits 1 with describe_failure's one line and leaves
    neither its output (reports/logged.json) nor anything in the server. Once it is back,
    two `aelab log` at once give it every run once, no version registered twice, and each
    model's files in the artifact bucket; nothing goes to a local store."""
    (small / "mlflow.db").unlink()
    (small / paths.LOGGED).unlink()
    team.stop(stack, "mlflow")
    try:
        failed = log(small, stack, check=False)
    finally:
        up_again(stack)
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [f"error: {describe_failure(stack.tracking_uri, refused)}"]
    assert not (small / paths.LOGGED).exists()
    client = MlflowClient(stack.tracking_uri)
    assert client.get_experiment_by_name("aelab") is None  # nothing half-logged

    env = command_env(small, MLFLOW_TRACKING_URI=stack.tracking_uri)
    processes = [subprocess.Popen(["python", "-m", "aelab.cli", "log"], cwd=small, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert (small / paths.LOGGED).exists()
    assert not (small / "mlflow.db").exists()  # everything went to the server
    runs = runs_by_name(stack.tracking_uri, "aelab")
    assert {name: len(found) for name, found in runs.items()} == {
        name: 1 for name in [*variant_names(small), "pixels"]
    }
    assert len(runs_by_name(stack.tracking_uri, "aelab-data")["data"]) == 1
    check_variant_runs(small, stack.tracking_uri)
    check_logged_models(small, stack.tracking_uri, variant_names(small), "mlflow-artifacts:/")
    for name in ("aelab-anomaly", "aelab-encoder"):
        versions = client.search_model_versions(f"name = '{name}'")
        contents = [version.tags[CONTENT] for version in versions]
        assert len(set(contents)) == len(contents), name

    experiment = client.get_experiment_by_name("aelab").experiment_id
    keys = bucket_keys(stack, team.ARTIFACT_BUCKET)
    models = client.search_logged_models([experiment])
    assert models
    for model in models:  # mlflow-artifacts:/<path> is s3://aelab-mlflow/artifacts/<path>
        path = model.artifact_location.removeprefix("mlflow-artifacts:").lstrip("/")
        assert f"{key_prefix(team.ARTIFACTS_URL)}/{path}/MLmodel" in keys, model.name


def started(args: list[str], cwd: Path) -> subprocess.Popen:
    """A command in the background, in the environment helpers.run gives."""
    return subprocess.Popen(args, cwd=cwd, env=command_env(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_upload(stack: team.Stack, key: str, push: subprocess.Popen) -> None:
    """Until S3 has a multipart upload of `key` under way: the push is mid-file."""
    client = team.s3_client(stack)

    def under_way() -> bool:
        if push.poll() is not None:
            pytest.fail(f"`dvc push` ended ({push.returncode}) before an upload of {key}")
        uploads = client.list_multipart_uploads(Bucket=team.DVC_BUCKET).get("Uploads", [])
        return any(upload["Key"] == key for upload in uploads)

    wait_until(under_way, 120, f"a multipart upload of {key} by `dvc push`")


def test_s3_stopped_during_a_push_is_one_error_line_and_a_later_push_round_trips(
    small: Path, stack, tmp_path: Path
):
    """A 128 MiB DVC-tracked file beside the pipeline's outputs takes seconds to upload;
    SeaweedFS is stopped as `make stack-down` stops it once that file's multipart upload is
    under way, so the stop lands during the push. DVC says the push failed; once S3 is back,
    the push completes and a fresh clone pulls every output, the same bytes."""
    url = remote_url("interrupted")
    team.configure_dvc_remote(small, stack, url)
    big = small / "extra" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(np.random.default_rng(0).bytes(128 * 2**20))
    run(["dvc", "add", "extra/big.bin"], cwd=small)
    commit(small)
    md5 = yaml.safe_load((small / "extra/big.bin.dvc").read_text())["outs"][0]["md5"]
    key = f"{key_prefix(url)}/files/md5/{md5[:2]}/{md5[2:]}"  # where DVC 3 puts it

    push = started(["dvc", "push"], small)
    try:
        wait_for_upload(stack, key, push)
        team.stop(stack, "seaweedfs")
        _, stderr = push.communicate(timeout=300)
        # `make stack-down` leaves no socket behind, in its folder or in /tmp (but MALLORY's).
        sockets = [path for path in (stack.folder / "seaweedfs").iterdir() if path.is_socket()]
        assert (sockets, sorted(in_tmp(stack))) == ([], sorted(tmp_socket_names(stack)))
    finally:
        push.kill()
        up_again(stack)
    assert push.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert "ERROR: failed to push data to the cloud" in "\n".join(errors), stderr
    assert key not in bucket_keys(stack, team.DVC_BUCKET, key)  # it stopped mid-file

    run(["dvc", "push"], cwd=small)
    assert key in bucket_keys(stack, team.DVC_BUCKET, key)
    clone = fresh_clone(small, stack, url, tmp_path / "clone")
    assert_dvc_is_clean(clone)
    assert dvc_outputs(clone) == dvc_outputs(small)


def s3_healthy(stack: team.Stack) -> bool:
    with suppress(OSError), urllib.request.urlopen(f"{stack.s3_endpoint}/healthz") as answer:
        return answer.status == 200
    return False


def test_a_server_that_dies_is_restarted_by_supervisord(stack):
    """supervisord restarts a server that exits after it started: SeaweedFS's S3 gateway,
    killed, comes back by itself, found through `supervisorctl` as docs/team.md shows it,
    and serves the buckets again."""
    control = [team.installed("supervisorctl"), "-c",
               str(stack.folder / "supervisor" / "supervisord.conf")]  # fmt: skip

    def s3_pid() -> int:
        shown = subprocess.run([*control, "pid", "seaweedfs:seaweedfs-s3"], capture_output=True,
                               text=True)  # fmt: skip
        return int(shown.stdout) if shown.stdout.strip().isdigit() else 0

    killed = s3_pid()
    assert killed
    try:
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: s3_pid() not in (0, killed), 60, "a new S3 gateway")
        wait_until(lambda: s3_healthy(stack), 60, "S3 answering again")
    finally:
        up_again(stack)
    assert team.status(stack) == dict.fromkeys(team.COMPONENTS, True)
    assert {team.ARTIFACT_BUCKET, team.DVC_BUCKET} <= {
        bucket["Name"] for bucket in team.s3_client(stack).list_buckets()["Buckets"]
    }


def numbers_of(metrics: dict[str, dict]) -> dict[str, dict]:
    """The metrics as `dvc exp show` gives them: without the nulls (e.g. no `recon` score
    for the pixel baseline)."""
    return {name: {k: v for k, v in values.items() if v is not None}
            for name, values in metrics.items()}  # fmt: skip


def test_two_machines_share_an_experiment_through_git_s3_and_the_server(
    small: Path, stack, tmp_path: Path
):
    """Machine A (the reproduced project) runs an experiment logging to the server and
    pushes it: git refs to the team's bare repository, outputs to S3. Machine B, a fresh
    clone, pulls it, shows A's metrics and checks out A's models byte for byte."""
    remote, url = tmp_path / "team.git", remote_url("two-machines")
    machine_a = small
    set_params(machine_a, tracking__experiment="two-machines",
               tracking__data_experiment="two-machines-data")  # fmt: skip
    commit(machine_a)
    run(["git", "init", "-q", "--bare", str(remote)], cwd=tmp_path)
    run(["git", "remote", "add", "origin", str(remote)], cwd=machine_a)
    run(["git", "push", "-q", "origin", "HEAD"], cwd=machine_a)
    team.configure_dvc_remote(machine_a, stack, url)
    run(["dvc", "push"], cwd=machine_a)
    # An experiment that reruns the detector and the log step: another champion's score.
    run(["dvc", "exp", "run", "-n", "knn", "-S", "champions.anomaly=roc_auc_knn"],
        cwd=machine_a, env={"MLFLOW_TRACKING_URI": stack.tracking_uri})  # fmt: skip
    run(["dvc", "exp", "push", "origin", "knn"], cwd=machine_a)

    machine_b = tmp_path / "b"
    run(["git", "clone", "-q", str(remote), str(machine_b)], cwd=tmp_path)
    team.configure_dvc_remote(machine_b, stack, url)
    run(["dvc", "exp", "pull", "origin", "knn"], cwd=machine_b)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], cwd=machine_b).stdout)
    (found,) = [exp for commit_ in shown for exp in commit_.get("experiments") or []
                if exp["name"] == "knn"]  # fmt: skip
    shown_metrics = found["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    assert shown_metrics == numbers_of(json.loads((machine_a / paths.METRICS).read_text()))
    run(["dvc", "exp", "apply", "knn"], cwd=machine_b)
    run(["dvc", "pull"], cwd=machine_b)
    assert_dvc_is_clean(machine_b)
    on_a, on_b = dvc_outputs(machine_a), dvc_outputs(machine_b)
    assert {k: v for k, v in on_b.items() if k.startswith("models/")} == {
        k: v for k, v in on_a.items() if k.startswith("models/")
    }
    assert on_b == on_a

    client = MlflowClient(stack.tracking_uri)
    experiment = client.get_experiment_by_name("two-machines").experiment_id
    runs = client.search_runs([experiment], "tags.`dvc.exp_name` = 'knn'")
    assert sorted(r.info.run_name for r in runs) == sorted([*variant_names(small), "pixels"])


def test_two_processes_share_one_study_in_the_stacks_postgresql(
    workspace_template: Path, stack, tmp_path: Path
):
    """Optuna's distributed mode: two `aelab tune` at once on one study in the stack's
    database, each trial logged to the stack's server."""
    project = Path(shutil.copytree(workspace_template, tmp_path / "workspace"))
    # Trials of a second or so (each epoch's value goes to the database for the pruner):
    # long enough for both processes to take some.
    set_params(project, train__max_epochs=50, train__patience=50)
    env = {**command_env(project), "MLFLOW_TRACKING_URI": stack.tracking_uri,
           "AELAB_TUNING_STORAGE": stack.tuning_uri}  # fmt: skip
    tune = ["aelab", "tune", "ae", "--trials", "6", "--study", "shared"]
    processes = [subprocess.Popen(tune, cwd=project, env=env, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs

    study = optuna.load_study(study_name="shared", storage=stack.tuning_uri)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 6 <= len(finished) <= 7  # the last trials of both may start at once
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both worked on it
    client = MlflowClient(stack.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("aelab-tuning").experiment_id],
                              filter_string="tags.`optuna.study` = 'shared'")  # fmt: skip
    assert len(runs) == len(finished)
    assert "password" not in " ".join(outputs[0])  # nothing about credentials is printed
