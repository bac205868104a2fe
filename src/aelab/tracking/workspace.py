"""What the workspace holds, as the runs the log step gives the tracking store.

Pure reads of the files the log stage depends on (params, metrics files, histories,
models, figures, timings; dvc.lock only for `aelab log --params`): no MLflow here, so
`AELAB_TRACKING=off` never imports it. Each run's content key is the sha256 of everything
it carries but wall-clock timings; aelab.tracking.store logs a run only when the store has
no finished run with its key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import file_sha256, load_json
from aelab.core.params import PARAMS_FILE, PIXELS, Params
from aelab.data.history import read_history
from aelab.data.protocols import protocol_of
from aelab.reports.figure_files import figures_of

VARIANT = "aelab.variant"  # tag: the variant (or baseline) a run shows
DATA_RUN = "data"
SHOWN_SECTIONS = ("data", "split", "evaluate")  # params.yaml sections a variant run shows


CONTENT_FIELDS = ("experiment", "name", "params", "metrics", "tags", "history")


@dataclass
class RunContent:
    """Everything one run carries; `key()` hashes all of it but `timings` and `root`. Its
    files are named inside the project at `root`, so the same content has the same key in
    every copy of the project."""

    experiment: str
    name: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    tags: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    datasets: dict[str, Path] = field(default_factory=dict)  # context -> aelab .npz
    figures: list[Path] = field(default_factory=list)
    model: Path | None = None  # a checkpoint folder
    detector: Path | None = None  # detector/, in the run of the variant it uses
    timings: dict[str, float] = field(default_factory=dict)
    root: Path = field(kw_only=True)  # the project the files are in

    def at(self, relative: Path) -> Path:
        """A file of the run, in its project."""
        return self.root / relative

    def key(self) -> str:
        """sha256 of the content: the fields, and the bytes of the files it logs."""
        files = [*self.datasets.values(), *self.figures]
        if self.model is not None:
            files.append(self.model / paths.CONFIG)  # holds the weights' sha256
        if self.detector is not None:  # its encoder is a copy of `model`
            files += [self.detector / paths.DETECTOR_CONFIG, self.detector / paths.DETECTOR_ARRAYS]
        content = {
            **{name: getattr(self, name) for name in CONTENT_FIELDS},
            "datasets": sorted(self.datasets),
            "files": {str(f): file_sha256(self.at(f)) for f in files},
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def workspace_runs(root: Path, params: Params) -> list[RunContent]:
    """The runs that reflect the workspace of the project at `root`: each variant, the pixel
    baseline, the data."""
    evaluation = load_json(root / paths.METRICS, "evaluate")
    half_widths = load_json(root / paths.INTERVALS, "evaluate")
    missing = [name for name in [*params.variants, PIXELS] if name not in evaluation]
    if missing:
        raise AelabError(f"{paths.METRICS} has no metrics of {missing}; run `dvc repro evaluate`")
    data_tags = {
        "data.source": params.data.source,
        "data.sha256": file_sha256(root / paths.split_file("train")),
        **_protocol_tags(params.split.normal_digits),
    }
    evaluation = {name: _with_intervals(row, half_widths.get(name, {}))
                  for name, row in evaluation.items()}  # fmt: skip
    runs = [_variant_run(root, params, name, evaluation[name], data_tags)
            for name in params.variants]  # fmt: skip
    pixels = RunContent(
        params.tracking.experiment,
        PIXELS,
        params={"kind": PIXELS, **_sections(params, *SHOWN_SECTIONS)},
        metrics=evaluation[PIXELS],
        tags={**data_tags, VARIANT: PIXELS},
        datasets={"evaluation": paths.split_file("test")},
        root=root,
    )
    return [*runs, pixels, _data_run(root, params)]


def _protocol_tags(normal_digits: list[int]) -> dict[str, str]:
    """A one-class benchmark's run (`aelab benchmark oneclass`) is tagged with its
    protocol and digit, so the MLflow UI can filter and group by them."""
    found = protocol_of(normal_digits)
    return {} if found is None else {"aelab.protocol": found[0], "aelab.digit": str(found[1])}


def _with_intervals(means: dict, half_widths: dict) -> dict:
    """The mean metrics, and beside each `<metric>_ci95`: the half-width of its interval."""
    return {**means, **{f"{key}_ci95": half for key, half in half_widths.items()}}


def _variant_run(
    root: Path, params: Params, name: str, evaluation: dict, data_tags: dict
) -> RunContent:
    """One run per variant: the evaluation's means over the seeds, each seed's training
    figures and curves (`seed_<k>_...`, `seed_<k>/val_loss`), and its first seed's model."""
    trained = _flatten(load_json(root / paths.train_report(name), f"train@{name}"))
    # Numbers (and `converged`, 1 or 0) are metrics; how training stopped is a tag.
    figures = {key: float(value) for key, value in trained.items() if not isinstance(value, str)}
    stops = {f"aelab.{key}": value for key, value in trained.items() if isinstance(value, str)}
    history = [
        {
            "epoch": row["epoch"],
            **{f"seed_{k}/{key}": v for key, v in row.items() if key != "epoch"},
        }
        for k in range(params.variant(name).seeds)
        for row in read_history(root / paths.checkpoint_dir(name, k))
    ]
    return RunContent(
        params.tracking.experiment,
        name,
        params={**params.variant(name).model_dump(), **_sections(params, *SHOWN_SECTIONS)},
        metrics={**figures, **evaluation},
        tags={**data_tags, **stops, VARIANT: name},
        history=history,
        datasets={"training": paths.split_file("train"), "evaluation": paths.split_file("test")},
        figures=[f for f in figures_of(name, params.variants) if (root / f).is_file()],
        model=paths.checkpoint_dir(name, paths.FIRST_SEED),
        detector=paths.DETECTOR_DIR if detector_variant(root) == name else None,
        timings=_read_timings(root, name),
        root=root,
    )


