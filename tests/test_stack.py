"""The team stack for real (stack): PostgreSQL, SeaweedFS's S3 and `mlflow server` on
127.0.0.1, started once for this module on free ports in a temporary folder and stopped at
the end. The log step fills the server and its models land in S3; DVC round-trips through
S3; either server stopped is one error line and loses nothing; two clones share an
experiment through a git remote, S3 and the server.

Skipping is not passing: without PostgreSQL or SeaweedFS these tests fail and say why.
Each test that stops a component starts it again, whatever happens, for the tests after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from dvc.repo import Repo
from helpers import VENV_BIN, commit, run, set_params
from mlflow import MlflowClient
from test_tracking import check_logged_models, check_variant_runs, runs_by_name, variant_names

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.tracking.store import describe_failure
from stack import supervisor as team

pytestmark = pytest.mark.slow


def free_port_block(size: int) -> int:
    """The first of `size` consecutive ports that are free on 127.0.0.1."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + size < 65536 and all(port_is_free(first + i) for i in range(size)):
            return first


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def stack() -> Iterator[team.Stack]:
    """One stack for the module. Its folder is not under pytest's tmp_path, which is private
    to root: PostgreSQL runs as the postgres user, who must reach it."""
    folder = Path(tempfile.mkdtemp(prefix="aelab-stack-"))
    folder.chmod(0o755)
    first = free_port_block(10)  # PostgreSQL, S3, MLflow, then SeaweedFS's seven
    started = team.Stack(folder, postgres_port=first, s3_port=first + 1,
                         mlflow_port=first + 2, weed_port=first + 3)  # fmt: skip
    try:
        try:
            seconds = team.up(started)
        except AelabError as error:
            pytest.fail(f"the team stack did not start: {error}")
        print("stack started in", {name: round(s, 1) for name, s in seconds.items() if s})
        yield started
    finally:
        team.down(started)
        shutil.rmtree(folder, ignore_errors=True)


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


def stack_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(["python", "-m", "stack", *args], cwd=cwd, check=False)


def test_up_again_says_so_and_status_lists_every_component_running(stack, tmp_path: Path):
    again = stack_command("up", "--folder", str(stack.folder), cwd=tmp_path)  # no DVC here
    assert again.returncode == 0, again.stderr
    assert "the stack is already up" in again.stdout
    status = stack_command("status", "--folder", str(stack.folder), cwd=tmp_path)
    assert status.returncode == 0
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        [name, "running"] for name in team.COMPONENTS
    ]


def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path: Path):
    first = free_port_block(10)
    folder = tmp_path / "stack"
    ports = ["--postgres-port", str(first), "--s3-port", str(first + 1),
             "--mlflow-port", str(first + 2), "--weed-port", str(first + 3)]  # fmt: skip
    with socket.create_server(("127.0.0.1", first + 2)):  # another program on MLflow's port
        failed = stack_command("up", "--folder", str(folder), *ports, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        f"error: port {first + 2} on 127.0.0.1, for mlflow, is in use by another program; "
        "stop it or choose other ports (--help)"
    ]
    assert stack_command("status", "--folder", str(folder), cwd=tmp_path).returncode == 3
    assert not folder.exists()


def test_the_log_step_fills_the_server_and_its_models_land_in_s3(small: Path, stack):
    """A reproduced workspace pointed at the stack's server: `aelab log` (the log stage's
    command) gives it every run, with each model's files in the artifact bucket."""
    (small / "mlflow.db").unlink()
    log(small, stack)
    assert not (small / "mlflow.db").exists()  # everything went to the server
    check_variant_runs(small, stack.tracking_uri)
    check_logged_models(small, stack.tracking_uri, variant_names(small), "mlflow-artifacts:/")

    client = MlflowClient(stack.tracking_uri)
    experiment = client.get_experiment_by_name("aelab").experiment_id
    keys = bucket_keys(stack, team.ARTIFACT_BUCKET)
    models = client.search_logged_models([experiment])
    assert models
    for model in models:  # mlflow-artifacts:/<path> is s3://aelab-mlflow/artifacts/<path>
        path = model.artifact_location.removeprefix("mlflow-artifacts:").lstrip("/")
        assert f"{key_prefix(team.ARTIFACTS_URL)}/{path}/MLmodel" in keys, model.name


def test_dvc_push_then_a_fresh_clone_pulls_the_same_bytes(small: Path, stack, tmp_path: Path):
    url = remote_url("round-trip")
    team.configure_dvc_remote(small, stack, url)
    began = time.monotonic()
    pushed = run(["dvc", "push"], cwd=small).stdout
    push_seconds = time.monotonic() - began
    began = time.monotonic()
    clone = fresh_clone(small, stack, url, tmp_path / "clone")
    clone_seconds = time.monotonic() - began
    assert_dvc_is_clean(clone)
    expected = dvc_outputs(small)
    assert dvc_outputs(clone) == expected
    size = sum((small / name).stat().st_size for name in expected) / 2**20
    print(f"{pushed.strip()}: {size:.1f} MiB pushed in {push_seconds:.1f} s, "
          f"cloned and pulled in {clone_seconds:.1f} s")  # fmt: skip


