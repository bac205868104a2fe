"""`aelab score`: new images through the detector, as CSV; bad input is one line, exit 1,
and no output file."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from helpers import VENV_BIN, blank_idx_files, memory_growth
from mlflow import MlflowClient
from PIL import Image

from aelab import cli
from aelab.analysis import scores
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.params import load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.tracking.store import log_runs
from aelab.tracking.workspace import workspace_runs


@pytest.fixture
def workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workspace as the user's current folder: `aelab score` reads its PATH arguments
    there and shows them as given, and finds the project from there."""
    monkeypatch.chdir(workspace)
    return workspace


@pytest.fixture
def logged_workspace(logged_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The logged workspace as the user's current folder (as `workspace` above)."""
    monkeypatch.chdir(logged_workspace)
    return logged_workspace


def score(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    status = cli.main(["score", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_pngs(folder: Path, images: np.ndarray) -> list[Path]:
    folder.mkdir()
    files = [folder / f"digit_{i:03d}.png" for i in range(len(images))]
    for file, image in zip(files, images, strict=True):
        Image.fromarray(image).save(file)
    return files


def test_a_folder_of_pngs_scores_as_the_features_file(workspace: Path, capsys):
    """The test digits as PNG files: the CSV's scores are the gmm scores evaluate computes
    from seed 0's features, row for row."""
    test = digits.load_split(workspace, "test")
    files = write_pngs(workspace / "new", test.images)
    status, out, err = score(capsys, "new", "--out", "scores.csv")
    assert (status, out, err) == (0, "", "")
    table = pd.read_csv("scores.csv")
    assert list(table.columns) == ["input", "score", "is_anomaly", "cluster"]
    assert list(table["input"]) == [str(Path("new") / f.name) for f in files]

    params = load_params(workspace / "params.yaml")
    features = load_features(workspace / paths.features_file("ae", 0))
    train, judged = (scores.prepared(features[f"{p}_latent"], True) for p in ("train", "test"))
    expected = scores.scores_of("gmm", train, {"test": judged}, params.evaluate, params.seed)
    np.testing.assert_allclose(table["score"], expected["test"], rtol=1e-5)
    threshold = pd.read_json(workspace / paths.DETECTOR_REPORT, typ="series")["threshold"]
    np.testing.assert_array_equal(table["is_anomaly"], expected["test"] > threshold)


def test_arrays_print_csv_with_an_index_per_image(workspace: Path, capsys):
    np.save("digits.npy", digits.load_split(workspace, "test").images[:3])
    status, out, _ = score(capsys, "digits.npy")
    table = pd.read_csv(io.StringIO(out))
    assert status == 0 and list(table["input"]) == [f"digits.npy[{i}]" for i in range(3)]


def test_the_registered_champion_scores_as_the_workspace(
    logged_workspace: Path, logged: str, capsys
):
    np.save("digits.npy", digits.load_split(logged_workspace, "test").images[:20])
    status, workspace_csv, _ = score(capsys, "digits.npy")
    status_mlflow, mlflow_csv, err = score(capsys, "digits.npy", "--model",
                                           "models:/aelab-anomaly@champion")  # fmt: skip
    assert (status, status_mlflow, err) == (0, 0, "")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(mlflow_csv)),
                                  pd.read_csv(io.StringIO(workspace_csv)))  # fmt: skip


def test_only_an_untampered_registered_detector_runs(
    workspace: Path, store: str, capsys, tmp_path: Path
):
    """The champion's model code is changed in the artifact store after registration: its
    digest is not the registered one, so it is refused before the code runs. The encoder,
    and a model that is not a registered version, are refused before anything loads."""
    params = load_params(workspace / "params.yaml")
    runs = workspace_runs(workspace, params)
    log_runs(workspace, runs, [run.key() for run in runs], params.champions)
    capsys.readouterr()  # MLflow's notes of the registration
    np.save("digits.npy", digits.load_split(workspace, "test").images[:2])
    client = MlflowClient(store)
    champion = client.get_model_version_by_alias("aelab-anomaly", "champion")
    model_id = champion.source.removeprefix("models:/")
    folder = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    marker = tmp_path / "the-planted-code-ran"
    code = folder / "pyfunc.py"  # the model's own code, which MLflow imports to load it
    code.write_text(f"open({str(marker)!r}, 'w').close()\n" + code.read_text())

    refusals = {
        "models:/aelab-anomaly@champion": "its files are not the ones registered as version 1",
        "models:/aelab-encoder@champion": "aelab-encoder is not an anomaly detector",
        f"models:/{model_id}": "not a registered version",
    }
    for uri, reason in refusals.items():
        status, out, err = score(capsys, "digits.npy", "--model", uri)
        assert (status, out) == (1, "") and err.count("\n") == 1, err
        assert err.startswith(f"error: --model {uri}: ") and reason in err, err
    assert not marker.exists()


def champion_files(store: str) -> Path:
    """The folder in the store's artifacts that holds the champion's files."""
    client = MlflowClient(store)
    champion = client.get_model_version_by_alias("aelab-anomaly", "champion")
    location = client.get_logged_model(champion.source.removeprefix("models:/")).artifact_location
    return Path(location.removeprefix("file://"))


def test_every_loading_path_refuses_a_tampered_champion_with_one_line(
    logged_workspace: Path, logged: str, capsys
):
    """The threshold in the champion's detector.json is changed in the artifact store (a local
    file store here, as the log step's default; the team stack's is S3). `aelab score` and
    `mlflow.pyfunc.load_model` refuse it with the same sentence: the model's own load_context
    checks the registered digest before its weights load (test_serving.py serves it)."""
    np.save("digits.npy", digits.load_split(logged_workspace, "test").images[:2])
    config = champion_files(logged) / "artifacts" / "detector" / paths.DETECTOR_CONFIG
    config.write_text(json.dumps({**json.loads(config.read_text()), "threshold": -1e9}))
    refused = "its files are not the ones registered as version 1 (digest "
    status, out, err = score(capsys, "digits.npy", "--model", "models:/aelab-anomaly@champion")
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: --model models:/aelab-anomaly@champion: {refused}"), err
    with pytest.raises(AelabError) as raised:
        mlflow.pyfunc.load_model("models:/aelab-anomaly@champion")
    assert str(raised.value).startswith(f"models:/aelab-anomaly/1: {refused}"), raised.value
    assert "\n" not in str(raised.value)


def test_the_anomaly_model_loads_only_as_a_registered_version(logged: str):
    """Loaded from its run's logged model there is no recorded digest to check: refused."""
    mlflow.set_tracking_uri(logged)
    (run,) = mlflow.search_runs(experiment_names=["aelab"], output_format="list",
                                filter_string="tags.`aelab.variant` = 'ae'")  # fmt: skip
    with pytest.raises(AelabError, match="not loaded as a registered version; load "
                       "models:/aelab-anomaly@champion"):  # fmt: skip
        mlflow.pyfunc.load_model(run.data.tags["aelab.anomaly_model_uri"])


def test_a_folder_named_like_the_uri_never_shadows_the_registry(
    logged_workspace: Path, logged: str, capsys
):
    """A folder literally named `models:/aelab-anomaly@champion` with a detector that calls
    every digit anomalous: `--model models:/...` still loads the registry's champion."""
    np.save("digits.npy", digits.load_split(logged_workspace, "test").images[:20])
    shadow = Path("models:/aelab-anomaly@champion")
    shutil.copytree(logged_workspace / paths.DETECTOR_DIR, shadow)
    config = json.loads((shadow / paths.DETECTOR_CONFIG).read_text())
    (shadow / paths.DETECTOR_CONFIG).write_text(json.dumps({**config, "threshold": -1e9}))
    status, folder_csv, err = score(capsys, "digits.npy", "--model", f"./{shadow}")
    assert status == 0, err  # written as a path: the folder, as asked
    assert pd.read_csv(io.StringIO(folder_csv))["is_anomaly"].all()
    status, registered, err = score(capsys, "digits.npy", "--model",
                                    "models:/aelab-anomaly@champion")  # fmt: skip
    _, workspace_csv, _ = score(capsys, "digits.npy")
    assert status == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(registered)),
                                  pd.read_csv(io.StringIO(workspace_csv)))  # fmt: skip
    assert not pd.read_csv(io.StringIO(registered))["is_anomaly"].all()