def detector_variant(root: Path) -> str | None:
    """The variant the workspace's anomaly detector uses (None without one)."""
    try:
        config = root / paths.DETECTOR_DIR / paths.DETECTOR_CONFIG
        return json.loads(config.read_text())["variant"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _data_run(root: Path, params: Params) -> RunContent:
    stats = load_json(root / paths.SPLIT_STATS, "split")
    files = {part: paths.split_file(part) for part in ("train", "val", "test")}
    checksums = {f"sha256.{part}": file_sha256(root / path) for part, path in files.items()}
    return RunContent(
        params.tracking.data_experiment,
        DATA_RUN,
        params=_sections(params, "data", "split"),
        metrics=_flatten(stats),
        tags={**checksums, "sha256.raw": file_sha256(root / paths.RAW_DIGITS)},
        datasets={"training": files["train"], "validation": files["val"], "testing": files["test"]},
        root=root,
    )


def _sections(params: Params, *sections: str) -> dict[str, Any]:
    """The seed and the given params.yaml sections, as `section.key` params of a run."""
    flat: dict[str, Any] = {"seed": params.seed}
    for section in sections:
        for key, value in getattr(params, section).model_dump().items():
            flat[f"{section}.{key}"] = value
    return flat


def _flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"size": 9}} -> {"train_size": 9}: nested figures as metric names."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        flat |= _flatten(value, f"{name}_") if isinstance(value, dict) else {name: value}
    return flat


def _read_timings(root: Path, name: str) -> dict[str, float]:
    try:
        return json.loads((root / paths.timing_file(name)).read_text())
    except (OSError, ValueError):  # not there (a workspace written by hand) or damaged
        return {}


def dvc_lock_params(lock: Path) -> dict[str, dict[str, Any]]:
    """The params.yaml values dvc.lock records for each stage, by key as DVC wrote them
    (`seed`, `variants.ae`: a whole section); none without a dvc.lock."""
    try:
        stages = yaml.load(lock.read_text(), Loader=yaml.CSafeLoader)["stages"]
        return {name: (stage.get("params") or {}).get(PARAMS_FILE) or {}
                for name, stage in stages.items()}  # fmt: skip
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}  # no readable dvc.lock, or a stage or its params not a mapping
