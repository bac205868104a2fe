"""Reliability, end to end: bit-for-bit reruns, artifacts that survive a remote round trip,
interrupted and concurrent runs, and damaged files. Each test works on its own copy of the
session's reproduced project (conftest.small_pipeline)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import command_env, commit, error_lines, run, set_params, wait_until
from mlflow import MlflowClient

from aelab.core import paths
from aelab.core.errors import INTERRUPTED, AelabError

pytestmark = pytest.mark.slow
UP_TO_DATE = "Data and pipelines are up to date."


def lock_outputs(project: Path) -> dict[str, str]:
    """Every output's md5 in dvc.lock, by path, but the training's wall-clock timings
    (data/timings/), which differ on every run."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if not Path(out["path"]).is_relative_to(paths.TIMINGS_DIR)
    }


def test_forced_reruns_give_identical_outputs_and_log_nothing_new(small: Path):
    before = lock_outputs(small)
    runs = MlflowClient(f"sqlite:///{small / 'mlflow.db'}").search_runs(["1", "2"])
    run(["dvc", "repro", "-f"], cwd=small)
    assert lock_outputs(small) == before
    assert len(before) >= 10  # raw, split, models, features, reports, figures, keys
    again = MlflowClient(f"sqlite:///{small / 'mlflow.db'}").search_runs(["1", "2"])
    assert len(again) == len(runs) == 5  # ae, conv_vae, pca, pixels, data: the same content


def test_push_clone_pull_gives_back_every_output(small: Path, tmp_path: Path):
    remote = tmp_path / "remote"
    project = small
    run(["dvc", "remote", "add", "-d", "local", str(remote)], cwd=project)
    run(["dvc", "push"], cwd=project)
    commit(project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], cwd=tmp_path)
    run(["dvc", "pull"], cwd=clone)
    assert UP_TO_DATE in run(["dvc", "status"], cwd=clone).stdout
    assert UP_TO_DATE in run(["dvc", "repro"], cwd=clone).stdout
    for path in (
        "reports/metrics.json",
        "models/ae/seed_0/model.pt",
        "data/features/pca/seed_0.npz",
    ):
        assert (clone / path).read_bytes() == (project / path).read_bytes(), path


