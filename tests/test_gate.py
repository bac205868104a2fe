"""`aelab check`: the rules, and the real command on a temporary git + DVC repository."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import PROJECT_ROOT, VENV_BIN, run, set_params
from locks import lock

from aelab.analysis.intervals import Estimate
from aelab.cli import main
from aelab.core.errors import AelabError
from aelab.core.params import RegressionRule
from aelab.reports.gate import (
    FREE,
    NOT_FINITE,
    REGRESSED,
    REMOVED,
    allowance_note,
    check_rules,
    compare,
    failed,
    fallbacks,
    family_scale,
    judge,
    noise,
    paired_noise,
    power,
    rule_for,
    summary,
    table,
    too_few_same,
)
from aelab.reports.provenance import EXACT, PAIRED, UNPAIRED, Provenance

HIGHER = RegressionRule(better="higher", tolerance=0.01)
LOWER = RegressionRule(better="lower", tolerance=0.001)
ANY = RegressionRule(better="any")
RULES = {"pca.roc_auc": RegressionRule(better="higher", tolerance=0.1), "roc_auc": HIGHER,
         "ari_*": HIGHER, "mse": LOWER, "threshold": ANY}  # fmt: skip
METRICS = {
    "ae": {"roc_auc": 0.85, "ari_all": 0.31, "mse": 0.0148, "threshold": 0.029},
    "pca": {"roc_auc": 0.80, "ari_all": 0.34, "mse": 0.0157, "threshold": 0.031},
}


@pytest.mark.parametrize(
    ("old", "new", "rule", "verdict"),
    [
        (0.85, 0.86, HIGHER, "improved"),
        (0.85, 0.845, HIGHER, "within tolerance"),
        (0.85, 0.84, HIGHER, "within tolerance"),  # exactly the tolerance
        (0.85, 0.83, HIGHER, REGRESSED),
        (0.0148, 0.0150, LOWER, "within tolerance"),
        (0.0148, 0.0170, LOWER, REGRESSED),
        (0.0148, 0.0100, LOWER, "improved"),
        (0.85, None, HIGHER, REMOVED),
        (None, 0.85, HIGHER, "added"),
        (None, None, HIGHER, "same"),
        (0.03, 0.5, ANY, FREE),
        (0.85, float("inf"), HIGHER, NOT_FINITE),
        (0.0148, float("-inf"), LOWER, NOT_FINITE),
        (0.85, float("nan"), HIGHER, NOT_FINITE),
        (float("nan"), 0.85, HIGHER, "added"),
        (0.0, 1e-12, RegressionRule(better="lower"), "within tolerance"),  # EPSILON: float noise
    ],
)
def test_judge(old, new, rule, verdict):
    assert judge(old, new, rule) == verdict


@pytest.mark.parametrize(
    ("old", "new", "rule", "chance", "verdict"),
    [
        (0.85, 0.83, HIGHER, 0.03, "within noise"),
        (0.85, 0.82, HIGHER, 0.03, "within noise"),  # exactly the noise
        (0.85, 0.81, HIGHER, 0.03, REGRESSED),
        (0.85, 0.845, HIGHER, 0.03, "within tolerance"),
        (0.85, 0.83, HIGHER, 0.001, REGRESSED),  # the tolerance is the floor
        (0.0148, 0.0160, LOWER, 0.002, "within noise"),
        (0.0148, 0.0170, LOWER, 0.002, REGRESSED),
        (0.85, 0.50, ANY, 0.03, FREE),
    ],
)
def test_judge_allows_the_noise_of_the_difference(old, new, rule, chance, verdict):
    assert judge(old, new, rule, chance) == verdict


def test_the_noise_of_a_difference_combines_both_half_widths():
    assert noise(0.03, 0.04) == pytest.approx(0.05)
    assert noise(None, 0.04) == pytest.approx(0.04)
    assert noise(None, None) == 0.0


def test_first_matching_rule_wins_and_wildcards_span_variants():
    assert rule_for("pca", "roc_auc", RULES).tolerance == 0.1
    assert rule_for("ae", "roc_auc", RULES) is HIGHER
    assert rule_for("vae", "ari_normal", RULES) is HIGHER
    assert rule_for("ae", "threshold", RULES) is ANY
    assert rule_for("ae", "psnr", RULES) is None


def test_a_rule_that_matches_nothing_or_a_metric_without_a_rule_is_an_error():
    keys = ["ae.roc_auc", "pca.roc_auc", "ae.ari_all", "ae.mse", "ae.threshold"]
    check_rules(keys, RULES)
    with pytest.raises(AelabError, match=r"^regression rule 'roc-auc' in params.yaml matches no"):
        check_rules(keys, {**RULES, "roc-auc": HIGHER})
    with pytest.raises(
        AelabError, match=r"^metric 'ae.psnr' \(and 1 more\) has no regression rule"
    ):
        check_rules([*keys, "ae.psnr", "ae.f1"], RULES)


def test_the_rule_errors_word_for_word():
    keys = ["ae.roc_auc", "pca.roc_auc", "ae.ari_all", "ae.mse", "ae.threshold"]
    with pytest.raises(AelabError) as error:
        check_rules(keys, {**RULES, "roc-auc": HIGHER})
    assert str(error.value) == (
        "regression rule 'roc-auc' in params.yaml matches no metric; correct its name or delete it"
    )
    with pytest.raises(AelabError) as error:
        check_rules([*keys, "ae.psnr"], RULES)
    assert str(error.value) == (
        "metric 'ae.psnr' has no regression rule in params.yaml; add one "
        "(`better: any` lets it change freely)"
    )


def test_one_metric_keeps_its_95_percent_interval_and_many_widen_theirs_together():
    assert family_scale(1) == 1.0
    # Bonferroni: 100 intervals at 99.95 % each: z(0.99975) / z(0.975)
    assert family_scale(100) == pytest.approx(3.4808 / 1.9600, abs=1e-3)
    assert family_scale(0) == 1.0  # nothing judged: nothing to widen


def test_a_move_past_its_own_interval_is_chance_among_many_metrics():
    """-0.04 against a noise of 0.032 regresses when ae.roc_auc is judged alone; beside 99
    other metrics, one such move is what chance gives (allowed 0.032 x 1.78)."""
    move = {"ae.roc_auc": {"old": 0.85, "new": 0.81}}
    halves = {"ae.roc_auc": {"old": 0.02, "new": 0.025}}
    [alone] = compare(move, {"roc_auc": HIGHER}, halves)
    assert (alone.allowed, alone.verdict) == ("-0.032", REGRESSED)
    others = {f"ae.mse_{i}": {"old": 0.01, "new": 0.01} for i in range(99)}
    rows = compare(move | others, {"roc_auc": HIGHER, "mse_*": LOWER}, halves)
    [among] = [row for row in rows if row.metric == "roc_auc"]
    assert (among.allowed, among.verdict) == ("-0.057", "within noise")
    free = {f"ae.threshold_{i}": {"old": 0.1, "new": 0.2} for i in range(99)}
    rows = compare(move | free, {"roc_auc": HIGHER, "threshold_*": ANY}, halves)
    assert failed(rows)  # `better: any` metrics are not judged, so they widen nothing


def test_a_rule_for_one_variant_applies_to_it_alone():
    diff = {"pca.roc_auc": {"old": 0.80, "new": 0.75}, "ae.roc_auc": {"old": 0.85, "new": 0.80}}
    rows = compare(diff, {"pca.roc_auc": RegressionRule(better="higher", tolerance=0.1),
                          "roc_auc": HIGHER})  # fmt: skip
    assert [(row.variant, row.verdict) for row in rows] == [
        ("ae", REGRESSED),
        ("pca", "within tolerance"),
    ]


def test_the_variant_is_the_key_up_to_its_first_dot():
    rows = compare({"ae.train.loss": {"old": 0.5, "new": 0.4}}, {"train.loss": LOWER})
    assert [(row.variant, row.metric, row.verdict) for row in rows] == [
        ("ae", "train.loss", "improved")
    ]


def test_values_that_are_not_numbers_count_as_missing():
    diff = {"ae.f1": {"old": True, "new": 0.5}, "ae.mse": {"old": 0.01, "new": "0.02"}}
    rows = compare(diff, {"f1": HIGHER, "mse": LOWER})
    assert [(row.metric, row.old, row.new, row.verdict) for row in rows] == [
        ("f1", None, 0.5, "added"),
        ("mse", 0.01, None, REMOVED),
    ]


def test_table_lists_changes_with_allowed_and_verdict():
    rows = compare({"ae.roc_auc": {"old": 0.85, "new": 0.80}, "ae.mse": {"old": 0.01, "new": 0.01}},
                   {"roc_auc": HIGHER, "mse": LOWER})  # fmt: skip
    assert failed(rows)
    text = table(rows)
    assert "| ae | roc_auc | 0.85 | 0.8 | -0.05 | -0.01 | unpaired | **REGRESSED** |" in text
    assert "| ae | mse |" not in text  # unchanged rows only with everything=True
    assert "| ae | mse |" in table(rows, everything=True)


def test_table_of_every_kind_of_row_word_for_word():
    rows = compare(
        {
            "ae.roc_auc": {"old": 0.85, "new": 0.80},
            "ae.mse": {"old": 0.0148, "new": 0.0140},
            "ae.threshold": {"old": 0.03, "new": 0.5},
            "ae.ari_all": {"old": 0.31},
            "ae.f1": {"old": 0.5, "new": 0.5},
        },
        {"roc_auc": HIGHER, "mse": LOWER, "threshold": ANY, "ari_all": HIGHER, "f1": HIGHER},
    )
    assert table(rows) == (
        "| variant | metric | old (± 95 %) | new (± 95 %) | change | allowed | judged | verdict |\n"
        "|---|---|---:|---:|---:|---:|---|---|\n"
        "| ae | ari_all | 0.31 | — |  | -0.01 | — | **REMOVED** |\n"
        "| ae | mse | 0.0148 | 0.014 | -0.0008 | +0.001 | unpaired | improved |\n"
        "| ae | roc_auc | 0.85 | 0.8 | -0.05 | -0.01 | unpaired | **REGRESSED** |\n"
        f"| ae | threshold | 0.03 | 0.5 | +0.47 | any | unpaired | {FREE} |\n"
    )
    assert summary(rows) == (
        "aelab check FAILED: 5 metrics compared "
        "(1 REGRESSED, 1 REMOVED, 1 changed (better: any), 1 improved, 1 same)"
    )
    unchanged = [row for row in rows if row.verdict == "same"]
    assert table(unchanged) == "No metric changed.\n"


def test_a_gate_without_failing_rows_passes():
    rows = compare({"ae.roc_auc": {"old": 0.85, "new": 0.845}, "ae.mse": {"old": 0.01, "new": 0.01},
                    "ae.f1": {"old": 0.5, "new": 0.5}}, {"roc_auc": HIGHER, "mse": LOWER,
                                                         "f1": HIGHER})  # fmt: skip
    assert not failed(rows)
    assert summary(rows) == "aelab check passed: 3 metrics compared (2 same, 1 within tolerance)"
    assert too_few_same(rows, 2 / 3) == ""
    assert too_few_same(rows, 0.95) == (
        "aelab check FAILED: 2 of 3 metrics (66.7%) came out the same, fewer than --min-same "
        "0.95 asks: this run does not reproduce the revision's reports (docs/gate.md: What "
        "reproduces across machines)"
    )


def test_table_prints_each_mean_with_its_interval():
    rows = compare({"ae.roc_auc": {"old": 0.85, "new": 0.86}}, {"roc_auc": HIGHER},
                   {"ae.roc_auc": {"old": 0.021, "new": 0.019}})  # fmt: skip
    assert (
        "| ae | roc_auc | 0.85 ± 0.021 | 0.86 ± 0.019 | +0.01 | -0.028 | unpaired | improved |"
        in table(rows)
    )


def terms(seed: float, seeds: int = 3) -> dict:
    """A reports/noise.json entry with this seed term (the test term plays no part)."""
    return {"seed": seed, "test": 0.05, "seeds": seeds, "dof": 4.0}


def test_an_exact_metric_is_judged_by_its_tolerance_alone():
    """Byte-identical inputs: wide intervals allow nothing, the floor applies."""
    move = {"ae.roc_auc": {"old": 0.85, "new": 0.83}}
    halves = {"ae.roc_auc": {"old": 0.05, "new": 0.05}}
    [unpaired] = compare(move, {"roc_auc": HIGHER}, halves)
    assert (unpaired.allowed, unpaired.verdict) == ("-0.071", "within noise")
    [exact] = compare(move, {"roc_auc": HIGHER}, halves, Provenance({"ae": EXACT}))
    assert (exact.allowed, exact.basis, exact.verdict) == ("-0.01", EXACT, REGRESSED)


def estimate(seed_values: list[float]) -> Estimate:
    """Each seed's value on the test digits, and on two resamples of them: 0.04 lower and
    0.04 higher for every seed."""
    return Estimate.of(np.array([[v, v - 0.04, v + 0.04] for v in seed_values]))


def test_pairing_on_the_same_test_digits_catches_what_both_intervals_let_through():
    """Old seeds 0.90, 0.91, 0.92; new 0.85, 0.86, 0.87: a drop of 0.05. Each seed spread
    has sd 0.01, so u_seed = 0.01 / √3 = 0.005774 (2 degrees of freedom); the seed-mean's
    resamples are the mean ∓ 0.04, so u_test = sd(∓0.04) = 0.04 √2 = 0.05657.
    Unpaired: each half-width is t(0.975, ν) √(u_seed² + u_test²) = 1.960 × 0.05686 =
    0.1115 (ν = 0.05686⁴ × 2 / 0.005774⁴ = 18818), and the difference may be √2 × 0.1115
    = 0.158: the drop passes as noise. Paired (the same test digits): the test terms
    cancel, u = √(2 × 0.005774²) = 0.008165 at ν = u⁴ / (2 × 0.005774⁴ / 2) = 4, so
    t(0.975, 4) × u = 2.776 × 0.008165 = 0.0227: the drop regresses."""
    old, new = estimate([0.90, 0.91, 0.92]), estimate([0.85, 0.86, 0.87])
    assert old.u_seed == pytest.approx(0.005774, abs=1e-6)
    assert old.u_test == pytest.approx(0.05657, abs=1e-5)
    assert old.half_width() == pytest.approx(0.1115, abs=1e-4)
    move = {"ae.roc_auc": {"old": old.mean, "new": new.mean}}
    halves = {"ae.roc_auc": {"old": old.half_width(), "new": new.half_width()}}
    noises = {"ae.roc_auc": {"old": old.noise(), "new": new.noise()}}
    [unpaired] = compare(move, {"roc_auc": HIGHER}, halves, Provenance({}), noises)
    assert unpaired.allowance == pytest.approx(0.1576, abs=1e-4)
    assert (unpaired.basis, unpaired.verdict) == (UNPAIRED, "within noise")
    [paired] = compare(move, {"roc_auc": HIGHER}, halves, Provenance({"ae": PAIRED}), noises)
    assert paired_noise(old.noise(), new.noise()) == pytest.approx(2.7764 * 0.008165, abs=1e-5)
    assert paired.allowance == pytest.approx(0.02267, abs=1e-5)
    assert (paired.basis, paired.verdict) == (PAIRED, REGRESSED)


def test_a_pairing_needs_both_runs_seed_spread():
    """One seed (its spread unknown, not zero), or a baseline without noise.json: the
    unpaired rule, from both half-widths."""
    move = {"ae.roc_auc": {"old": 0.85, "new": 0.80}}
    halves = {"ae.roc_auc": {"old": 0.03, "new": 0.04}}
    paired = Provenance({"ae": PAIRED})
    for noises in ({"ae.roc_auc": {"old": terms(0.0, seeds=1), "new": terms(0.004)}},
                   {"ae.roc_auc": {"new": terms(0.004)}}, {}):  # fmt: skip
        [row] = compare(move, {"roc_auc": HIGHER}, halves, paired, noises)
        assert (row.basis, row.allowed, row.verdict) == (UNPAIRED, "-0.05", "within noise")


def test_only_the_metrics_whose_inputs_changed_widen_each_other():
    """One paired metric beside 99 exact ones is judged alone (x1); unpaired among 100,
    each interval widens x1.78."""
    move = {"ae.roc_auc": {"old": 0.85, "new": 0.80}}
    others = {f"pca.mse_{i}": {"old": 0.01, "new": 0.01} for i in range(99)}
    noises = {"ae.roc_auc": {"old": terms(0.004), "new": terms(0.003)}}
    halves = {"ae.roc_auc": {"old": 0.03, "new": 0.04}}
    rules = {"roc_auc": HIGHER, "mse_*": LOWER}
    provenance = Provenance({"ae": PAIRED, "pca": EXACT})
    [row] = [r for r in compare(move | others, rules, halves, provenance, noises)
             if r.metric == "roc_auc"]  # fmt: skip
    assert row.allowance == pytest.approx(paired_noise(terms(0.004), terms(0.003)))
    [row] = [r for r in compare(move | others, rules, halves) if r.metric == "roc_auc"]
    assert row.allowance == pytest.approx(0.05 * family_scale(100))


def test_the_power_of_each_rule_by_basis_word_for_word():
    """Medians of the allowances per rule and basis, and how many metrics each."""
    diff = {f"{v}.roc_auc_{s}": {"old": 0.9, "new": 0.9} for v in ("ae", "dae")
            for s in ("knn", "gmm")}  # fmt: skip
    diff |= {"ae.psnr": {"old": 18.0, "new": 18.1}, "dae.psnr": {"old": 18.0, "new": None},
             "ae.threshold": {"old": 0.1, "new": 0.2}}  # fmt: skip
    noises = {"dae.roc_auc_knn": {"old": terms(0.004), "new": terms(0.003)},
              "dae.roc_auc_gmm": {"old": terms(0.008), "new": terms(0.006)}}  # fmt: skip
    rules = {"roc_auc_*": HIGHER, "psnr": RegressionRule(better="higher", tolerance=0.2),
             "threshold": ANY}  # fmt: skip
    rows = compare(diff, rules, {}, Provenance({"ae": EXACT, "dae": PAIRED}), noises)
    paired = [paired_noise(terms(0.004), terms(0.003)), paired_noise(terms(0.008), terms(0.006))]
    median = sum(paired) / 2 * family_scale(2)
    assert power(rows) == (
        "| family | exact | paired | unpaired |\n"
        "|---|---:|---:|---:|\n"
        "| psnr | -0.2 (1) | — | — |\n"
        f"| roc_auc_* | -0.01 (2) | -{median:.2g} (2) | — |\n"
    )
    assert f"widened x{family_scale(2):.2f} so that the intervals of the 2 judged metrics" in (
        allowance_note(rows)
    )


def test_the_line_under_the_table_says_why_a_pairing_fell_back():
    diff = {"dae.roc_auc": {"old": 0.9, "new": 0.88}}
    provenance = Provenance({"dae": PAIRED})
    rows = compare(diff, {"roc_auc": HIGHER}, {}, provenance, {})
    assert fallbacks("v1.0", rows, provenance, {}) == (
        "1 metric whose inputs changed judged unpaired (both intervals, the rule before "
        "pairing): v1.0 has no reports/noise.json.\n"
    )
    unknown = Provenance({}, "the dvc.lock of the baseline does not record its metrics")
    assert fallbacks("v1.0", rows, unknown, {}) == (
        "Every metric is judged unpaired: the dvc.lock of the baseline does not record its "
        "metrics.\n"
    )
    assert fallbacks("v1.0", compare(diff, {"roc_auc": HIGHER}), Provenance({}), {}) == ""
    assert allowance_note(compare(diff, {"roc_auc": HIGHER}, {}, Provenance({"dae": EXACT}))) == (
        "allowed: exact: every input byte-identical (only evaluation code or params changed), "
        "the rule's tolerance alone.\n"
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository whose committed metrics are METRICS and whose params.yaml
    is the project's with RULES as its `regression:` section."""
    folder = tmp_path_factory.mktemp("baseline")
    (folder / "reports").mkdir()
    shutil.copy(PROJECT_ROOT / "params.yaml", folder / "params.yaml")
    set_params(folder, regression={pattern: rule.model_dump() for pattern, rule in RULES.items()})
    (folder / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: 'true'\n    metrics:\n"
        "      - reports/metrics.json:\n          cache: false\n"
    )
    write_metrics(folder, METRICS)
    run(["git", "init", "-q"], cwd=folder)
    run(["dvc", "init", "-q"], cwd=folder)
    run(["git", "add", "-A"], cwd=folder)
    run(["git", "commit", "-qm", "baseline"], cwd=folder)
    return folder


