"""The `aelab` command.

    aelab check [--rev HEAD] [--all] [--min-same SHARE]

compares the workspace's reports/metrics.json (means over seeds) with the same file at a
git revision through `dvc metrics diff --json`, and prints a markdown table, each mean
with its 95 % interval's half-width (reports/intervals.json), then what each rule would
catch. From both revisions' dvc.lock it knows what changed upstream: a metric whose data
is byte-identical is judged by its `regression:` tolerance in params.yaml alone (exact);
one whose data changed may also move by the seed noise of both runs (paired: the same test
digits; reports/noise.json), or by both half-widths (unpaired), never less than the
tolerance. --min-same also fails it unless that share of the metrics came out the same
(CI's check that an unchanged clone reproduces its reports on another machine). Exit 0: no
regression; 1: a metric regressed beyond that, disappeared or is not finite (or too few
came out the same); 2: it cannot compare (one line says why).

    aelab log [--params FILE] [--force]

mirrors the workspace into the MLflow store (MLFLOW_TRACKING_URI, or the project's
mlflow.db): the pipeline's last DVC stage, and by hand after pointing at a new store. By
hand it refuses when `dvc status` finds a stage out of date, or when FILE (not
params.yaml) holds other values than dvc.lock records for a stage; --force logs anyway,
with the runs tagged aelab.stale_stages and nothing registered. Exit 0: the store reflects the
workspace; 1: it could not (one line says why).

    aelab tune VARIANT [--trials 30] [--storage URL] [--study NAME]

searches VARIANT's learning rate and batch size with Optuna (aelab.training.tuning) on
the training and validation digits, each trial logged to MLflow's `aelab-tuning`
experiment (AELAB_TRACKING=off: not logged), and prints the best values with the
`dvc exp run` line that applies them. The study lives in --storage, else
$AELAB_TUNING_STORAGE (the team stack's PostgreSQL), else the project's optuna.db; several
processes may share it. Exit 0: a best trial; 1: it could not (one line says why).

    aelab score PATH... [--model URI] [--out FILE] [--resize]

scores new images with the anomaly detector: PNG/JPEG files or folders of them, .npy/.npz
arrays, IDX files (aelab.serving.images). By default the workspace's (detector/, the `detector`
stage's); `--model` takes a registered version of aelab-anomaly
(`models:/aelab-anomaly@champion` or `/<version>`, from MLFLOW_TRACKING_URI or the
project's store), checked against the digest recorded at registration before any of its
code runs, or a detector folder (a URI is always a URI:
a folder is named by a path that is not one). At most 100,000 images a call, all files
together. Prints CSV (or writes it to FILE): each image's input, score, is_anomaly and
cluster, every text cell quoted; an input name a spreadsheet would run as a formula (=, +,
-, @, a tab or a carriage return first) is written with a ' before it. FILE must be a
writable regular file (it keeps its mode) or a new name in an existing folder, never an
input nor an image of an input folder. Exit 0: scored; 1: bad input, model or FILE (one
line says why; FILE is left as it was).

    aelab benchmark oneclass [--protocol one-vs-rest] [--digits 0 1 ...] [--jobs 2]
                             [-S KEY=VALUE ...] [--push REMOTE] [--pull REMOTE]

runs the field's one-class benchmark (aelab.reports.oneclass): one DVC experiment per
digit (`oneclass-<d>`, or `oneclass-anomalous-<d>` with --protocol
one-vs-rest-anomalous), queued with `dvc exp run --queue` and run by `dvc queue start
--jobs`, each with the digit's split and the -S changes (e.g. -S train.seeds=1). --push
sends the experiments to a git remote (and their outputs to the DVC remote); --pull runs
nothing and fetches every digit's experiment of this commit from one. Then it writes
reports/oneclass.json, reports/oneclass.md and reports/oneclass_<protocol>.png from all
of this commit's experiments of the protocol. Exit 0: every digit run succeeded; 1: one
failed (one line per digit; the table marks it missing) or it could not run.

Every command works on the project the current folder is in (the nearest folder upwards
holding params.yaml), or the one `--project DIR` names before the command. Every command
exits 2 on a bad command line (a missing or unknown argument), with one line saying what
is wrong.
"""

from __future__ import annotations

import csv
import math
import os
import re
import stat
import sys
from argparse import ArgumentTypeError
from pathlib import Path

