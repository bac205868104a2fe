"""`aelab tune`: an Optuna study of a variant's lr and batch size on tiny data, its trials
in MLflow, and a study two processes share."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from helpers import free_port, set_params
from mlflow import MlflowClient
from test_models import config, digits_like

from aelab.cli import main
from aelab.core.errors import AelabError
from aelab.core.params import load_params
from aelab.training import tuning


@pytest.fixture
def unseen_test_digits(workspace: Path) -> Path:
    """The workspace without its test digits: tuning must never open them (the stages that
    read them stop with "file not found")."""
    (workspace / "data" / "split" / "test.npz").rename(workspace / "elsewhere.npz")
    return workspace


def test_two_trials_find_values_log_each_trial_and_print_the_exp_run_line(
    unseen_test_digits: Path, store: str, capsys: pytest.CaptureFixture
):
    storage = f"sqlite:///{unseen_test_digits / 'studies.db'}"
    project = ["--project", str(unseen_test_digits)]
    assert main([*project, "tune", "ae", "--trials", "2", "--storage", storage]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("tune ae: 2 trials (0 pruned) in ")
    assert out[1].startswith("dvc exp run -S 'variants.ae.lr=")
    assert "-S 'variants.ae.batch_size=" in out[1]

    study = optuna.load_study(study_name="ae", storage=storage)
    assert len(study.trials) == 2 and study.best_value > 0
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("aelab-tuning").experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["ae trial 0", "ae trial 1"]
    for run in runs:
        assert set(run.data.params) == {"lr", "batch_size"}
        curve = client.get_metric_history(run.info.run_id, "val_mse")
        assert [point.step for point in curve] == [1, 2]  # train.max_epochs of the workspace


def test_a_second_call_adds_to_the_study_up_to_its_trials(workspace: Path, capsys):
    storage = f"sqlite:///{workspace / 'studies.db'}"
    params = load_params(workspace / "params.yaml")
    first = tuning.tune(workspace, params, "ae", 1, storage)
    again = tuning.tune(workspace, params, "ae", 3, storage)
    assert (first.trials, again.trials) == (1, 3)
    assert (
        tuning.tune(workspace, params, "ae", 3, storage).trials == 3
    )  # already there: no new trial


def test_a_study_of_another_definition_is_refused(workspace: Path):
    storage = f"sqlite:///{workspace / 'studies.db'}"
    tuning.tune(workspace, load_params(workspace / "params.yaml"), "ae", 1, storage)
    set_params(workspace, variants__ae__latent_dim=3)
    with pytest.raises(AelabError, match=r"^study 'ae' in sqlite:///.* searched another "
                       r"definition of the variant \(.*\); give --study a new name$"):  # fmt: skip
        tuning.tune(workspace, load_params(workspace / "params.yaml"), "ae", 2, storage)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "pca"], "error: variant 'pca' is PCA: it has no training hyperparameters"),
        (["tune", "nope"], "error: unknown variant 'nope'; params.yaml defines: ae, pca"),
        (["tune", "ae", "--storage", "optuna.db"], "error: tuning storage 'optuna.db' is not a"),
        (["tune", "ae", "--trials", "0"], "error: aelab tune: argument --trials: '0' is not"),
    ],
)
def test_bad_tuning_input_is_one_line(workspace: Path, capsys, argv, message):
    set_params(workspace, variants={"ae": {"kind": "ae"}, "pca": {"kind": "pca"}})
    assert main(["--project", str(workspace), *argv]) in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_diverging_trial_is_a_failed_point_not_a_crash():
    trial = optuna.trial.FixedTrial({"lr": 1.0, "batch_size": 16})  # the log-variance explodes
    data = (digits_like(64), digits_like(16, seed=1))
    assert tuning.objective(trial, "vae", config("vae", max_epochs=5), data, 0) == math.inf
    assert "lower the learning rate" in trial.user_attrs["failed"]


def test_the_exp_run_line_sets_the_recommended_values():
    best = tuning.Outcome({"lr": 0.001, "batch_size": 16}, 0.0100, 0.0002, 3, 90.0)
    fast = tuning.Outcome({"lr": 0.0031234, "batch_size": 32}, 0.0101, 0.0002, 3, 30.0)
    result = tuning.Study("dae", best, fast, 20, 5, 100.0)
    assert tuning.exp_run_line(result) == (
        "dvc exp run -S 'variants.dae.lr=0.00312' -S 'variants.dae.batch_size=32'"
    )


def test_the_recommendation_is_the_fastest_within_the_noise_of_the_lowest():
    """The best's standard error 0.0002 (3 seeds) for both means: the difference's
    u = sqrt(2) x 0.0002 = 0.000283 with 2 x (3 - 1) = 4 degrees of freedom,
    t(0.975, 4) = 2.776, so a difference up to 0.000785 is noise."""
    best = tuning.Outcome({"batch_size": 16}, 0.0100, 0.0002, 3, 90.0)
    close = tuning.Outcome({"batch_size": 64}, 0.0107, 0.0001, 3, 30.0)  # 0.0007: noise
    far = tuning.Outcome({"batch_size": 256}, 0.0109, 0.0001, 3, 10.0)  # 0.0009: worse
    scattered = tuning.Outcome({"batch_size": 32}, 0.0300, 0.0060, 3, 5.0)  # noisy, worse
    assert tuning.recommend([far, best, close, scattered]) == (best, close)
    assert tuning.recommend([best, far]) == (best, best)
    assert close.ties_with(best) and not far.ties_with(best)
    assert not scattered.ties_with(best)  # its own spread does not bring it closer


def test_an_unreachable_tuning_storage_is_one_line(workspace: Path, capsys):
    port = free_port()  # nothing listens there
    storage = f"postgresql+psycopg://aelab@127.0.0.1:{port}/optuna"
    assert main(["--project", str(workspace), "tune", "ae", "--storage", storage]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: tuning storage {storage} failed: OperationalError: ")
    assert err.count("\n") == 1


SECRET_URL = "postgresql+psycopg://aelab:PW1@127.0.0.1:{port}/optuna?user=aelab&password=PW2"


def test_a_failed_storage_line_shows_no_password(workspace: Path, capsys):
    storage = SECRET_URL.format(port=free_port())  # nothing listens there
    assert main(["--project", str(workspace), "tune", "ae", "--storage", storage]) == 1
    err = capsys.readouterr().err
    shown = storage.replace("PW1", "***").replace("PW2", "***")
    assert err.startswith(f"error: tuning storage {shown} failed: ") and err.count("\n") == 1
    assert "PW" not in err, err


def test_no_password_of_the_storage_reaches_mlflow(workspace: Path, store: str):
    """A trial logged from a study whose storage URL holds passwords in both places: every
    param and tag of its run is searched for them."""
    from aelab.tracking.trials import TrialLogger

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("train_seconds", 1.0)
        return trial.suggest_float("lr", 1e-4, 1e-2)

    url = SECRET_URL.format(port=5432)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study().optimize(
        objective, n_trials=1, callbacks=[TrialLogger(workspace, "ae", url)]
    )
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("aelab-tuning").experiment_id])
    logged = {**run.data.params, **run.data.tags}
    assert logged["optuna.storage"] == SECRET_URL.format(port=5432).replace("PW1", "***").replace(
        "PW2", "***")  # fmt: skip
    assert not [key for key, value in logged.items() if "PW" in key + value], logged


def test_a_pruned_trial_is_logged_as_killed_without_final_metrics(workspace: Path, store: str):
    """Optuna gives a pruned trial the value it last reported: the run still says it was
    cut short, with its curve and no `best_val_mse` or `train_seconds`."""
    from aelab.tracking.trials import TrialLogger

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1e-2)
        trial.report(0.5, 1)
        raise optuna.TrialPruned("epoch 1")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.optimize(
        objective, n_trials=1, callbacks=[TrialLogger(workspace, "ae", "sqlite:///s.db")]
    )
    assert study.trials[0].value == 0.5  # what made the logger take it for a finished trial
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("aelab-tuning").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.metrics == {"val_mse": 0.5}
