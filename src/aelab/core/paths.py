"""Every file the pipeline reads or writes, as a path inside the project, and the project
root they are taken from. dvc.yaml names the same paths; the stages, the log step and the
tests take them from here, each joined to a root that an entry point found once
(`project_root()`) or was given: nothing resolves from the current folder. Imports nothing
heavy: the log step reads the workspace through it."""

from __future__ import annotations

from pathlib import Path

from aelab.core.errors import AelabError

# What marks the project root: the params every stage and command reads (dvc.yaml lies
# beside it; a workspace copied without DVC has params.yaml alone).
PROJECT_FILE = "params.yaml"


def project_root(start: Path | None = None) -> Path:
    """The project that `start` (by default the current folder) is in: the nearest folder
    from it upwards holding params.yaml, as an absolute path. For the entry points (the
    stages, the `aelab` command), which find it once and pass it on."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise AelabError(f"{start} is not inside an aelab project (no {PROJECT_FILE} there or "
                     f"above); run from the project's folder")  # fmt: skip


DVC_LOCK = Path("dvc.lock")  # what DVC ran each stage with, and the md5 of what it wrote
RAW_DIGITS = Path("data/raw/digits.npz")
SPLIT_DIR = Path("data/split")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
# A checkpoint folder, models/<variant>/seed_<k>/, holds these three files.
WEIGHTS, CONFIG, HISTORY = "model.pt", "config.json", "history.csv"
# The index k of a variant's first network (its seed: Params.seed_of(variant, 0)): the one the
# figures show and the detector serves.
FIRST_SEED = 0
# The anomaly detector for new images (aelab.serving.detector), and what it was chosen by.
# Beside models/, not in it: the detector stage depends on every network in models/.
DETECTOR_DIR = Path("detector")
# Its files (a folder that anywhere else, as in MLflow's copy, holds the same): what was
# chosen and the threshold, the density and cluster arrays, a copy of the checkpoint.
DETECTOR_CONFIG, DETECTOR_ARRAYS, DETECTOR_ENCODER = "detector.json", "arrays.npz", "encoder"
# The digit classifier behind the Fréchet distance (aelab.training.classifier), and what
# generate drew with every variant: data/generated/<variant>/seed_<k>.npz, and real.npz
# with the real digits' classifier features.
CLASSIFIER_DIR = Path("data/classifier")
GENERATED_DIR = Path("data/generated")
REAL_FEATURES = GENERATED_DIR / "real.npz"
REPORTS_DIR = Path("reports")
DETECTOR_REPORT = REPORTS_DIR / "detector.json"
SPLIT_STATS = REPORTS_DIR / "split.json"
CLASSIFIER_REPORT = REPORTS_DIR / "classifier.json"
TRAIN_REPORTS_DIR = REPORTS_DIR / "train"
METRICS = REPORTS_DIR / "metrics.json"
# Half-widths of the 95 % intervals around the means in METRICS, key for key.
INTERVALS = REPORTS_DIR / "intervals.json"
# Their two standard uncertainties apart (seed, test set), for consumers that pair.
NOISE = REPORTS_DIR / "noise.json"
# What a paired comparison needs, per variant and metric: each seed's value on the test
# set and the seed-mean on each bootstrap resample (aelab.analysis.intervals.to_arrays).
PAIRED = Path("data/evaluation/paired.npz")
ROC = REPORTS_DIR / "roc.json"
HISTORY_TABLE = REPORTS_DIR / "history.csv"  # every variant's losses per epoch: DVC's plots
SUMMARY = REPORTS_DIR / "summary.md"
FIGURES_DIR = REPORTS_DIR / "figures"
ARCHITECTURE_FIGURE = FIGURES_DIR / "1_architecture.png"
DENOISING_FIGURE = FIGURES_DIR / "2_denoising.png"
L1_VS_L2_FIGURE = FIGURES_DIR / "3_l1_vs_l2.png"
RECONSTRUCTIONS_FIGURE = FIGURES_DIR / "reconstructions.png"
# What the log step put in MLflow, as content keys: an output DVC can check, git-ignored.
LOGGED = REPORTS_DIR / "logged.json"
# Wall-clock figures (seconds, samples/s) of each train@<variant>, its output beside the
# networks (not a metric: they differ on every run); the log step shows them in MLflow.
TIMINGS_DIR = Path("data/timings")


def split_file(part: str) -> Path:
    """data/split/<train|val|test>.npz"""
    return SPLIT_DIR / f"{part}.npz"


def model_dir(variant: str) -> Path:
    """models/<variant>/: one checkpoint folder per seed (DVC's output of train@<variant>)."""
    return MODELS_DIR / variant


def checkpoint_dir(variant: str, seed_index: int) -> Path:
    """models/<variant>/seed_<k>/: the network trained with seed `seed` + k."""
    return model_dir(variant) / f"seed_{seed_index}"


def features_dir(variant: str) -> Path:
    """data/features/<variant>/: one features file per seed (DVC's output of extract@)."""
    return FEATURES_DIR / variant


def features_file(variant: str, seed_index: int) -> Path:
    return features_dir(variant) / f"seed_{seed_index}.npz"


def generated_file(variant: str, seed_index: int) -> Path:
    return GENERATED_DIR / variant / f"seed_{seed_index}.npz"


def samples_figure(variant: str) -> Path:
    return FIGURES_DIR / f"6_samples_{variant}.png"


def interpolation_figure(variant: str) -> Path:
    return FIGURES_DIR / f"7_interpolation_{variant}.png"


def train_report(variant: str) -> Path:
    """The deterministic figures of train@<variant>: a DVC metrics file."""
    return TRAIN_REPORTS_DIR / f"{variant}.json"


def timing_file(variant: str) -> Path:
    return TIMINGS_DIR / f"train_{variant}.json"


def latent_space_figure(variant: str) -> Path:
    return FIGURES_DIR / f"4_latent_space_{variant}.png"


def anomalies_figure(variant: str) -> Path:
    return FIGURES_DIR / f"5_anomalies_{variant}.png"