def not_an_image(folder: Path) -> str:
    (folder / "notes.png").write_text("not a picture")
    return "notes.png"


def empty_folder(folder: Path) -> str:
    (folder / "empty").mkdir()
    return "empty"


def unreadable(folder: Path) -> str:
    (folder / "gone.png").symlink_to(folder / "nowhere.png")  # unreadable even for root
    return "gone.png"


def wrong_shape(folder: Path) -> str:
    np.save(folder / "flat.npy", np.zeros((3, 100), np.float32))
    return "flat.npy"


def out_of_range(folder: Path) -> str:
    np.save(folder / "bright.npy", np.full((2, 784), 1.5, np.float32))
    return "bright.npy"


def too_big(folder: Path) -> str:
    Image.fromarray(np.zeros((56, 56), np.uint8)).save(folder / "big.png")
    return "big.png"


@pytest.mark.parametrize(
    "bad", [not_an_image, empty_folder, unreadable, wrong_shape, out_of_range, too_big]
)
def test_bad_input_is_one_line_exit_1_and_no_output(workspace: Path, capsys, bad):
    name = bad(workspace)
    status, out, err = score(capsys, name, "--out", "scores.csv")
    assert status == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and name in err
    assert not Path("scores.csv").exists()
    assert not list(workspace.glob(".scores.csv.*"))  # no temporary left either


