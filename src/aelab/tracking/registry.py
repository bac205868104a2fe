"""MLflow's model registry: the champion per task, after each log step.

- aelab-anomaly: the anomaly detector (aelab.serving.pyfunc) of the variant with the best
  `champions.anomaly` metric;
- aelab-encoder: the encoder of the variant with the best `champions.encoder` metric.

Each contender is registered once: not again for the same logged model, nor for the same
content (weights and code: aelab.tracking.integrity's digest) as a version registered
before. Each version carries the digest that loading checks. The alias `champion` moves to
a contender only when it beats the current champion beyond both 95 % intervals (its lower
bound above the champion's upper bound): a difference inside the noise is a tie, and a tie
keeps the champion. Only values of one metric are compared: when `champions.<task>`
changes, the champion's value of the new metric is read off its run; a champion without
one (set by hand) starts a new comparison, which the contender wins. Every champion metric
is higher-is-better.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aelab.tracking.integrity import CONTENT, digest_tags, download

ALIAS = "champion"
NAMES = {"anomaly": "aelab-anomaly", "encoder": "aelab-encoder"}
# Version tags: what the version was chosen by (the registry UI shows them).
VARIANT, METRIC, MEAN, HALF_WIDTH = "aelab.variant", "aelab.metric", "aelab.mean", "aelab.ci95"


@dataclass(frozen=True)
class Contender:
    task: str  # a key of NAMES
    variant: str
    metric: str
    mean: float
    half_width: float  # of its 95 % interval; 0 where there is none
    model_uri: str  # models:/m-...

    @property
    def name(self) -> str:
        return NAMES[self.task]

    def tags(self) -> dict[str, str]:
        return {VARIANT: self.variant, METRIC: self.metric, MEAN: repr(self.mean),
                HALF_WIDTH: repr(self.half_width)}  # fmt: skip


def contender(task: str, variant: str, metric: str, metrics: dict, model_uri: str) -> Contender:
    """From the variant run's metrics: the mean and, as `<metric>_ci95`, the half-width."""
    half = metrics.get(f"{metric}_ci95") or 0.0  # one seed: no interval
    return Contender(task, variant, metric, float(metrics[metric]), float(half), model_uri)


def promote(client: MlflowClient, new: Contender) -> str:
    """Register `new` (unless its model or its content is registered already) and move the
    alias to it if it beats the champion; one line saying what happened."""
    version = _version_of(client, new) or _register(client, new)
    described = f"{new.name} v{version.version} ({new.variant}, {_figure(new.tags())})"
    champion = _champion(client, new.name)
    if champion is not None and champion.version == version.version:
        return f"registry: {described} is the champion"
    if champion is not None:
        old = _same_metric(client, champion, new.metric)
        if not _beats(new.tags(), old):
            return (f"registry: {described} registered; v{champion.version} "
                    f"({_figure(old)}) stays the champion")  # fmt: skip
    client.set_registered_model_alias(new.name, ALIAS, version.version)
    return f"registry: {described} is the new champion"


def _register(client: MlflowClient, new: Contender):
    """A new version with the digests of its files; or the version that has the same
    content already (the same weights and code, logged again)."""
    with tempfile.TemporaryDirectory() as folder:
        digests = digest_tags(download(new.model_uri, Path(folder)))
    same = client.search_model_versions(f"name = '{new.name}'")
    found = next((v for v in same if v.tags.get(CONTENT) == digests[CONTENT]), None)
    if found is not None:
        return found
    return mlflow.register_model(new.model_uri, new.name, await_registration_for=0,
                                 tags=new.tags() | digests)  # fmt: skip


def _version_of(client: MlflowClient, new: Contender):
    """The version already registered for the contender's logged model, if any."""
    model_id = new.model_uri.removeprefix("models:/")
    found = client.search_model_versions(f"name = '{new.name}'")
    return next((v for v in found if v.model_id == model_id or v.source == new.model_uri), None)


def _same_metric(client: MlflowClient, champion, metric: str) -> dict[str, str]:
    """The champion's tags for `metric`: its own, or its run's value of `metric` when it was
    chosen by another one; {} when it has none (a new comparison starts)."""
    if champion.tags.get(METRIC) == metric:
        return champion.tags
    try:
        values = client.get_run(champion.run_id).data.metrics if champion.run_id else {}
    except MlflowException:  # its run was deleted
        values = {}
    if metric not in values:
        return {}
    return {METRIC: metric, MEAN: repr(values[metric]),
            HALF_WIDTH: repr(values.get(f"{metric}_ci95", 0.0))}  # fmt: skip


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:  # no such model or no alias yet
        return None


def _beats(new: dict[str, str], old: dict[str, str]) -> bool:
    """`new` beyond `old`'s interval of the same metric; or `old` without a value of that
    metric (set by hand)."""
    if old.get(METRIC) != new[METRIC] or MEAN not in old:
        return True
    lower = float(new[MEAN]) - float(new[HALF_WIDTH])
    return lower > float(old[MEAN]) + float(old.get(HALF_WIDTH, 0))


def _figure(tags: dict[str, str]) -> str:
    if MEAN not in tags:
        return "no aelab metric"
    return f"{tags[METRIC]} {float(tags[MEAN]):.3f} ± {float(tags.get(HALF_WIDTH, 0)):.3f}"