from aelab.core import paths
from aelab.core.errors import AelabError, ArgumentParser, run_command
from aelab.core.io import atomic_open
from aelab.core.params import PARAMS_FILE
from aelab.core.pins import pin_instruction_sets
from aelab.data.protocols import PROTOCOLS
from aelab.reports import gate
from aelab.tracking.settings import quiet_mlflow

CANNOT_COMPARE = 2


def main(argv: list[str] | None = None) -> int:
    pin_instruction_sets()  # before any command loads PyTorch or numba (aelab.core.pins)
    quiet_mlflow()  # before any command loads MLflow, which reads its settings as it loads
    try:
        args = parse_args(argv)
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_COMPARE
    return args.run(args)  # the subcommand's own (set_defaults)


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="aelab", description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, metavar="DIR",
                        help="the project's folder (default: the one the current folder is "
                        "in)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="fail when a metric regressed against a revision")
    check.set_defaults(run=run_check)
    check.add_argument("--rev", default="HEAD", help="git revision to compare with (HEAD)")
    check.add_argument("--metrics", default=str(paths.METRICS),
                       help="the metrics file, in the project")  # fmt: skip
    check.add_argument("--params", help="where `regression:` is (the project's params.yaml)")
    check.add_argument("--all", action="store_true", help="list unchanged metrics too")
    check.add_argument("--min-same", type=share, default=0.0, metavar="SHARE",
                       help="also fail unless this share (0-1) of the metrics came out the "
                       "same: an unchanged clone's reproduction check (CI)")  # fmt: skip
    log = commands.add_parser("log", help="mirror the workspace into the MLflow store")
    log.set_defaults(run=lambda args: run_log(args.project, args.params, args.force))
    log.add_argument("--params", help="the pipeline's params (the project's params.yaml)")
    log.add_argument("--force", action="store_true",
                     help="log even when DVC says stages are stale (runs tagged so)")  # fmt: skip
    tune = commands.add_parser("tune", help="search a variant's learning rate and batch size")
    tune.set_defaults(run=lambda args: run_tune(args.project, args.variant, args.trials,
                                                args.storage, args.study,
                                                args.params))  # fmt: skip
    tune.add_argument("variant", help="a network variant of params.yaml")
    tune.add_argument("--trials", type=positive, default=30,
                      help="finished trials the study should hold (30)")  # fmt: skip
    tune.add_argument("--storage", help="an Optuna storage URL (default: $AELAB_TUNING_STORAGE, "
                      "else sqlite:///optuna.db in the project)")  # fmt: skip
    tune.add_argument("--study", help="the study's name (default: the variant's)")
    tune.add_argument("--params", help="the pipeline's params (the project's params.yaml)")
    score = commands.add_parser("score", help="score new images with the anomaly detector")
    score.set_defaults(run=lambda args: run_score(args.project, args.paths, args.model,
                                                  args.out, args.resize))  # fmt: skip
    score.add_argument("paths", nargs="+", metavar="PATH", help="images, folders, arrays, IDX")
    score.add_argument("--model", help="a registered version (models:/aelab-anomaly@champion) "
                       f"or a detector folder (default: the workspace's "
                       f"{paths.DETECTOR_DIR}/)")  # fmt: skip
    score.add_argument("--out", help="write the CSV to this file instead of stdout")
    score.add_argument("--resize", action="store_true",
                       help="turn other sizes and colour images into 28x28 grayscale")  # fmt: skip
    benchmark = commands.add_parser("benchmark", help="the field's benchmarks")
    benchmarks = benchmark.add_subparsers(dest="benchmark", required=True)
    oneclass = benchmarks.add_parser("oneclass", help="one DVC experiment per normal digit")
    oneclass.set_defaults(run=run_oneclass)
    oneclass.add_argument("--protocol", choices=PROTOCOLS, default=PROTOCOLS[0],
                          help="one digit normal (one-vs-rest), or one anomalous")  # fmt: skip
    oneclass.add_argument("--digits", type=digit, nargs="+", default=list(range(10)),
                          help="the digits to run (all ten)")  # fmt: skip
    oneclass.add_argument("--jobs", type=positive, default=2, help="experiments at once (2)")
    oneclass.add_argument("-S", "--set-param", dest="changes", action="append", default=[],
                          metavar="KEY=VALUE",
                          help="a params.yaml change for every digit")  # fmt: skip
    oneclass.add_argument("--push", metavar="REMOTE", type=remote,
                          help="push the experiments to this git remote")  # fmt: skip
    oneclass.add_argument("--pull", metavar="REMOTE", type=remote,
                          help="run nothing: pull every digit's experiment from this "
                          "git remote")  # fmt: skip
    return parser.parse_args(argv)