def test_resize_takes_other_sizes(workspace: Path, capsys):
    too_big(workspace)
    status, out, _ = score(capsys, "big.png", "--resize")
    assert status == 0 and out.startswith('"input","score","is_anomaly","cluster"\n"big.png",')


def test_an_unknown_model_is_one_line(workspace: Path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace / 'store.db'}")
    np.save("digits.npy", digits.load_split(workspace, "test").images[:2])
    status, _, err = score(capsys, "digits.npy", "--model", "models:/nope@champion")
    assert status == 1 and err.count("\n") == 1 and "--model models:/nope@champion" in err


def a_fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe")  # a special file like /dev/full, harmless to test with
    return "pipe"


def a_folder(folder: Path) -> str:
    (folder / "results").mkdir()
    return "results"


def a_symlink(folder: Path) -> str:
    (folder / "kept.csv").write_text("precious\n")
    (folder / "link.csv").symlink_to(folder / "kept.csv")
    return "link.csv"


def the_input(folder: Path) -> str:
    return "digits.npy"


def in_a_missing_folder(folder: Path) -> str:
    return "nowhere/scores.csv"


def read_only(folder: Path) -> str:
    (folder / "kept.csv").write_text("precious\n")
    (folder / "kept.csv").chmod(0o444)  # root may write it: refused all the same
    return "kept.csv"


@pytest.mark.parametrize(
    ("target", "reason"),
    [(a_fifo, "a device, pipe or socket, not a file"), (a_folder, "a folder, not a file"),
     (a_symlink, "a symbolic link"), (the_input, "that is an input"),
     (in_a_missing_folder, "folder nowhere does not exist"), (read_only, "read-only")],
)  # fmt: skip
def test_out_never_replaces_what_is_not_a_plain_output_file(workspace: Path, capsys, target,
                                                            reason):  # fmt: skip
    np.save("digits.npy", digits.load_split(workspace, "test").images[:3])
    out = target(workspace)
    before = {p: (p.is_symlink(), p.read_bytes() if p.is_file() else None)
              for p in workspace.iterdir() if not p.is_fifo()}  # fmt: skip
    status, stdout, err = score(capsys, "digits.npy", "--out", out)
    assert status == 1 and stdout == ""
    assert err.startswith(f"error: --out {out}: {reason}") and err.count("\n") == 1, err
    after = {p: (p.is_symlink(), p.read_bytes() if p.is_file() else None)
             for p in workspace.iterdir() if not p.is_fifo()}  # fmt: skip
    assert after == before  # nothing replaced, nothing left behind
    if target is read_only:
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o444