class Training:
    """`python -m stages train --variant ae` in the background, in its own process group,
    with its stderr (tqdm's progress bar) read as it comes."""

    def __init__(self, project: Path, epochs: int):
        # Patience as long as the cap: it trains until it is stopped.
        set_params(project, variants__ae__max_epochs=epochs,
                   variants__ae__patience=max(epochs, 15))  # fmt: skip
        self.process = subprocess.Popen(
            ["python", "-m", "stages", "train", "--variant", "ae"], cwd=project,
            env=command_env(project),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for char in iter(lambda: self.process.stderr.read(1), ""):
            self.stderr += char

    def epochs_done(self) -> int:
        """The last epoch the progress bar showed ("epoch 41 · best 40 ·"); it redraws about
        once a second."""
        return max(map(int, re.findall(r"epoch (\d+) ·", self.stderr)), default=0)

    def wait_until_epoch(self, epoch: int, timeout: float = 120) -> None:
        """Until tqdm shows at least `epoch` epochs done: well inside the training loop."""
        wait_until(lambda: self.epochs_done() >= epoch or self.process.poll() is not None,
                   timeout, f"epoch {epoch}")  # fmt: skip
        assert self.process.poll() is None, f"it stopped early:\n{self.stderr}"

    def wait_until_importing(self, timeout: float = 60) -> None:
        """Until the stage catches SIGTERM: stages/__main__.py has set its handlers, and
        the stage module's own imports (torch: over a second) have begun."""
        wait_until(lambda: catches(self.process.pid, signal.SIGTERM), timeout, "the imports")

    def send(self, sig: int) -> str:
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return self.stderr


def test_a_killed_training_stage_leaves_nothing_that_dvc_accepts(small: Path):
    project = small
    shutil.rmtree(project / "models" / "ae")
    training = Training(project, epochs=2000)
    training.wait_until_epoch(5)
    training.send(signal.SIGKILL)
    assert not (project / "models" / "ae").exists()
    status = run(["dvc", "status", "train@ae"], cwd=project).stdout
    assert "deleted:" in status and "models/ae" in status
    set_params(project, variants__ae__max_epochs=3)  # not in DVC's run cache: it has to train
    rerun = run(["dvc", "repro", "train@ae"], cwd=project).stdout
    assert "Running stage 'train@ae'" in rerun
    assert UP_TO_DATE in run(["dvc", "status", "train@ae"], cwd=project).stdout
    assert not list((project / "models").glob(".ae.*"))  # no staging folder either


def test_ctrl_c_stops_a_stage_with_one_line_and_writes_nothing(small: Path):
    project = small
    shutil.rmtree(project / "models" / "ae")
    training = Training(project, epochs=2000)
    training.wait_until_epoch(5)
    stderr = training.send(signal.SIGINT)
    assert training.process.returncode == 130
    lines = [line for line in stderr.splitlines() if line.strip() and "epoch" not in line]
    assert lines == [INTERRUPTED]
    assert not (project / "models" / "ae").exists()
    assert not list((project / "models").glob(".ae.*"))


def test_a_stage_killed_outright_takes_its_seed_workers_with_it(small: Path):
    """SIGKILL gives the stage no chance to stop the processes training its seeds (two
    here, one per seed group): the kernel stops them as it dies."""
    shutil.rmtree(small / "models" / "ae")
    training = Training(small, epochs=2000)
    training.wait_until_epoch(5)
    workers = children(training.process.pid)
    assert len(workers) == 2
    os.kill(training.process.pid, signal.SIGKILL)
    training.process.wait(timeout=60)
    wait_until(lambda: not any(map(alive, workers)), 30, "the workers' end")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie waiting to be reaped."""
    try:
        state = re.search(r"^State:\s+(\w)", Path(f"/proc/{pid}/status").read_text(), re.M)
    except FileNotFoundError:
        return False
    return state.group(1) not in ("Z", "X")


# A write that fails on the second seed, as a full disk would: injected into the stage,
# in a process set up as `python -m stages` sets one up.
FAILING_SECOND_SAVE = """
import errno, sys
from stages.__main__ import set_up_process
set_up_process()
import stages.train as train
from aelab.core.errors import run_stage
saved, real = [], train.save_checkpoint
def save(folder, *rest):
    saved.append(folder)
    if len(saved) == 2:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder))
    real(folder, *rest)
train.save_checkpoint = save
sys.argv = ["stages.train", "--variant", "ae"]
run_stage(train.main)
"""


def test_a_failed_write_leaves_no_seed_of_the_variant_and_says_so_in_one_line(small: Path):
    shutil.rmtree(small / "models" / "ae")
    set_params(small, variants__ae__max_epochs=1)
    result = run(["python", "-c", FAILING_SECOND_SAVE], cwd=small, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: [Errno 28] No space left on device")
    assert not (small / "models" / "ae").exists()
    assert not list((small / "models").glob(".ae.*"))  # no staging folder either


def catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler of its own for `sig` (/proc/<pid>/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    return bool(caught >> (sig - 1) & 1)


def test_ctrl_c_while_a_stage_is_still_importing_is_one_line_too(small: Path):
    training = Training(small, epochs=1)
    training.wait_until_importing()
    stderr = training.send(signal.SIGINT)
    assert training.process.returncode in (130, -signal.SIGINT)  # either way a Ctrl-C exit
    assert [line for line in stderr.splitlines() if line.strip()] == [INTERRUPTED]


def test_a_second_repro_stops_on_the_lock_and_the_first_completes(small: Path):
    project = small
    # Runs for seconds: long enough to be met.
    set_params(project, variants__ae__max_epochs=40, variants__ae__patience=40)
    first = subprocess.Popen(["dvc", "repro", "train@ae"], cwd=project, text=True,
                             env=command_env(project), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    # While it runs the stage, DVC holds a write lock on its output.
    wait_until(lambda: "models/ae" in read(project / ".dvc/tmp/rwlock"), 120, "the lock")
    second = run(["dvc", "repro", "train@ae"], cwd=project, check=False)
    out, err = first.communicate(timeout=600)
    assert second.returncode != 0
    # DVC locks each stage's outputs (.dvc/tmp/rwlock) while a repro uses them.
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert first.returncode == 0, err
    assert UP_TO_DATE in run(["dvc", "status", "train@ae"], cwd=project).stdout


def read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def scramble(path: Path) -> None:
    """Flip every bit of 64 bytes a third of the way in (zeroing them could change nothing:
    digits are mostly black)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    path.write_bytes(bytes(data))


