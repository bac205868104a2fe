"""`aelab tune`: an Optuna search for a network variant's training hyperparameters.

What is searched: the learning rate (log scale) and the batch size, the two that decide
how a network trains; the variant's own definition (its loss, β, sparsity, contractive
weight, noise, architecture) stays as params.yaml gives it. Each trial trains a network
per seed of SEEDS (together, as the pipeline does) by the pipeline's own rule
(aelab.training.loop: until the validation loss stops improving), and scores them by the
validation digits' per-pixel MSE at the kept epoch, which compares variants whatever loss
they train with: the mean over the seeds is the objective, their spread its noise. A trial
whose curve lies above the median of earlier trials at the same epoch is pruned. Each
trial also records its training seconds.

What it recommends: not the lowest validation MSE, but the fastest configuration whose
validation MSE is within the noise of the lowest (the 95 % interval of their difference
holds 0). A configuration that trains five times longer for a difference the seeds cannot
tell apart would make every seed of the pipeline five times dearer for nothing. Only the
training and validation digits are read: the test digits stay unseen by anything tuned.

The study lives in an Optuna storage: an SQLite file in the project by default, or any
database URL (the team stack's PostgreSQL), where several processes or machines can work
on one study at once, each asking the shared storage for the next trial.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.exc
from scipy import stats

from aelab.core.errors import AelabError
from aelab.core.params import Params, VariantConfig
from aelab.training.loop import best_epoch, fit, pick_device
from aelab.training.seeds import training_digits

STORAGE_VARIABLE = "AELAB_TUNING_STORAGE"  # a database URL; the team stack's env sets it
DEFAULT_STORAGE = "optuna.db"  # beside mlflow.db in the project folder
LR_RANGE = (1e-4, 3e-2)
BATCH_SIZES = [16, 32, 64, 128, 256]
TUNED = ("lr", "batch_size")
SEEDS = 3  # networks per trial: their spread is the noise of the trial's validation MSE
STARTUP_TRIALS = 5  # random trials before TPE models the space, and before pruning starts
WARMUP_EPOCHS = 10  # no trial is pruned before this epoch: early curves cross


@dataclass(frozen=True)
class Outcome:
    """A finished trial: its values, the mean validation MSE over its seeds and the
    standard error of that mean, and its training seconds."""

    values: dict[str, float | int]
    val_mse: float
    standard_error: float
    seeds: int
    seconds: float

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial) -> Outcome:
        errors = trial.user_attrs["val_mse_per_seed"]
        spread = statistics.stdev(errors) / math.sqrt(len(errors)) if len(errors) > 1 else 0.0
        return cls(
            trial.params, trial.value, spread, len(errors), trial.user_attrs["train_seconds"]
        )

    def ties_with(self, best: Outcome) -> bool:
        """Within the noise of the best: the 95 % interval of the difference of two means,
        each as noisy as the best's (Student's t), holds 0. The best's noise, not this
        trial's own: a trial whose seeds scatter widely is worse, not closer."""
        u = math.sqrt(2) * best.standard_error
        if u == 0:
            return self.val_mse <= best.val_mse
        return self.val_mse - best.val_mse <= stats.t.ppf(0.975, 2 * (best.seeds - 1)) * u


@dataclass(frozen=True)
class Study:
    """A finished search: the trial of the lowest validation MSE, the one recommended
    (the fastest within the noise of it), and the study's counts."""

    variant: str
    best: Outcome
    recommended: Outcome
    trials: int
    pruned: int
    seconds: float


def storage_url(given: str | None, root: Path, environ: dict[str, str]) -> str:
    """--storage, else $AELAB_TUNING_STORAGE, else the project's SQLite file."""
    url = given or environ.get(STORAGE_VARIABLE) or f"sqlite:///{root / DEFAULT_STORAGE}"
    if "://" not in url:
        raise AelabError(
            f"tuning storage {url!r} is not a database URL; give e.g. sqlite:///optuna.db or "
            "postgresql+psycopg://user@host:port/optuna"
        )
    return url


def definition(config: VariantConfig) -> dict:
    """What the study holds fixed: the variant's config without the searched values."""
    return config.model_dump(exclude={*TUNED, "seeds", "device"})


def open_study(name: str, url: str, config: VariantConfig, seed: int) -> optuna.Study:
    """The study `name` in `url`, created on first use. A study made for another definition
    of the variant is refused: its trials would not mean the same thing."""
    wanted = json.dumps(definition(config), sort_keys=True)
    try:
        study = _create_or_load(name, url)
        # Seeded by the trials already there: a new study in one process is reproducible,
        # and a process that joins a running study does not repeat the first one's draws.
        study.sampler = optuna.samplers.TPESampler(
            seed=seed + len(study.trials), n_startup_trials=STARTUP_TRIALS
        )
    except Exception as error:  # SQLAlchemy, a driver: all mean "the storage failed"
        reason = " ".join(str(error).split())[:300]
        raise AelabError(f"tuning storage {url} failed: {type(error).__name__}: {reason}") from None
    held = study.user_attrs.get("definition")
    if held is None:
        study.set_user_attr("definition", wanted)
    elif held != wanted:
        raise AelabError(
            f"study {name!r} in {url} searched another definition of the variant "
            f"({held}); give --study a new name"
        )
    return study


