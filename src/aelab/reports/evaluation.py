"""Every variant judged on the article's three jobs and its theme, one seed's network at a
time: anomaly scores and their metrics, clusterings, compression, generation. `over_seeds`
(aelab.analysis.intervals) turns the seeds' results into means with 95 % intervals; the
summary renders them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aelab.analysis import clusterers, metrics
from aelab.analysis.generation import (
    confident,
    coverage,
    frechet_distances,
    kernel_distances,
    kernel_reference,
    moments,
)
from aelab.analysis.scores import SCORES, scores_of, values_read
from aelab.core.params import EvaluateParams
from aelab.data.digits import SPLITS, SplitSet


@dataclass(frozen=True)
class SeedEvaluation:
    """One seed's network judged: its metrics ((R,) arrays over the test-set weightings)
    and its anomaly scores ({score: {"val": .., "test": ..}}, None where one does not
    apply)."""

    metrics: dict[str, np.ndarray | None]
    scores: dict[str, dict[str, np.ndarray] | None]


def pixel_features(splits: dict[str, SplitSet]) -> dict[str, np.ndarray]:
    """The raw-pixel baseline as features: each image is its own code (pixels in [0, 1]),
    and there is no reconstruction."""
    features = {}
    for part, split in splits.items():
        features[f"{part}_latent"] = split.images.reshape(len(split.images), -1) / np.float32(255)
        features[f"{part}_label"], features[f"{part}_is_anomaly"] = split.labels, split.is_anomaly
    return features


def pixel_methods(params: EvaluateParams) -> EvaluateParams:
    """The methods that apply to raw pixels: those whose registry entry says `on_pixels`
    (a full-covariance mixture of 784-d pixels has millions of parameters for a few
    thousand digits, and costs more than every network's mixtures together)."""
    return params.model_copy(update={
        "scores": [name for name in params.scores if SCORES[name].on_pixels],
        "clusterers": [name for name in params.clusterers if clusterers.CLUSTERERS[name].on_pixels],
    })  # fmt: skip


def evaluate_seed(
    features: dict[str, np.ndarray], params: EvaluateParams, seed: int, weights: np.ndarray
) -> SeedEvaluation:
    """All metrics of one seed's network (or a baseline), flat: the names of
    reports/metrics.json and MLflow, each method's name last (`roc_auc_knn`,
    `ari_all_umap`)."""
    test_anomaly = features["test_is_anomaly"]
    scores = anomaly_scores(features, params, seed)
    results = {**anomaly_metrics(scores, test_anomaly, params.threshold_percentile, weights),
               **clustering(features, params, seed, weights)}  # fmt: skip
    if "test_error" in features:  # a network or PCA: it reconstructs
        results |= metrics.compression(
            features["test_latent"].shape[1], features["test_error"][~test_anomaly],
            weights[:, ~test_anomaly],
        )  # fmt: skip
    return SeedEvaluation(results, scores)


def anomaly_scores(
    features: dict[str, np.ndarray], params: EvaluateParams, seed: int
) -> dict[str, dict[str, np.ndarray] | None]:
    """Each chosen score of the val and test digits, fit on the training digits. None where
    a score does not apply (one that reads reconstruction errors, of pixels) or there is
    nothing to detect."""
    if not features["test_is_anomaly"].any():
        return dict.fromkeys(params.scores)
    scores = {}
    read: dict[str, dict[str, np.ndarray] | None] = {}  # by what a score reads: scaled once
    for name in params.scores:
        reads = SCORES[name].reads
        if reads not in read:
            read[reads] = values_read(SCORES[name], features, SPLITS, params.normalize_codes)
        values = read[reads]
        if values is None:
            scores[name] = None
            continue
        judged = {part: values[part] for part in ("val", "test")}
        scores[name] = scores_of(name, values["train"], judged, params, seed)
    return scores


def anomaly_metrics(scores, is_anomaly, percentile: float, weights) -> dict:
    """`roc_auc_<score>`, `average_precision_<score>`, ... of each score (analysis.metrics)."""
    results = {}
    for name, pair in scores.items():
        values = (metrics.anomaly_detection(pair["test"], is_anomaly, pair["val"], percentile,
                                            weights)
                  if pair else dict.fromkeys(metrics.ANOMALY_KEYS))  # fmt: skip
        results |= {f"{key}_{name}": value for key, value in values.items()}
    return results


def clustering(features, params: EvaluateParams, seed: int, weights) -> dict:
    """ARI and NMI of each clusterer: `*_all_<clusterer>` with k = 10 on every test digit
    (the article's protocol), `*_normal_<clusterer>` with k = the number of normal digits
    on the normal test digits only. The clusters are found once, on the test set; the
    resamples re-weigh the digits, not the clustering."""
    codes, labels = features["test_latent"], features["test_label"]
    results = {}
    for protocol, subset in (("all", np.ones(len(labels), bool)),
                             ("normal", ~features["test_is_anomaly"])):  # fmt: skip
        if protocol == "normal" and subset.all():  # nothing anomalous: the same clustering
            results |= {key.replace("_all_", "_normal_"): v for key, v in results.items()}
            break
        found = clusters_of(codes[subset], len(np.unique(labels[subset])), params, seed)
        for method in params.clusterers:
            agreed = metrics.agreement(labels[subset], found[method], weights[:, subset])
            results[f"ari_{protocol}_{method}"] = agreed["ari"]
            results[f"nmi_{protocol}_{method}"] = agreed["nmi"]
    return results


def clusters_of(codes: np.ndarray, k: int, params: EvaluateParams, seed: int) -> dict:
    """Each chosen clusterer's k clusters of `codes`, and under "map" the 2-D UMAP they
    were found on, when one of them groups it (aelab.analysis.clusterers)."""
    return clusterers.clusters(params.clusterers, codes, k, params, seed)


@dataclass(frozen=True)
class Reference:
    """The normal test digits' classifier features under each test weighting (row 0 the
    test set, then the bootstrap resamples): what generated digits are measured against,
    as Gaussians for the Fréchet distance and as the kernel terms of the KID."""

    means: np.ndarray  # (R, d)
    covariances: np.ndarray  # (R, d, d)
    features: np.ndarray  # (m, d)
    weights: np.ndarray  # (R, m)
    kernel_term: np.ndarray  # (R,): the test features' own term of the KID

    @classmethod
    def of(cls, test_features: np.ndarray, weights: np.ndarray) -> Reference:
        features = np.asarray(test_features, dtype=np.float64)
        return cls(*moments(features, weights), features, weights,
                   kernel_reference(features, weights))  # fmt: skip

    def distances(self, features: np.ndarray) -> np.ndarray:
        return frechet_distances(features, self.means, self.covariances)

    def kernel_distances(self, features: np.ndarray) -> np.ndarray:
        return kernel_distances(
            np.asarray(features, dtype=np.float64), self.features, self.weights, self.kernel_term
        )

    def constant(self, value: float) -> np.ndarray:
        """A figure of the generated digits alone, the same under every test weighting."""
        return np.full(len(self.means), value)


def generation(
    arrays: dict[str, np.ndarray], reference: Reference, samplers: list[str], chosen: list[str]
) -> dict[str, np.ndarray | None]:
    """`fd_<sampler>`, `kid_<sampler>`, `confident_<sampler>` and `coverage_<sampler>` of
    each of `chosen` (None for those not in `samplers`, the ones this variant draws from),
    `fd_interp` and `kid_interp` of the interpolations' midpoints and `interp_jump`, the
    paths' mean jump."""
    results = {}
    for sampler in chosen:
        drawn = sampler in samplers
        features = arrays.get(f"{sampler}_features")
        probabilities = arrays.get(f"{sampler}_probabilities")
        results |= {
            f"fd_{sampler}": reference.distances(features) if drawn else None,
            f"kid_{sampler}": reference.kernel_distances(features) if drawn else None,
            f"confident_{sampler}": reference.constant(confident(probabilities)) if drawn else None,
            f"coverage_{sampler}": reference.constant(coverage(probabilities)) if drawn else None,
        }  # fmt: skip
    return results | {
        "fd_interp": reference.distances(arrays["interp_features"]),
        "kid_interp": reference.kernel_distances(arrays["interp_features"]),
        "interp_jump": reference.constant(float(arrays["interp_jump"].mean())),
    }


def real_floor(real: dict[str, np.ndarray], reference: Reference) -> dict[str, np.ndarray]:
    """The same figures for the real validation digits: the floor no generator goes below
    (finite samples of the same digits are not at Fréchet distance 0; their KID is 0 in
    expectation, so its interval says how far from 0 chance alone reaches)."""
    return {
        "fd_real": reference.distances(real["val_features"]),
        "kid_real": reference.kernel_distances(real["val_features"]),
        "confident_real": reference.constant(confident(real["val_probabilities"])),
        "coverage_real": reference.constant(coverage(real["val_probabilities"])),
    }