@pytest.fixture
def repo(baseline: Path, tmp_path: Path) -> Path:
    """A copy of the baseline repository for one test to change."""
    return Path(shutil.copytree(baseline, tmp_path / "repo", symlinks=True))


def write_metrics(repo: Path, metrics: dict) -> None:
    (repo / "reports" / "metrics.json").write_text(json.dumps(metrics, indent=2))


@dataclass(frozen=True)
class Checked:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def aelab_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """`aelab check ARGS` in a repository, in this process (it runs git and
    `dvc metrics diff`): its exit status and output."""
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")

    def check(repo: Path, *args: str) -> Checked:
        status = main(["--project", str(repo), "check", *args])
        captured = capsys.readouterr()
        return Checked(status, captured.out, captured.err)

    return check


@pytest.mark.slow  # git and dvc processes
def test_the_command_exits_1_when_a_metric_regressed(repo: Path):
    """The exit-status contract, through the installed `aelab` command."""
    write_metrics(repo, changed(ae__roc_auc=0.83))
    result = run([str(VENV_BIN / "aelab"), "check"], cwd=repo, check=False)
    assert result.returncode == 1 and "aelab check FAILED" in result.stdout


def changed(**changes: float | None) -> dict:
    """METRICS with `variant__metric=value` changes (None removes the metric)."""
    metrics = json.loads(json.dumps(METRICS))
    for key, value in changes.items():
        variant, metric = key.split("__")
        if value is None:
            del metrics[variant][metric]
        else:
            metrics[variant][metric] = value
    return metrics