def started(args: list[str], cwd: Path) -> subprocess.Popen:
    """A command in the background, in the environment conftest's `run` gives."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_upload(stack: team.Stack, key: str, push: subprocess.Popen) -> None:
    """Until S3 has a multipart upload of `key` under way: the push is mid-file."""
    client = team.s3_client(stack)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and push.poll() is None:
        uploads = client.list_multipart_uploads(Bucket=team.DVC_BUCKET).get("Uploads", [])
        if any(upload["Key"] == key for upload in uploads):
            return
        time.sleep(0.05)
    pytest.fail(f"no upload of {key} seen while `dvc push` ran: {push.poll()=}")


def test_s3_stopped_during_a_push_is_one_error_line_and_a_later_push_completes(
    small: Path, stack, tmp_path: Path
):
    """A 128 MiB DVC-tracked file takes seconds to upload; SeaweedFS is stopped as
    `make stack-down` stops it once that file's multipart upload is under way, so the stop
    lands during the push. DVC says the push failed; once S3 is back, the push completes
    and a fresh clone pulls the same bytes."""
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
        team.stop_seaweedfs(stack)
        _, stderr = push.communicate(timeout=300)
    finally:
        push.kill()
        team.start_seaweedfs(stack)
    assert push.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert "ERROR: failed to push data to the cloud" in "\n".join(errors), stderr
    assert key not in bucket_keys(stack, team.DVC_BUCKET, key)  # it stopped mid-file

    run(["dvc", "push"], cwd=small)
    assert key in bucket_keys(stack, team.DVC_BUCKET, key)
    clone = fresh_clone(small, stack, url, tmp_path / "clone")
    assert_dvc_is_clean(clone)
    assert dvc_outputs(clone) == dvc_outputs(small)


def test_a_stopped_tracking_server_fails_the_log_step_in_one_line_and_loses_nothing(
    small: Path, stack
):
    """`aelab log` against the stopped server: exit 1, describe_failure's one line, neither
    its output (reports/logged.json) nor anything in the server. Once the server is back,
    the same command logs every run. Experiments of its own: the content is the first
    test's, which the server already has in `aelab`."""
    set_params(small, tracking__experiment="outage", tracking__data_experiment="outage-data")
    (small / paths.LOGGED).unlink()
    team.stop_mlflow(stack)
    try:
        failed = log(small, stack, check=False)
    finally:
        team.start_mlflow(stack)
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [f"error: {describe_failure(stack.tracking_uri, refused)}"]
    assert not (small / paths.LOGGED).exists()
    client = MlflowClient(stack.tracking_uri)
    assert client.get_experiment_by_name("outage") is None  # nothing half-logged

    log(small, stack)
    runs = runs_by_name(stack.tracking_uri, "outage")
    assert sorted(runs) == sorted([*variant_names(small), "pixels"])
    metrics = json.loads((small / paths.METRICS).read_text())
    for name, (found,) in runs.items():
        assert found.info.status == "FINISHED"
        logged = {k: v for k, v in metrics[name].items() if v is not None}
        assert {k: found.data.metrics[k] for k in logged} == pytest.approx(logged), name
    assert len(runs_by_name(stack.tracking_uri, "outage-data")["data"]) == 1
    assert (small / paths.LOGGED).exists()


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
    run(["dvc", "exp", "run", "-n", "boot50", "-S", "evaluate.bootstrap=50"], cwd=machine_a,
        env={"MLFLOW_TRACKING_URI": stack.tracking_uri})  # fmt: skip
    run(["dvc", "exp", "push", "origin", "boot50"], cwd=machine_a)

    machine_b = tmp_path / "b"
    run(["git", "clone", "-q", str(remote), str(machine_b)], cwd=tmp_path)
    team.configure_dvc_remote(machine_b, stack, url)
    run(["dvc", "exp", "pull", "origin", "boot50"], cwd=machine_b)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], cwd=machine_b).stdout)
    (found,) = [exp for commit_ in shown for exp in commit_.get("experiments") or []
                if exp["name"] == "boot50"]  # fmt: skip
    shown_metrics = found["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    assert shown_metrics == numbers_of(json.loads((machine_a / paths.METRICS).read_text()))
    run(["dvc", "exp", "apply", "boot50"], cwd=machine_b)
    run(["dvc", "pull"], cwd=machine_b)
    assert_dvc_is_clean(machine_b)
    on_a, on_b = dvc_outputs(machine_a), dvc_outputs(machine_b)
    assert {k: v for k, v in on_b.items() if k.startswith("models/")} == {
        k: v for k, v in on_a.items() if k.startswith("models/")
    }
    assert on_b == on_a

    client = MlflowClient(stack.tracking_uri)
    experiment = client.get_experiment_by_name("two-machines").experiment_id
    runs = client.search_runs([experiment], "tags.`dvc.exp_name` = 'boot50'")
    assert sorted(r.info.run_name for r in runs) == sorted([*variant_names(small), "pixels"])