def test_out_is_never_an_image_a_folder_of_inputs_holds(workspace: Path, capsys):
    """`aelab score new/ --out new/digit_001.png` turned that image into CSV: the check
    compared the literal arguments only."""
    files = write_pngs(workspace / "new", digits.load_split(workspace, "test").images[:3])
    before = files[1].read_bytes()
    status, _, err = score(capsys, "new", "--out", str(files[1]))
    assert (
        status == 1
        and err == f"error: --out {files[1]}: that is an input; write the output elsewhere\n"
    )
    assert files[1].read_bytes() == before


def test_out_keeps_the_mode_of_the_file_it_replaces(workspace: Path, capsys):
    np.save("digits.npy", digits.load_split(workspace, "test").images[:3])
    Path("private.csv").write_text("old\n")
    Path("private.csv").chmod(0o600)
    assert score(capsys, "digits.npy", "--out", "private.csv")[0] == 0
    assert Path("private.csv").read_text().startswith('"input"')
    assert stat.S_IMODE(Path("private.csv").stat().st_mode) == 0o600


@pytest.mark.slow  # a process whose stdout is /dev/full
def test_a_full_stdout_is_one_line_and_exit_1(workspace: Path):
    np.save("digits.npy", digits.load_split(workspace, "test").images[:3])
    with open("/dev/full", "w") as full:
        done = subprocess.run([str(VENV_BIN / "aelab"), "score", "digits.npy"], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=workspace)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "error: cannot write to standard output (No space left on device)\n"


@pytest.mark.slow  # scores 100,000 digits in a new interpreter
def test_a_call_costs_at_most_the_capped_images_float32_copy(workspace: Path):
    """`aelab score` of 100,000 blank digits, and of four such files (76 KB each, once 5.6
    GB): the peak above what importing PyTorch and the detector's code left."""
    files = blank_idx_files(workspace, 4)
    setup = "from aelab import cli\nimport aelab.serving.scoring, aelab.serving.detector"
    for given, status, limit in (([files[0]], 0, 600), (files, 1, 50)):
        arguments = ["score", *map(str, given), "--out", "scores.csv"]
        growth, peak, result = memory_growth(setup, f"result = cli.main({arguments!r})",
                                             workspace)  # fmt: skip
        assert result == str(status)
        assert growth < limit, f"{len(given)} file(s): {growth:.0f} MiB more, peak {peak:.0f}"
    assert len(pd.read_csv("scores.csv")) == 100_000


def test_file_names_a_spreadsheet_would_run_are_escaped(workspace: Path, capsys):
    """OWASP's formula starts: = + - @, tab and carriage return (`\\r=1+1.png` once began a
    CSV line with a raw CR: Python's csv quotes only \\n). Each such cell gets a ' first,
    and every text cell is quoted: a CR stays inside its cell."""
    names = ["=cmd|calc.png", "+1.png", "@sum.png", "-2.png", "\r=1+1.png", "\t=1+1.png",
             "plain.png"]  # fmt: skip
    for image, name in zip(digits.load_split(workspace, "test").images, names, strict=False):
        Image.fromarray(image).save(workspace / name)
    status, out, _ = score(capsys, "--", *names)
    written = list(pd.read_csv(io.StringIO(out), keep_default_na=False)["input"])
    assert status == 0 and written == [f"'{name}" for name in names[:-1]] + ["plain.png"]
    assert '\n"\'\r=1+1.png",' in out  # the CR inside quotes, after the '
    assert {line[0] for line in out.split("\n") if line} == {'"'}


def test_a_bad_command_line_exits_2_with_one_line(capsys):
    assert cli.main(["score"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: aelab score: the following arguments are required: PATH")
    assert err.count("\n") == 1