@pytest.mark.slow  # git and dvc processes
def test_unchanged_metrics_pass(repo: Path, aelab_check):
    result = aelab_check(repo)
    assert result.returncode == 0, result.stderr
    assert "passed: 8 metrics compared (8 same)" in result.stdout


@pytest.mark.slow  # git and dvc processes
def test_an_improvement_and_a_drop_within_tolerance_pass(repo: Path, aelab_check):
    write_metrics(repo, changed(ae__roc_auc=0.90, ae__ari_all=0.305, ae__mse=0.0150))
    result = aelab_check(repo)
    assert result.returncode == 0, result.stdout
    assert "| ae | roc_auc | 0.85 | 0.9 | +0.05 | -0.01 | unpaired | improved |" in result.stdout
    assert (
        "| ae | ari_all | 0.31 | 0.305 | -0.005 | -0.01 | unpaired | within tolerance |"
        in result.stdout
    )
    assert (
        "| ae | mse | 0.0148 | 0.015 | +0.0002 | +0.001 | unpaired | within tolerance |"
        in result.stdout
    )


@pytest.mark.slow  # git and dvc processes
def test_a_drop_beyond_tolerance_fails_with_the_table(repo: Path, aelab_check):
    write_metrics(repo, changed(ae__roc_auc=0.83))
    result = aelab_check(repo)
    assert result.returncode == 1
    assert (
        "| ae | roc_auc | 0.85 | 0.83 | -0.02 | -0.01 | unpaired | **REGRESSED** |" in result.stdout
    )
    assert "aelab check FAILED" in result.stdout