def digit(text: str) -> int:
    if text not in {str(d) for d in range(10)}:
        raise ArgumentTypeError(f"{text!r} is not a digit from 0 to 9")
    return int(text)


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ArgumentTypeError(f"{text!r} is not a share from 0 to 1 (0.95: 95 %)")
    return value


def remote(text: str) -> str:
    """A git remote's name or URL: never one DVC would read as an option (--help,
    --all-commits)."""
    if not text.strip() or text.startswith("-"):
        raise ArgumentTypeError(f"{text!r} is not a remote's name or URL (DVC would read it "
                                f"as an option)")  # fmt: skip
    return text


def run_check(args) -> int:
    """`aelab check`: the metric gate (aelab.reports.gate); exit 2 when it cannot compare."""
    try:
        root = paths.project_root(args.project)
        return gate.run(root, args.rev, args.metrics, args.params or root / PARAMS_FILE,
                        args.all, args.min_same)  # fmt: skip
    except AelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_COMPARE


def run_oneclass(args) -> int:
    """`aelab benchmark oneclass`: run (or pull) the experiments, then write the table."""
    failed: dict[int, str] = {}

    def benchmark() -> None:
        import yaml
        from tqdm import tqdm

        from aelab.reports import experiments, oneclass

        root = paths.project_root(args.project)
        oneclass.check_changes(root, args.changes)
        commit = experiments.head_commit(root)
        if args.pull:
            pulled = oneclass.pull(root, args.protocol, args.pull)
            print(f"pulled {len(pulled)} experiments: digits {pulled}", file=sys.stderr)
        else:
            digits = sorted(set(args.digits))
            with tqdm(total=len(digits), desc=f"oneclass {args.protocol}", unit="digit") as bar:

                def progress(finished: int, running: int) -> None:
                    bar.update(finished - bar.n)
                    bar.set_postfix(running=running)

                failed.update(oneclass.run(root, args.protocol, digits, args.jobs,
                                           args.changes, args.push, progress))  # fmt: skip
        baseline = yaml.safe_load((root / PARAMS_FILE).read_text())
        table = oneclass.protocol_table(root, args.protocol, experiments.show(root), failed,
                                        commit, baseline)  # fmt: skip
        oneclass.write(root, args.protocol, table)
        for d, why in sorted(failed.items()):
            print(f"error: digit {d} failed: {why}", file=sys.stderr)
        print(f"wrote {oneclass.REPORT}: {len(table['rows'])} rows, "
              f"{10 - len(table['missing'])} of 10 digits", file=sys.stderr)  # fmt: skip

    status = run_command(benchmark)
    return status or (1 if failed else 0)


def run_log(project: Path | None, params_file: str | None, force: bool) -> int:
    """`aelab log`: the log step (aelab.tracking.log) of the project."""
    from aelab.tracking.log import log_workspace

    return run_command(lambda: log_workspace(paths.project_root(project), params_file, force))


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def run_tune(project: Path | None, variant: str, trials: int, storage: str | None,
             study: str | None, params_file: str | None) -> int:  # fmt: skip
    """`aelab tune`: the study, then its best values and how to apply them."""

    def search() -> None:
        import os

        from aelab.core.params import load_params
        from aelab.tracking.log import logging_enabled
        from aelab.tracking.urls import without_secrets
        from aelab.training import tuning  # imports torch and optuna: only when tuning

        root = paths.project_root(project)
        params = load_params(params_file or root / PARAMS_FILE)
        given = storage or os.environ.get(tuning.STORAGE_VARIABLE) or ""
        # A storage URL may hold a password: no error line shows it (aelab.tracking.urls).
        try:
            url = tuning.storage_url(storage, root, dict(os.environ))
            callbacks = []
            if logging_enabled():
                from aelab.tracking.trials import TrialLogger  # imports mlflow

                callbacks.append(TrialLogger(root, variant, url))
            result = tuning.tune(root, params, variant, trials, url, study, callbacks)
        except AelabError as error:
            raise AelabError(without_secrets(str(error), given)) from None
        print(f"tune {variant}: {result.trials} trials ({result.pruned} pruned) in "
              f"{result.seconds:.0f} s; lowest validation MSE {tuning.describe(result.best)}; "
              f"recommended, the fastest within its noise: "
              f"{tuning.describe(result.recommended)}")  # fmt: skip
        print(tuning.exp_run_line(result))

    return run_command(search)