def _create_or_load(name: str, url: str, attempts: int = 3) -> optuna.Study:
    """The study, made on first use. Processes that start together on a new database race
    to create its tables and the study; the ones that lose find them made on a retry."""

    def create() -> optuna.Study:
        return optuna.create_study(
            storage=url, study_name=name, direction="minimize", load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                               n_warmup_steps=WARMUP_EPOCHS),
        )  # fmt: skip

    for _ in range(attempts - 1):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            continue  # e.g. a duplicate key in PostgreSQL's catalogue: the other one won
    return create()


def objective(
    trial: optuna.Trial, name: str, config: VariantConfig, data: tuple, seed: int
) -> float:
    """A network per seed of SEEDS trained by the pipeline's rule with the trial's values:
    their mean validation MSE per pixel at the kept epochs. Each epoch's mean over the seeds
    still training goes to the pruner."""
    values = {
        "lr": trial.suggest_float("lr", *LR_RANGE, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
    }
    tried = config.model_copy(update=values)

    def after_epoch(rows: list[dict[str, float]]) -> None:
        epoch = int(rows[0]["epoch"])
        trial.report(statistics.fmean(row["val_mse"] for row in rows), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}")

    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    start = time.perf_counter()
    try:
        trained = fit(tried, [seed + k for k in range(SEEDS)], *data, name, after_epoch)
    except AelabError as error:  # a diverging loss: a failed point of the space, not a crash
        trial.set_user_attr("failed", str(error))
        return math.inf
    trial.set_user_attr("train_seconds", time.perf_counter() - start)
    kept = [one.history[best_epoch(one.history) - 1] for one in trained]
    trial.set_user_attr("epochs", [len(one.history) for one in trained])
    trial.set_user_attr("val_mse_per_seed", [row["val_mse"] for row in kept])
    return statistics.fmean(row["val_mse"] for row in kept)


def tune(
    root: Path,
    params: Params,
    name: str,
    trials: int,
    url: str,
    study_name: str | None = None,
    callbacks: list[Callable] = (),
) -> Study:
    """Run trials of `name`'s study on the digits of the project at `root` until it holds
    `trials` finished ones (complete or pruned), counting those other processes add to the
    same study."""
    config = params.variant(name)
    if getattr(config, "kind", None) == "pca":
        raise AelabError(f"variant {name!r} is PCA: it has no training hyperparameters to tune")
    device = pick_device(config.device)
    data = training_digits(root, device)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name or name, url, config, params.seed)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        # The values in params.yaml are tried too (once per study): the recommendation is
        # then never dearer than them unless they lie beyond the noise of the best.
        study.enqueue_trial({key: getattr(config, key) for key in TUNED}, skip_if_exists=True)
        # The callback stops this process once other processes' trials make up the count.
        enough = optuna.study.MaxTrialsCallback(trials, states=finished)
        study.optimize(
            lambda trial: objective(trial, name, config, data, params.seed),
            n_trials=remaining,
            callbacks=[*callbacks, enough],
        )
    return summarize(name, study)


def summarize(name: str, study: optuna.Study) -> Study:
    done = [Outcome.of(t) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and math.isfinite(t.value)]  # fmt: skip
    if not done:
        raise AelabError(f"study {study.study_name!r}: no trial finished; run more trials")
    best, recommended = recommend(done)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    seconds = sum(t.duration.total_seconds() for t in study.trials if t.duration is not None)
    return Study(name, best, recommended, len(study.trials), pruned, seconds)


def recommend(done: list[Outcome]) -> tuple[Outcome, Outcome]:
    """The outcome of the lowest validation MSE, and the fastest of those within its noise."""
    best = min(done, key=lambda outcome: outcome.val_mse)
    return best, min((o for o in done if o.ties_with(best)), key=lambda o: o.seconds)


def describe(outcome: Outcome) -> str:
    """e.g. "0.01105 ± 0.00021 in 35 s with lr 0.00037, batch_size 16"."""
    values = ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                       for key, value in outcome.values.items())  # fmt: skip
    return (f"{outcome.val_mse:.5f} ± {outcome.standard_error:.5f} in {outcome.seconds:.0f} s "
            f"with {values}")  # fmt: skip


def exp_run_line(result: Study) -> str:
    """The `dvc exp run` that trains the pipeline's variant with the recommended values."""
    sets = " ".join(f"-S 'variants.{result.variant}.{key}={value:.3g}'"
                    if isinstance(value, float) else f"-S 'variants.{result.variant}.{key}={value}'"
                    for key, value in result.recommended.values.items())  # fmt: skip
    return f"dvc exp run {sets}"