def write_intervals(repo: Path, intervals: dict) -> None:
    (repo / "reports" / "intervals.json").write_text(json.dumps(intervals))


@pytest.mark.slow  # git and dvc processes
def test_a_move_within_the_intervals_passes_and_one_beyond_them_fails(repo: Path, aelab_check):
    """Committed: ae.roc_auc 0.85 ± 0.02. Then ± 0.025: the difference of the two means
    may be -0.032 (the hypotenuse of both half-widths) by chance alone, -0.043 when the
    intervals of all 6 judged metrics must hold together (x1.35)."""
    (repo / "dvc.yaml").write_text(
        (repo / "dvc.yaml").read_text()
        + "      - reports/intervals.json:\n          cache: false\n"
    )
    write_intervals(repo, {"ae": {"roc_auc": 0.02}, "pca": {"roc_auc": 0.03}})
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "intervals"], cwd=repo)
    write_intervals(repo, {"ae": {"roc_auc": 0.025}, "pca": {"roc_auc": 0.03}})

    write_metrics(repo, changed(ae__roc_auc=0.825))
    result = aelab_check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "| ae | roc_auc | 0.85 ± 0.02 | 0.825 ± 0.025 | -0.025 | -0.043 | unpaired | within noise |"
        in result.stdout
    )
    assert "widened x1.35 so that the intervals of the 6 judged metrics" in result.stdout

    write_metrics(repo, changed(ae__roc_auc=0.80))
    result = aelab_check(repo)
    assert result.returncode == 1
    assert (
        "| ae | roc_auc | 0.85 ± 0.02 | 0.8 ± 0.025 | -0.05 | -0.043 | unpaired | **REGRESSED** |"
        in result.stdout
    )