def run_score(project: Path | None, sources: list[str], model: str | None, out: str | None,
              resize: bool) -> int:  # fmt: skip
    """`aelab score`: the detector's answers for every image, as CSV."""

    def score() -> None:
        from aelab.serving import scoring  # imports torch: only when scoring

        target = None if out is None else check_output_file(out, sources)
        table = spreadsheet_safe(scoring.score(sources, lambda: predictor(project, model), resize))
        if target is None:
            write_stdout(lambda handle: write_csv(table, handle))
            return
        kept = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
        try:
            with atomic_open(target, "w", permissions=kept) as handle:  # its mode, as it was
                write_csv(table, handle)
        except OSError as error:  # read-only folder, full disk: nothing was replaced
            raise AelabError(f"--out {out}: cannot write ({error.strerror})") from None

    return run_command(score)


# What spreadsheets evaluate at the start of a CSV cell (OWASP's list: a tab or carriage
# return first hides a formula behind it).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(table, handle) -> None:
    """Every text cell in quotes: a carriage return inside a name would otherwise end the
    line for a spreadsheet (Python's csv quotes only the line terminator's \\n), and start
    the next with what follows it."""
    table.to_csv(handle, index=False, quoting=csv.QUOTE_NONNUMERIC)


def spreadsheet_safe(table):
    """Text cells that would start a formula get a leading ' (OWASP's advice against CSV
    injection: a file named `=cmd|calc.png` must not run anything when the CSV is opened)."""

    from pandas.api.types import is_numeric_dtype

    def safe(value):
        return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    return table.apply(lambda column: column if is_numeric_dtype(column) else column.map(safe))


def check_output_file(path: str, inputs: list[str]) -> Path:
    """A path --out may replace with a new regular file: one AelabError line for a device,
    folder, pipe or symlink there (replacing them destroys what they are), a read-only
    file, one of the command's own inputs (a folder's images included), and a folder that
    does not exist."""
    path = Path(path)
    if path.is_symlink():
        raise AelabError(f"--out {path}: a symbolic link; give the path of a regular file")
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "a device, pipe or socket"
        raise AelabError(f"--out {path}: {what}, not a file; give the path of a regular file")
    # A file without write permission is its owner's "do not change": refused even for
    # root, whom os.access lets write anything (and replacing it would make it root's).
    if path.exists() and not (os.access(path, os.W_OK) and path.stat().st_mode & 0o222):
        raise AelabError(f"--out {path}: read-only; make it writable or write elsewhere")
    from aelab.serving.images import input_files  # the files a folder of inputs holds

    if any(path.resolve() == Path(given).resolve() for given in [*inputs, *input_files(inputs)]):
        raise AelabError(f"--out {path}: that is an input; write the output elsewhere")
    if not path.parent.is_dir():
        raise AelabError(f"--out {path}: folder {path.parent} does not exist; create it first")
    return path


def write_stdout(write) -> None:
    """`write(sys.stdout)`, flushed now: a full or closed stdout (`> /dev/full`, a pipe
    whose reader quit) is one AelabError line, not a traceback at exit."""
    try:
        write(sys.stdout)
        sys.stdout.flush()
    except OSError as error:
        # What is still buffered would fail again at exit: point stdout at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise AelabError(f"cannot write to standard output ({error.strerror})") from None


URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")  # models:/..., runs:/..., s3://...


def predictor(project: Path | None, model: str | None):
    """The workspace's detector, a registered MLflow model (in the project's store), or a
    detector folder. A URI is always a URI: a folder named `models:/aelab-anomaly@champion`
    never stands in for the registry's model."""
    if model is not None and URI.match(model):
        from aelab.tracking import store  # imports mlflow: only for an MLflow model

        return store.load_detector(model, paths.project_root(project)).predict
    from aelab.serving import detector

    return detector.load(model or paths.project_root(project) / paths.DETECTOR_DIR).answers


if __name__ == "__main__":
    sys.exit(main())
