"""The anomaly detector for new images: the champion variant's network (its first seed),
its anomaly score fit on the training digits, the threshold chosen on its validation
digits, and k-means centres of its training codes to name each image's cluster. Nothing in
it comes from the test digits.

detector/ (the `detector` stage's output) holds it without pickle: detector.json, arrays.npz
(what the score fit, analysis.scores, and the centres) and encoder/, a copy of the
checkpoint folder. `aelab score` loads it, and so does the MLflow model the log step
registers as aelab-anomaly (aelab.serving.pyfunc): both give the same answers.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans

from aelab.analysis import metrics
from aelab.analysis.ranking import best_variant
from aelab.analysis.scores import SCORES, AnomalyScore, values_read
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import atomic_folder, load_arrays, save_arrays
from aelab.core.params import ANOMALY_METRIC, EvaluateParams, Params
from aelab.data.features import load_features
from aelab.models import LatentModel
from aelab.models.checkpoints import load_checkpoint
from aelab.serving.images import as_images
from aelab.training.encoding import extract

CONFIG, ARRAYS, ENCODER = paths.DETECTOR_CONFIG, paths.DETECTOR_ARRAYS, paths.DETECTOR_ENCODER
CLUSTER_ROWS = 4096


@dataclass(frozen=True)
class Detector:
    config: dict  # detector.json: what was chosen, by which metric, the threshold
    fitted: dict[str, np.ndarray]  # what the score fit (analysis.scores); `recon`: nothing
    centres: np.ndarray  # (k, d) k-means centres of the training codes
    model: LatentModel

    @property
    def score_name(self) -> str:
        return self.config["score"]

    def answers(self, model_input: Any) -> pd.DataFrame:
        """The answers for images given as aelab.serving.pyfunc's model input: a row per image
        with its `score`, `is_anomaly`, `cluster` and `code`."""
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
        predicted = self.predict(as_images(np.asarray(model_input), "the model input"))
        return pd.DataFrame({
            "score": predicted["score"],
            "is_anomaly": predicted["is_anomaly"],
            "cluster": predicted["cluster"],
            "code": list(predicted["code"].astype(np.float64)),
        })  # fmt: skip

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """For (N, 784) float32 images in [0, 1]: each one's anomaly score, whether it is
        above the threshold, its cluster and its code."""
        found = extract(self.model, torch.from_numpy(np.ascontiguousarray(images, np.float32)))
        codes = found["latent"]
        score = SCORES[self.score_name]
        given = {"new_latent": codes, "new_error": found["error"].astype(np.float64)}
        values = values_read(score, given, ("new",), self.config["normalize_codes"])["new"]
        scores = score.score(self.fitted, values)
        return {
            "score": scores,
            "is_anomaly": scores > self.config["threshold"],  # as evaluate counts them
            "cluster": self.nearest_centres(codes),
            "code": codes,
        }

    def nearest_centres(self, codes: np.ndarray) -> np.ndarray:
        """Each code's nearest k-means centre, CLUSTER_ROWS codes at a time: the (rows, k, d)
        differences of 100,000 codes at once would take gigabytes."""
        nearest = [
            ((chunk[:, None, :] - self.centres[None]) ** 2).sum(axis=2).argmin(axis=1)
            for chunk in np.split(codes, range(CLUSTER_ROWS, len(codes), CLUSTER_ROWS))
        ]
        return np.concatenate(nearest)


def build(
    root: Path, params: Params, results: dict[str, dict], half_widths: dict[str, dict]
) -> dict:
    """Choose, fit and describe the detector (reports/detector.json's content) from the
    project at `root`, and write it to its detector/."""
    metric = params.champions.anomaly
    chosen = best_variant(results, metric, list(params.variants))
    variant = chosen or next(iter(params.variants))
    score = re.fullmatch(ANOMALY_METRIC, metric)["score"]
    # The first seed's network, fit as evaluate fits that seed.
    evaluate, seed = params.evaluate, params.seed_of(variant, paths.FIRST_SEED)
    features = load_features(root / paths.features_file(variant, paths.FIRST_SEED))
    fitted, val_scores = fit_score(SCORES[score], features, evaluate, seed)
    centres = training_centres(features, evaluate.n_init, seed)
    config = {
        "variant": variant,
        "chosen_by": metric if chosen else "the first variant: no variant has " + metric,
        "metric": metric,
        "mean": results[variant].get(metric),
        "half_width": half_widths.get(variant, {}).get(metric),
        "score": score,
        "normalize_codes": evaluate.normalize_codes,
        "threshold": metrics.threshold(val_scores, evaluate.threshold_percentile),
        "threshold_percentile": evaluate.threshold_percentile,
        "fitted": sorted(fitted),  # the arrays in arrays.npz that the score fit
        "clusters": len(centres),
        "seed": seed,
    }
    with atomic_folder(root / paths.DETECTOR_DIR) as staging:
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        save_arrays(staging / ARRAYS, {**fitted, "centres": centres})
        shutil.copytree(root / paths.checkpoint_dir(variant, paths.FIRST_SEED), staging / ENCODER)
    return config


def fit_score(
    score: AnomalyScore, features: dict[str, np.ndarray], evaluate: EvaluateParams, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The score fit on the training digits, as evaluate fits it, and its validation scores."""
    values = values_read(score, features, ("train", "val"), evaluate.normalize_codes)
    fitted = score.fit(values["train"], evaluate, seed)
    return fitted, score.score(fitted, values["val"])


def training_centres(features: dict[str, np.ndarray], n_init: int, seed: int) -> np.ndarray:
    """k-means centres (k, d) of the training codes, k their number of digit classes (the
    normal digits): the test digits are for judging the detector, never for building it."""
    k = len(np.unique(features["train_label"]))
    kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return kmeans.fit(features["train_latent"]).cluster_centers_


def load(folder: str | Path) -> Detector:
    """The detector in `folder`; any bad file is one AelabError naming it and the fix."""
    folder = Path(folder)
    fix = f"run `dvc repro detector` (or `dvc pull {folder}`)"
    try:
        config = json.loads((folder / CONFIG).read_text())
        score, fitted_keys = config["score"], config["fitted"]
    except FileNotFoundError:
        raise AelabError(f"{folder / CONFIG}: file not found; {fix}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AelabError(f"{folder / CONFIG}: unreadable ({error}); {fix}") from None
    if score not in SCORES:
        raise AelabError(f"{folder / CONFIG}: unknown score {score!r}; {fix}")
    arrays = load_arrays(folder / ARRAYS, ("centres", *fitted_keys), fix)
    centres = arrays.pop("centres")
    return Detector(config, arrays, centres, load_checkpoint(folder / ENCODER, fix=fix))