@pytest.mark.slow  # git and dvc processes
def test_a_change_to_evaluation_alone_is_judged_exactly(repo: Path, aelab_check):
    """Two revisions whose dvc.lock differ only in an evaluate param (knn.k 1 -> 25): every
    metric is exact, and a drop of 0.02 fails against the floor of 0.01 although it lies
    within both intervals' noise (-0.043, as in the test above)."""
    features = {"ae": "ae-1.dir", "pca": "pca-1.dir"}
    write_intervals(repo, {"ae": {"roc_auc": 0.02}, "pca": {"roc_auc": 0.03}})
    metrics = repo / "reports" / "metrics.json"
    (repo / "dvc.lock").write_text(lock(metrics.read_bytes(), features=features))
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "a locked baseline"], cwd=repo)
    write_metrics(repo, changed(ae__roc_auc=0.83))
    (repo / "dvc.lock").write_text(lock(metrics.read_bytes(), features=features, knn_k=25))
    result = aelab_check(repo, "--all")
    assert result.returncode == 1
    regressed = (
        "| ae | roc_auc | 0.85 ± 0.02 | 0.83 ± 0.02 | -0.02 | -0.01 | exact | **REGRESSED** |"
    )
    assert regressed in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| ae |", "| pca |"))]
    assert len(rows) == 8 and all(" | exact | " in line for line in rows)
    assert "| roc_auc | -0.01 (1) | — | — |" in result.stdout  # what fails, by rule
    assert "| pca.roc_auc | -0.1 (1) | — | — |" in result.stdout