def stage_main(stage: str) -> Callable[[], None]:
    """The `main` of stages/<stage>.py, imported in this process (which importing leaves
    as it was: no pins, pytest's signal handling)."""
    return importlib.import_module(f"stages.{stage}").main


def written(project: Path) -> dict[Path, int]:
    """Every output file under data/, models/ and reports/, with its modification time."""
    return {path: path.stat().st_mtime_ns for folder in ("data", "models", "reports")
            for path in (project / folder).rglob("*") if path.is_file()}  # fmt: skip


@pytest.mark.parametrize("damage", [truncate, scramble])
@pytest.mark.parametrize(
    ("file", "stage", "fix"),
    [
        ("data/split/val.npz", ["extract", "--variant", "ae"],
         "run `dvc repro -f split` (or `dvc checkout data/split/val.npz`)"),
        ("data/raw/digits.npz", ["split"],
         "run `dvc repro -f download` (or `dvc checkout data/raw/digits.npz`)"),
        ("data/features/ae/seed_1.npz", ["evaluate"],
         "run `dvc repro -f extract@ae` (or `dvc checkout data/features/ae`)"),
        ("models/ae/seed_0/model.pt", ["extract", "--variant", "ae"],
         "run `dvc repro -f train@ae` (or `dvc checkout models/ae`)"),
        ("models/ae/seed_0/config.json", ["extract", "--variant", "ae"],
         "run `dvc repro -f train@ae` (or `dvc checkout models/ae`)"),
        ("models/ae/seed_0/history.csv", ["figures"],
         "run `dvc repro -f train@ae` (or `dvc checkout models/ae`)"),
    ],
)  # fmt: skip
def test_a_damaged_file_stops_the_stage_naming_it_and_the_fix(
    small: Path, monkeypatch: pytest.MonkeyPatch, file, stage, fix, damage
):  # fmt: skip
    """In this process: the stage's main raises the one-line error, naming the file in the
    project it is given, before writing."""
    monkeypatch.setattr(sys, "argv", [f"stages.{stage[0]}", *stage[1:]])
    target = small / file
    target.chmod(0o644)  # DVC may link outputs read-only from its cache
    damage(target)
    before = written(small)
    with pytest.raises(AelabError) as caught:
        stage_main(stage[0])(small)
    message = str(caught.value)
    assert message.startswith(f"{small / file}: ") and message.endswith(fix) and "\n" not in message
    assert written(small) == before  # nothing (half-)written


def test_a_damaged_file_exits_1_with_one_line_and_no_traceback(small: Path):
    """The exit-status contract of the errors above, in a stage process of its own."""
    truncate(small / "models/ae/seed_0/model.pt")
    result = run(["python", "-m", "stages", "extract", "--variant", "ae"], cwd=small, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == error_lines(result.stderr) and len(lines) == 1
    assert lines[0].startswith(f"error: {small.resolve() / 'models/ae/seed_0/model.pt'}: ")
