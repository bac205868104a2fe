"""The one-class benchmark (`aelab benchmark oneclass`): its protocols, its table's
arithmetic and bad input here; end to end on the session pipeline split over two machines
(conftest.experiments: digit 0 on A, digit 1 on B, pulled by A; digit 2 failing on B)."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import PROJECT_ROOT
from mlflow import MlflowClient
from test_experiments import metrics_file, shown
from test_tracking import runs_by_name, store_of

from aelab import cli
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.data.protocols import (
    DIGITS,
    ONE_VS_REST,
    PROTOCOLS,
    normal_digits,
    protocol_of,
)
from aelab.reports import experiments as dvc_experiments
from aelab.reports import figures, oneclass
from aelab.tracking.log import not_registered


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_digit_of_a_protocol_is_its_split_and_back(protocol: str):
    for digit in DIGITS:
        normal = normal_digits(protocol, digit)
        assert (digit in normal) == (protocol == ONE_VS_REST)
        assert len(normal) in (1, 9)
        assert protocol_of(normal) == (protocol, digit)
    assert protocol_of([0, 1, 2, 3, 4]) is None


def found_digits(values: dict[int, float], half: float = 0.01) -> dict[int, dict]:
    """Experiment results for digits: one variant `ae`, its recon AUROC `values[d]`."""
    return {d: {"means": {"ae": {"roc_auc_recon": v, "psnr": 20.0}},
                "half_widths": {"ae": {"roc_auc_recon": half}}}
            for d, v in values.items()}  # fmt: skip


def test_the_mean_and_its_interval_are_computed_as_by_hand():
    values = {d: 0.9 + d / 100 for d in DIGITS}
    (row,) = oneclass.rows(found_digits(values, half=0.02))
    assert row["method"] == "ae · recon" and row["digits"] == 10
    assert row["mean"] == pytest.approx(0.945)
    # Ten independent means with half-width 0.02 each: 0.02 * sqrt(10) / 10.
    assert row["mean_half_width"] == pytest.approx(0.02 / math.sqrt(10))
    assert row["auroc"]["3"] == pytest.approx(0.93)


def test_a_missing_digit_is_marked_and_never_averaged_silently():
    values = {d: 0.95 for d in DIGITS if d != 3}
    table = {"title": "t", "commit": "0" * 40, "settings": {}, "missing": {"3": "failed: x"},
             "rows": oneclass.rows(found_digits(values)), "references": []}  # fmt: skip
    (row,) = table["rows"]
    assert row["digits"] == 9 and "3" not in row["auroc"]
    assert oneclass.best(table) == []  # only rows with all ten digits compete
    text = oneclass.markdown({ONE_VS_REST: table})
    assert "| missing |" in text and "(9 of 10 digits)" in text and "3 (failed: x)" in text


def test_the_best_complete_row_or_the_tie_is_named():
    found = found_digits({d: 0.95 for d in DIGITS})
    for result in found.values():
        result["means"]["pca"] = {"roc_auc_knn": 0.90}
        result["half_widths"]["pca"] = {"roc_auc_knn": 0.001}
    table = {"rows": oneclass.rows(found)}
    assert [row["method"] for row in table["rows"]] == ["ae · recon", "pca · knn"]
    assert oneclass.best(table) == ["ae · recon"]
    for result in found.values():  # 0.05 apart, each digit ± 0.2: a tie
        result["half_widths"]["ae"]["roc_auc_recon"] = 0.2
    assert oneclass.best({"rows": oneclass.rows(found)}) == ["ae · recon", "pca · knn"]


def test_the_figure_draws_the_rows_and_the_references(tmp_path: Path):
    found = found_digits({d: 0.9 for d in DIGITS if d != 5})
    table = {"title": oneclass.TITLES[ONE_VS_REST], "rows": oneclass.rows(found),
             "references": oneclass.REFERENCES[ONE_VS_REST]}  # fmt: skip
    fig = oneclass.figure(table)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 1 + len(oneclass.REFERENCES[ONE_VS_REST])
    assert any("9 of 10 digits" in label for label in labels)
    figures.save(fig, tmp_path / "oneclass.png")
    assert (tmp_path / "oneclass.png").read_bytes().startswith(b"\x89PNG")


def test_error_lines_prefer_the_stages_own_line():
    output = ("error: params.yaml: evaluate.bootstrap must be at least 20\n"
              "ERROR: failed to reproduce 'download': exited with 1\nERROR: advice\n")  # fmt: skip
    expected = "params.yaml: evaluate.bootstrap must be at least 20"
    assert dvc_experiments.error_line(output) == expected
    assert dvc_experiments.error_line("ERROR: a\nERROR: b") == "a"
    assert dvc_experiments.error_line("nothing", fallback="f") == "f"


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["--digits", "12"], 2, "'12' is not a digit from 0 to 9"),
        (["--digits", "one"], 2, "'one' is not a digit from 0 to 9"),
        (["--protocol", "one-vs-one"], 2, "invalid choice: 'one-vs-one'"),
        (["-S", "split.normal_digits=[3]"], 1, "the protocol sets split.normal_digits"),
        (["-S", "params.yaml:split.normal_digits=[1]"], 1, "the protocol sets split.normal"),
        (["-S", "split={normal_digits: [1]}"], 1, "the protocol sets split.normal_digits"),
        (["-S", "++split.normal_digits=[1]"], 1, "the protocol sets split.normal_digits"),
        (["-S", "~split"], 1, "the protocol sets split.normal_digits"),
        (["-S", "train.seeds"], 1, "give key=value"),
        (["--pull=--help"], 2, "'--help' is not a remote's name or URL"),
        (["--pull=--all-commits"], 2, "'--all-commits' is not a remote's name or URL"),
        (["--push=-f"], 2, "'-f' is not a remote's name or URL"),
    ],
)
def test_bad_input_is_one_line(args, status, says, capsys, tmp_path):
    """Nothing to run: no dvc command may start, and nothing is written."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path)
    assert cli.main(["--project", str(tmp_path), "benchmark", "oneclass", *args]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


# End to end: conftest.experiments, machine A (`experiments`) and machine B (../b).


def kept(experiments: Path, name: str) -> tuple[int, str]:
    status, _, err = (experiments.parent / f"oneclass_{name}.txt").read_text().partition("\n")
    return int(status), err


@pytest.mark.slow
def test_two_machines_split_the_digits_and_the_table_holds_their_metrics(experiments: Path):
    for name in ("a", "b", "pull", "rerun"):
        status, err = kept(experiments, name)
        assert status == 0, err
    assert "pulled 2 experiments: digits [0, 1]" in kept(experiments, "pull")[1]
    tables = json.loads((experiments / oneclass.TABLES).read_text())
    table = tables[ONE_VS_REST]
    assert set(table["missing"]) == {str(d) for d in range(2, 10)}
    assert table["rows"]
    for digit in (0, 1):  # every cell is that experiment's own metric
        data = shown(experiments, f"oneclass-{digit}")
        assert data["params"]["params.yaml"]["data"]["split"]["normal_digits"] == [digit]
        metrics = metrics_file(data, paths.METRICS)
        for row in table["rows"]:
            assert row["auroc"][str(digit)] == metrics[row["variant"]][f"roc_auc_{row['score']}"]
    assert table["settings"] == {"1": ["train.latent_dim=1"]}  # read from the experiments
    report = (experiments / oneclass.REPORT).read_text()
    assert "(2 of 10 digits)" in report and "one-class Deep SVDD" in report
    assert (experiments / oneclass.figure_path(ONE_VS_REST)).stat().st_size > 10_000


@pytest.mark.slow
def test_a_failed_digit_is_reported_by_digit_and_marked_missing(experiments: Path):
    status, err = kept(experiments, "failing")
    assert status == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: digit 2 failed: ") and "evaluate.bootstrap" in line
    table = json.loads((experiments.parent / "b" / oneclass.TABLES).read_text())[ONE_VS_REST]
    assert "evaluate.bootstrap" in table["missing"]["2"]  # kept when digit 1 ran later
    assert all("2" not in row["auroc"] for row in table["rows"])


@pytest.mark.slow
def test_running_a_digit_again_restores_its_stages_from_the_run_cache(experiments: Path):
    log = (experiments.parent / "oneclass_rerun.log").read_text()
    assert "Stage 'train@ae' is cached - skipping run" in log  # machine B's digit 1
    assert "Running stage 'train@" not in log


@pytest.mark.slow
def test_the_runs_are_tagged_with_their_protocol_and_digit(experiments: Path):
    runs = runs_by_name(store_of(experiments), "aelab")["ae"]
    tagged = {r.data.tags.get("dvc.exp_name"): r.data.tags for r in runs}
    assert tagged["oneclass-0"]["aelab.protocol"] == ONE_VS_REST
    assert tagged["oneclass-0"]["aelab.digit"] == "0"
    assert "aelab.protocol" not in tagged["all-digits"] and "aelab.protocol" not in tagged[None]
    # A detector that knows one digit never becomes the lab's champion.
    client = MlflowClient(store_of(experiments))
    for version in client.search_model_versions("name = 'aelab-anomaly'"):
        assert "aelab.protocol" not in client.get_run(version.run_id).data.tags


def test_a_read_that_hangs_is_stopped_and_asked_again(monkeypatch, tmp_path: Path):
    """A read of the experiments past its time is killed and asked again, then one error
    line. The forked reader hangs as pygit2's BlobIO does: it never answers."""
    started = tmp_path / "started"

    def hang(root, sending) -> None:
        with started.open("a") as tally:
            tally.write(".")
        time.sleep(3600)

    monkeypatch.setattr(dvc_experiments, "READ_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(dvc_experiments, "_send_experiments", hang)
    with pytest.raises(AelabError) as refused:
        dvc_experiments.show(tmp_path)
    attempts = dvc_experiments.READ_ATTEMPTS
    assert str(refused.value) == (
        f"DVC's experiments did not come within 0 s, {attempts} times; run it again"
    )
    assert started.read_text() == "." * attempts


def test_dvcs_reason_is_one_line_outside_a_dvc_project(tmp_path: Path):
    with pytest.raises(AelabError) as refused:
        dvc_experiments.show(tmp_path)
    assert str(refused.value).startswith("DVC cannot show the experiments: ")
    assert "\n" not in str(refused.value)


def test_a_one_class_run_registers_nothing():
    params = SimpleNamespace(split=SimpleNamespace(normal_digits=[4]))
    assert not_registered(params, []) == "a one-class benchmark run"
    assert not_registered(params, ["train@ae"]) == "stale stages"
    params.split.normal_digits = [0, 1, 2, 3, 4]
    assert not_registered(params, []) is None


def test_an_experiments_changes_are_listed_without_the_protocols_split():
    baseline = {"train": {"seeds": 3, "hidden_dims": [128]}, "split": {"normal_digits": [0, 1]}}
    params = {"train": {"seeds": 1, "hidden_dims": [64, 32]}, "split": {"normal_digits": [7]}}
    changes = oneclass.changes_from(baseline, params)
    assert changes == ["train.hidden_dims=[64, 32]", "train.seeds=1"]
    assert oneclass.changes_from(baseline, baseline) == []


def test_changes_beside_the_normal_digits_are_taken():
    """The split's other keys, alone or as a mapping that leaves normal_digits out, and
    another params file (the pipeline reads params.yaml only)."""
    oneclass.check_changes(PROJECT_ROOT, ["split.val_fraction=0.2", "split={val_fraction: 0.2}",
                            "other.yaml:split.normal_digits=[1]", "train.seeds=1"])  # fmt: skip