@pytest.mark.slow  # git and dvc processes
def test_without_git_or_dvc_on_path_it_says_so(repo: Path, aelab_check, monkeypatch):
    monkeypatch.setenv("PATH", str(repo))  # neither git nor dvc there
    result = aelab_check(repo)
    assert result.returncode == 2
    assert result.stderr == (
        "error: `git` is not on PATH; activate the project's venv (`make install`) or install it\n"
    )


@pytest.mark.slow  # git and dvc processes
def test_lower_is_better_metrics_fail_when_they_rise(repo: Path, aelab_check):
    write_metrics(repo, changed(pca__mse=0.0200))
    result = aelab_check(repo)
    assert result.returncode == 1
    assert (
        "| pca | mse | 0.0157 | 0.02 | +0.0043 | +0.001 | unpaired | **REGRESSED** |"
        in result.stdout
    )


@pytest.mark.slow  # git and dvc processes
def test_a_removed_metric_or_variant_fails_and_an_added_one_is_reported(repo: Path, aelab_check):
    write_metrics(repo, changed(ae__ari_all=None))
    result = aelab_check(repo)
    assert result.returncode == 1
    assert "| ae | ari_all | 0.31 | — |  | -0.01 | — | **REMOVED** |" in result.stdout

    write_metrics(repo, {"ae": METRICS["ae"]})  # pca is gone
    assert aelab_check(repo).returncode == 1

    write_metrics(repo, {**METRICS, "vae": {"roc_auc": 0.84}})
    result = aelab_check(repo)
    assert result.returncode == 0
    assert "| vae | roc_auc | — | 0.84 |  | -0.01 | — | added |" in result.stdout


