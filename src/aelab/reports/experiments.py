"""DVC experiments: queued with `dvc exp run --queue`, run by `dvc queue start` workers,
their queue's state and results read through DVC's Python API (`dvc.repo.Repo`'s
experiments, what `dvc queue status` and `dvc exp show --json` print), shared with `dvc
exp push` / `dvc exp pull`. The experiments stay ordinary ones: `dvc exp show`, `dvc exp
apply` and the log stage's MLflow runs see them as any other."""

from __future__ import annotations

import multiprocessing
import subprocess
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from aelab.core.errors import AelabError

POLL_SECONDS = 2.0
FINISHED = ("Success", "Failed")
# DVC reads the experiments' files through pygit2's BlobIO, whose reader can miss its
# writer thread's wake-up and wait forever (BlobIO.readinto in pygit2 1.21: rare, seen on
# a loaded machine). The read runs in a child process, which is stopped past this time and
# asked again.
READ_TIMEOUT_SECONDS = 180.0
READ_ATTEMPTS = 3


def tool(root: Path, command: list[str], timeout: float | None = None, text: bool = True,
         **output) -> subprocess.CompletedProcess:  # fmt: skip
    """Run git or dvc in the project at `root`, its output captured (or sent where `output`
    says: stdout=, stderr=), as text unless `text` is False, killed past `timeout` seconds
    (subprocess.TimeoutExpired); a tool missing from PATH is one AelabError."""
    output = output or {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    try:
        return subprocess.run(command, cwd=root, text=text, timeout=timeout, **output)
    except FileNotFoundError:
        raise AelabError(
            f"`{command[0]}` is not on PATH; activate the project's venv (`make install`) "
            "or install it"
        ) from None


def dvc(root: Path, *args: str, timeout: float | None = None) -> str:
    """`dvc <args>`'s output; a failure is one AelabError line with DVC's reason."""
    result = tool(root, ["dvc", *args], timeout=timeout)
    if result.returncode != 0:
        raise AelabError(f"`dvc {' '.join(args[:3])}` failed: {error_line(result.stderr)}")
    return result.stdout


def error_line(output: str, fallback: str = "see its output") -> str:
    """The line that says why: a stage's own `error:` line (the last), else DVC's first
    `ERROR:` line (its later ones are advice)."""
    lines = output.splitlines()
    own = [line for line in lines if line.startswith("error:")]
    if own:
        return own[-1].removeprefix("error:").strip()
    dvcs = [line for line in lines if line.startswith("ERROR:")]
    return dvcs[0].removeprefix("ERROR:").strip() if dvcs else fallback


def forget(root: Path, names: list[str]) -> None:
    """Remove the queue's records and this commit's experiments of these names, so that
    they can be queued again (DVC refuses a name in use); their outputs stay in the cache
    and DVC's run cache, so running them again restores what did not change."""
    tool(root, ["dvc", "queue", "remove", *names])  # names not in the queue: nothing to do
    listed = dvc(root, "exp", "list", "--name-only").split()
    existing = [name for name in names if name in listed]
    if existing:
        dvc(root, "exp", "remove", *existing)


def queue(root: Path, name: str, changes: list[str]) -> None:
    """`dvc exp run --queue -n name -S change...`."""
    dvc(root, "exp", "run", "--queue", "--name", name, *[arg for c in changes for arg in ("-S", c)])


def start(root: Path, jobs: int) -> None:
    """`dvc queue start`: its workers outlive it and inherit its output, so that goes to a
    file, not a pipe (reading a pipe would wait for the last worker to end)."""
    with tempfile.TemporaryFile("w+") as output:
        done = tool(root, ["dvc", "queue", "start", "--jobs", str(jobs)], stdout=output,
                    stderr=output)  # fmt: skip
        if done.returncode != 0:
            output.seek(0)
            raise AelabError(f"`dvc queue start` failed: {error_line(output.read())}")


def statuses(root: Path) -> dict[str, str]:
    """Each task's status in DVC's experiment queue (`dvc queue status`), by experiment
    name: the newest task's (Queued, Running, Failed, Success)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            tasks = repo.experiments.celery_queue.status()
    except DvcException as error:
        raise AelabError(f"DVC cannot read its experiment queue: {error}") from None
    newest_last = sorted(tasks, key=lambda task: task["timestamp"])
    return {task["name"]: task["status"] for task in newest_last if task["name"]}


def wait(root: Path, names: list[str], progress: Callable[[int, int], None]) -> dict[str, str]:
    """Poll the queue until none of `names` is queued or running; `progress(finished,
    running)` after each poll. Each name's final status (Success, Failed)."""
    while True:
        queue = statuses(root)
        now = {name: queue.get(name, "Missing") for name in names}
        finished = sum(status in FINISHED for status in now.values())
        progress(finished, sum(status == "Running" for status in now.values()))
        if all(status in (*FINISHED, "Missing") for status in now.values()):
            return now
        time.sleep(POLL_SECONDS)


def stop(root: Path, names: list[str]) -> None:
    """Kill the running tasks of `names` and drop the queued ones (on Ctrl-C)."""
    tool(root, ["dvc", "queue", "kill", *names])
    tool(root, ["dvc", "queue", "remove", *names])


def failure(root: Path, name: str) -> str:
    """Why a task failed: the error line of `dvc queue logs`."""
    result = tool(root, ["dvc", "queue", "logs", name])
    return error_line(result.stdout + result.stderr, fallback=f"see `dvc queue logs {name}`")


def show(root: Path) -> dict[str, dict]:
    """This commit's finished experiments as `dvc exp show --json` has them, by name:
    {params, metrics}, each file's content. Running and failed ones are left out: DVC shows
    them with the baseline's files."""
    experiments = {}
    for commit in read_experiments(root):
        for experiment in commit.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state", "success")
            for revision in experiment["revs"]:
                if state != "success" or revision.get("error"):
                    continue
                data = revision.get("data") or {}
                experiments[revision.get("name")] = {
                    part: {path: (found or {}).get("data", {})
                           for path, found in (data.get(part) or {}).items()}
                    for part in ("params", "metrics")
                }  # fmt: skip
    return experiments


def read_experiments(root: Path) -> list[dict]:
    """DVC's experiments of this commit, queued ones left out (`Repo.experiments.show`,
    in the form `dvc exp show --json` prints), read in a forked child that is stopped and
    asked again when it hangs (see READ_TIMEOUT_SECONDS)."""
    context = multiprocessing.get_context("fork")
    for _ in range(READ_ATTEMPTS):
        receiving, sending = context.Pipe(duplex=False)
        child = context.Process(target=_send_experiments, args=(root, sending), daemon=True)
        child.start()
        sending.close()
        try:
            if receiving.poll(READ_TIMEOUT_SECONDS):
                answer, found = receiving.recv()
                if answer == "error":
                    raise AelabError(f"DVC cannot show the experiments: {found}")
                return found
        except EOFError:  # the child ended without an answer
            raise AelabError("DVC's experiments reader stopped without an answer") from None
        finally:
            child.kill()
            child.join()
            receiving.close()
    waited = f"{READ_TIMEOUT_SECONDS:.0f} s, {READ_ATTEMPTS} times"
    raise AelabError(f"DVC's experiments did not come within {waited}; run it again")


def _send_experiments(root: Path, sending: Connection) -> None:
    """In the child: the experiments through `sending`, or DVC's reason why not."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            found = [state.dumpd() for state in repo.experiments.show(hide_queued=True)]
        sending.send(("experiments", found))
    except DvcException as error:
        sending.send(("error", " ".join(str(error).split())))


def push(root: Path, remote: str, names: list[str]) -> None:
    """The experiments' commits to the git remote, their outputs to the DVC remote."""
    dvc(root, "exp", "push", remote, *names)


def pull(root: Path, remote: str, names: list[str]) -> list[str]:
    """Of `names`, those the git remote has for this commit, pulled (with their outputs);
    the others are left out (not run yet, or run from another commit)."""
    listed = dvc(root, "exp", "list", remote, "--name-only")
    there = [name for name in names if name in listed.split()]
    if there:
        dvc(root, "exp", "pull", remote, *there)
    return there


def head_commit(root: Path) -> str:
    """HEAD's commit: the experiments' baseline."""
    result = tool(root, ["git", "rev-parse", "HEAD"])
    if result.returncode != 0:
        raise AelabError("not a git repository with a commit: DVC experiments need one")
    return result.stdout.strip()
