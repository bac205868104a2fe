"""The `aelab` command.

    aelab check [--rev HEAD] [--all]

compares the workspace's reports/metrics.json (means over seeds) with the same file at a
git revision through `dvc metrics diff --json`, applies params.yaml's `regression:`
tolerances and prints a markdown table, each mean with its 95 % interval's half-width
(reports/intervals.json). Exit 0: no regression; 1: a metric regressed beyond its
tolerance or disappeared; 2: it cannot compare (one line says why).

    aelab log

mirrors the workspace into the MLflow store (MLFLOW_TRACKING_URI, or the project's
mlflow.db): the pipeline's last DVC stage, and by hand after pointing at a new store.
Exit 0: the store reflects the workspace; 1: it could not (one line says why).

    aelab score PATH... [--model URI] [--out FILE] [--resize]

scores new images with the anomaly detector: PNG/JPEG files or folders of them, .npy/.npz
arrays, IDX files (aelab.images). By default the workspace's (models/detector/, the
`detector` stage's); `--model` takes an MLflow model URI (`models:/aelab-anomaly@champion`,
from MLFLOW_TRACKING_URI or the project's store) or a detector folder. Prints CSV (or
writes it to FILE): each image's input, score, is_anomaly and cluster. Exit 0: scored;
1: bad input or model (one line says why; no FILE is written).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aelab import check, paths
from aelab.errors import AelabError, ArgumentParser, run_command
from aelab.io import atomic_open, save_json
from aelab.params import load_params
from aelab.paths import INTERVALS, LOGGED
from aelab.workspace import workspace_runs

CANNOT_COMPARE = 2
DISABLE = "AELAB_TRACKING"  # =off: `aelab log` logs nothing


def logging_enabled() -> bool:
    return os.environ.get(DISABLE, "on").lower() not in ("off", "0", "false", "no")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_COMPARE
    if args.command == "log":
        return run_log(args.params)
    if args.command == "score":
        return run_score(args.paths, args.model, args.out, args.resize)
    try:
        return run_check(args.rev, args.metrics, args.params, args.all)
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_COMPARE


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="aelab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gate = commands.add_parser("check", help="fail when a metric regressed against a revision")
    gate.add_argument("--rev", default="HEAD", help="git revision to compare with (HEAD)")
    gate.add_argument("--metrics", default="reports/metrics.json", help="the metrics file")
    gate.add_argument("--params", default="params.yaml", help="where `regression:` is")
    gate.add_argument("--all", action="store_true", help="list unchanged metrics too")
    log = commands.add_parser("log", help="mirror the workspace into the MLflow store")
    log.add_argument("--params", default="params.yaml", help="the pipeline's params")
    score = commands.add_parser("score", help="score new images with the anomaly detector")
    score.add_argument("paths", nargs="+", metavar="PATH", help="images, folders, arrays, IDX")
    score.add_argument("--model", help="an MLflow model URI or a detector folder "
                       f"(default: the workspace's {paths.DETECTOR_DIR}/)")  # fmt: skip
    score.add_argument("--out", help="write the CSV to this file instead of stdout")
    score.add_argument("--resize", action="store_true",
                       help="turn other sizes and colour images into 28x28 grayscale")  # fmt: skip
    return parser.parse_args(argv)


def run_log(params_file: str) -> int:
    """`aelab log`: the log step, from the project root. Its output, the content keys of
    the runs, is written whether or not it logs (AELAB_TRACKING=off): DVC's record of the
    step must not depend on the store. A SIGTERM or Ctrl-C ends the run being logged as
    FAILED (MLflow's run context) and exits with one line."""

    def log() -> None:
        params = load_params(params_file)
        runs = workspace_runs(params)
        keys = [run.key() for run in runs]
        if logging_enabled():
            from aelab import tracking  # imports mlflow: only when logging

            uri, new, registry = tracking.log_runs(runs, keys, params.champions)
            listed = f": {', '.join(new)}" if new else ""
            print(f"log: {len(new)} new run(s) in {uri}, {len(runs) - len(new)} already there"
                  f"{listed}")  # fmt: skip
            print(*registry, sep="\n")
        else:
            print(f"log: {DISABLE}=off, nothing logged; `aelab log` logs this workspace later")
        save_json(LOGGED, {f"{r.experiment}/{r.name}": k for r, k in zip(runs, keys, strict=True)})

    return run_command(log)


def run_score(sources: list[str], model: str | None, out: str | None, resize: bool) -> int:
    """`aelab score`: the detector's answers for every image, as CSV."""

    def score() -> None:
        from aelab import scoring  # imports torch: only when scoring

        table = scoring.score(sources, model, resize)
        if out is None:
            table.to_csv(sys.stdout, index=False)
            return
        with atomic_open(out, "w") as handle:
            table.to_csv(handle, index=False)

    return run_command(score)


def run_check(rev: str, metrics: str, params_file: str, everything: bool) -> int:
    rules = load_params(params_file).regression
    _check_json(Path(metrics))
    shown = [str(INTERVALS)] if INTERVALS.is_file() else []  # a project may not have one
    diffs = metrics_diff(rev, [metrics, *shown])
    rows = check.compare(diffs.get(metrics, {}), rules, diffs.get(str(INTERVALS), {}))
    if not rows or all(row.old is None for row in rows):
        raise AelabError(f"{metrics} has no metrics at revision {rev!r}: nothing to compare with")
    print(f"Metrics of the workspace against {rev} ({metrics}):\n")
    print(check.table(rows, everything))
    print(check.summary(rows))
    return 1 if check.failed(rows) else 0


def _check_json(path: Path) -> None:
    """DVC skips an unreadable metrics file with a warning: that must not pass."""
    try:
        json.loads(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run `dvc repro` first") from None
    except ValueError as error:
        raise AelabError(f"{path}: not valid JSON ({error}); run `dvc repro evaluate`") from None


def _check_revision(rev: str) -> None:
    """DVC reports a revision that is not a commit (a tree, a typo) as an internal error."""
    command = ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
    if subprocess.run(command, capture_output=True).returncode != 0:
        raise AelabError(
            f"--rev {rev!r} names no commit of this git repository; give a branch, tag or commit"
        )


def metrics_diff(rev: str, files: list[str]) -> dict[str, dict[str, dict]]:
    """`dvc metrics diff --all --json <rev>` for `files`:
    {file: {"variant.metric": {old, new}}}."""
    _check_revision(rev)
    command = ["dvc", "metrics", "diff", rev, "--targets", *files, "--all", "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        # DVC ends with a "Having any troubles?" line: the reason is its ERROR line.
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        reason = lines[0].removeprefix("ERROR: ") if lines else f"exit {result.returncode}"
        raise AelabError(f"`dvc metrics diff {rev}` failed: {reason}")
    return json.loads(result.stdout or "{}")


if __name__ == "__main__":
    sys.exit(main())