@pytest.mark.slow  # git and dvc processes
def test_a_metric_with_better_any_changes_freely(repo: Path, aelab_check):
    write_metrics(repo, changed(ae__threshold=0.5))
    result = aelab_check(repo)
    assert result.returncode == 0
    assert f"| ae | threshold | 0.029 | 0.5 | +0.471 | any | unpaired | {FREE} |" in result.stdout


@pytest.mark.slow  # git and dvc processes
@pytest.mark.parametrize("value", ["Infinity", "1e400", "NaN", "-Infinity"])
def test_a_non_finite_value_fails(repo: Path, aelab_check, value: str):
    write_metrics(repo, changed(ae__roc_auc=12345.0))
    path = repo / "reports" / "metrics.json"
    path.write_text(path.read_text().replace("12345.0", value))
    result = aelab_check(repo)
    assert result.returncode == 1, result.stdout
    assert f"**{NOT_FINITE}**" in result.stdout


@pytest.mark.slow  # git and dvc processes
def test_a_rule_matching_no_metric_cannot_compare(repo: Path, aelab_check):
    set_params(repo, regression={"roc-auc": {"better": "higher", "tolerance": 0.01},
                                 **{p: r.model_dump() for p, r in RULES.items()}})  # fmt: skip
    write_metrics(repo, changed(ae__roc_auc=0.35))
    result = aelab_check(repo)
    assert result.returncode == 2
    assert result.stderr == (
        "error: regression rule 'roc-auc' in params.yaml matches no metric; "
        "correct its name or delete it\n"
    )


@pytest.mark.slow  # git and dvc processes
def test_malformed_json_cannot_be_compared(repo: Path, aelab_check):
    (repo / "reports" / "metrics.json").write_text('{"ae": {"roc_auc": 0.8')
    result = aelab_check(repo)
    assert result.returncode == 2
    assert result.stderr.startswith("error: reports/metrics.json: not valid JSON (")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # git and dvc processes
def test_an_unknown_revision_cannot_be_compared(repo: Path, aelab_check):
    for rev in ("no-such-branch", "HEAD^{tree}"):
        result = aelab_check(repo, "--rev", rev)
        assert result.returncode == 2
        assert result.stderr == (
            f"error: --rev {rev!r} names no commit of this git repository; "
            "give a branch, tag or commit\n"
        )


@pytest.mark.slow  # git and dvc processes
def test_a_revision_without_metrics_cannot_be_compared(repo: Path, aelab_check):
    (repo / "reports" / "metrics.json").rename(repo / "reports" / "kept.json")
    run(["git", "rm", "-q", "--cached", "reports/metrics.json"], cwd=repo)
    run(["git", "commit", "-qm", "no metrics"], cwd=repo)
    (repo / "reports" / "kept.json").rename(repo / "reports" / "metrics.json")
    result = aelab_check(repo)
    assert result.returncode == 2
    assert "has no metrics at revision 'HEAD'" in result.stderr


@pytest.mark.slow  # git and dvc processes
def test_bad_arguments_cannot_be_compared(repo: Path, aelab_check):
    result = run([str(VENV_BIN / "aelab"), "chek"], cwd=repo, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: aelab: argument command: invalid choice")
