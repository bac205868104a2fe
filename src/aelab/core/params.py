"""Typed, validated params: the one place params.yaml is read.

Every stage calls `load_params(<project root>/params.yaml)` first, so a bad value anywhere
in params.yaml stops the pipeline before any work, with one line naming the key path, the
bad value and what is allowed. The methods' names (scores, clusterers, samplers) are
checked against the registries a caller hands `load_params` (aelab.analysis fills them;
core cannot import it), so each stage checks the names of the methods it runs. Sections
are pydantic models that forbid unknown keys; values are strict (no silent "5" -> 5
coercion). New sections (evaluate, mlflow) are new fields on `Params`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aelab.core.errors import AelabError
from aelab.core.registry import Registry

PARAMS_FILE = "params.yaml"
PIXELS = "pixels"  # the baseline without a model (k-means on raw pixels): not a variant name

Fraction = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[int, Field(ge=1)]
Width = Annotated[int, Field(ge=1, le=4096)]  # a hidden layer: wider only costs memory
CodeSize = Annotated[int, Field(ge=1, le=784)]  # a code no larger than the 784 pixels
Channels = Annotated[int, Field(ge=1, le=256)]  # of a conv layer
SeedCount = Annotated[int, Field(ge=1, le=20)]
Source = Literal["sample", "mnist", "fashion_mnist", "kmnist"]
BASELINES = (PIXELS,)  # rows of metrics.json that no variant may take


def _variant_name(name: str) -> str:
    """Variant names become directory, file and DVC stage names (train@<name>): short,
    no dots (DVC reads `variants.a.b` as a nested key), none a baseline's."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValueError(
            "a variant name is 1-40 lowercase letters, digits or _, starting with a letter"
        )
    if name in BASELINES:
        raise ValueError(f"{name!r} is the raw-pixel baseline's name; choose another")
    return name


VariantName = Annotated[str, AfterValidator(_variant_name)]
ExperimentName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Section(BaseModel):
    """Base of every params section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # pydantic's own message ("Extra inputs are not permitted") does not say what is allowed.
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key; allowed keys here: {allowed}",
                    {"key": unknown[0], "allowed": ", ".join(cls.model_fields)},
                )
        return data


class DataParams(Section):
    source: Source
    # torchvision's download folder; pre-seed <root>/<Dataset>/raw/*.gz to run offline.
    root: str = Field(min_length=1)
    # Base URLs tried in order; empty means torchvision's own mirror list.
    mirrors: list[str]

    @field_validator("mirrors")
    @classmethod
    def _mirrors_are_urls(cls, mirrors: list[str]) -> list[str]:
        for url in mirrors:
            if not url.startswith(("http://", "https://", "file://")):
                raise ValueError(f"mirror {url!r} is not an http://, https:// or file:// URL")
        return [url if url.endswith("/") else url + "/" for url in mirrors]


class SplitParams(Section):
    normal_digits: list[int]
    val_fraction: Fraction  # share of the normal training digits held out for validation
    test_fraction: Fraction  # `sample` only: stratified hold-out of all ten digits

    @field_validator("normal_digits")
    @classmethod
    def _distinct_digits(cls, digits: list[int]) -> list[int]:
        if not digits:
            raise ValueError("must list at least one digit (0-9)")
        outside = [d for d in digits if not 0 <= d <= 9]
        if outside:
            raise ValueError(f"digit {outside[0]} is outside 0-9")
        if len(set(digits)) != len(digits):
            raise ValueError("digits must be distinct")
        return sorted(digits)


class TrainParams(Section):
    """Defaults shared by every network variant; a variant's entry may override any of them."""

    # Networks trained per variant, seeds `seed`, `seed` + 1, ...: the metrics are their
    # mean, with a 95 % interval from their spread and from the finite test set.
    seeds: SeedCount
    # Training stops once the validation loss has not improved for `patience` epochs (the
    # best epoch's weights restored), or at `max_epochs`, which the report then flags as
    # not converged. The learning rate halves after `lr_patience` epochs without improvement.
    max_epochs: Positive
    lr_patience: Positive
    patience: Positive
    batch_size: Positive
    lr: float = Field(gt=0, le=1)
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA when present
    arch: Literal["mlp", "conv"]  # the encoder and decoder (aelab.models.architectures)
    hidden_dims: list[Width] = Field(min_length=1)  # mlp: encoder widths; the decoder mirrors
    # conv: channels of each stride-2 convolution (28 -> 14 -> 7 -> 4), and their kernel
    channels: list[Channels] = Field(min_length=1, max_length=3)
    kernel_size: Literal[3, 5, 7]
    latent_dim: CodeSize
    loss: Literal["mse", "l1", "bce"]  # reconstruction loss

    @field_validator("patience")
    @classmethod
    def _patience_outlasts_the_schedule(cls, patience: int, info: ValidationInfo) -> int:
        lr_patience = info.data.get("lr_patience")
        if lr_patience is not None and patience <= lr_patience:
            raise ValueError(
                f"must exceed lr_patience ({lr_patience}), or training stops before the "
                "learning rate ever drops"
            )
        return patience


class AEConfig(TrainParams):
    kind: Literal["ae"]


class DAEConfig(TrainParams):
    kind: Literal["dae"]
    noise: Literal["gaussian", "uniform", "masking"]
    # gaussian: sigma; uniform: half-width a; masking: probability p of zeroing a pixel
    noise_level: float = Field(gt=0, le=1)


class SparseConfig(TrainParams):
    kind: Literal["sparse"]
    sparsity_target: Fraction  # rho: the wanted mean activation of each hidden unit
    sparsity_weight: float = Field(ge=0)  # lambda


class ContractiveConfig(TrainParams):
    kind: Literal["contractive"]
    contractive_weight: float = Field(ge=0)  # lambda on the encoder Jacobian's Frobenius norm

    @field_validator("arch")
    @classmethod
    def _dense_only(cls, arch: str) -> str:
        if arch != "mlp":
            raise ValueError(
                "contractive needs arch 'mlp' (its penalty is computed exactly for dense "
                "encoders only); set arch: mlp for this variant"
            )
        return arch


class VAEConfig(TrainParams):
    kind: Literal["vae"]
    beta: float = Field(ge=0)  # weight of the KL term


class PCAConfig(Section):
    kind: Literal["pca"]
    latent_dim: CodeSize
    seeds: SeedCount  # PCA is exact: its seeds only move k-means


METHOD = r"[a-z][a-z0-9_]*"  # a method's name: it ends the names of its metrics


def _registered(key: str) -> AfterValidator:
    """A method's name, in the registry a caller handed `load_params` as `key`, if it did."""

    def check(name: str, info: ValidationInfo) -> str:
        registry = (info.context or {}).get(key)
        if registry is not None and name not in registry:
            raise ValueError(f"unknown {registry.what}; allowed: {', '.join(registry)}")
        return name

    return AfterValidator(check)


Method = Annotated[str, Field(pattern=f"^{METHOD}$")]
Score = Annotated[Method, _registered("scores")]  # aelab.analysis.scores: what is anomalous
Clusterer = Annotated[Method, _registered("clusterers")]  # ... and how the codes are grouped


def _distinct(entries: list[str]) -> list[str]:
    if len(set(entries)) != len(entries):
        raise ValueError("entries must be distinct")
    return entries


class KnnParams(Section):
    k: Annotated[int, Field(ge=1, le=100)]  # the distance to the k-th nearest training code


class GmmParams(Section):
    components: Annotated[int, Field(ge=1, le=50)]  # of the mixture fit on the training codes
    covariance: Literal["full", "diag", "tied", "spherical"]  # scikit-learn's covariance_type


class UmapParams(Section):
    n_neighbors: Annotated[int, Field(ge=2, le=100)]  # umap-learn's: local vs global structure
    n_epochs: Annotated[int, Field(ge=10, le=1000)]  # of the layout optimisation


class EvaluateParams(Section):
    n_init: Positive  # k-means restarts (scikit-learn's n_init)
    threshold_percentile: float = Field(gt=0, lt=100)  # of validation scores: the article's 95
    # Bootstrap resamples of the test digits behind each 95 % interval.
    bootstrap: Annotated[int, Field(ge=20, le=10_000)]
    scores: Annotated[list[Score], Field(min_length=1), AfterValidator(_distinct)]
    clusterers: Annotated[list[Clusterer], Field(min_length=1), AfterValidator(_distinct)]
    # Scale every code to unit length before knn, gmm and umap (cosine geometry).
    normalize_codes: bool
    knn: KnnParams
    gmm: GmmParams
    umap: UmapParams


Sampler = Annotated[Method, _registered("samplers")]  # aelab.analysis.samplers: generated codes


class ClassifierParams(Section):
    """The small CNN whose penultimate features define the lab's Fréchet distance: trained on
    the training digits, the epoch with the best validation accuracy kept."""

    epochs: Annotated[int, Field(ge=1, le=200)]
    batch_size: Positive
    lr: float = Field(gt=0, le=1)


class InterpolationParams(Section):
    pairs: Annotated[int, Field(ge=2, le=1000)]  # normal test digits of different classes
    steps: Annotated[int, Field(ge=3, le=50)]  # decoded points on each line, both ends included


class GenerateParams(Section):
    # sampler -> the variants it draws from: a list of names, or `all`: every variant it
    # can draw from. `prior` needs a prior (kind vae); `gmm` takes any, PCA included.
    samplers: dict[Sampler, Literal["all"] | list[VariantName]] = Field(min_length=1)
    gmm: GmmParams  # the ex-post mixture fitted on each network's training codes
    interpolation: InterpolationParams


class TrackingParams(Section):
    experiment: ExperimentName  # MLflow experiment of the variant runs
    data_experiment: ExperimentName  # ... and of the data stages' runs, kept apart


# The metrics that name a champion: higher is better for each (a threshold says nothing).
ANOMALY_METRIC = rf"(roc_auc|average_precision|f1|precision|recall)_(?P<score>{METHOD})"
ENCODER_METRIC = rf"(ari|nmi)_(all|normal)_(?P<clusterer>{METHOD})"


class ChampionParams(Section):
    """The best variant per task (the highest mean of the metric over the seeds): the
    `detector` stage packages the anomaly one for new images (`aelab score`), and the log
    step registers both in MLflow's model registry."""

    anomaly: Annotated[str, AfterValidator(lambda name: _metric(name, ANOMALY_METRIC))]
    encoder: Annotated[str, AfterValidator(lambda name: _metric(name, ENCODER_METRIC))]


def _metric(name: str, pattern: str) -> str:
    if not re.fullmatch(pattern, name):
        shape = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", pattern).replace("|", " | ")
        raise ValueError(f"not a metric of the form {shape}")
    return name


class RegressionRule(Section):
    better: Literal["higher", "lower", "any"]  # which way is an improvement; any: no way
    tolerance: float = Field(default=0, ge=0)  # how far it may move the other way and pass


# kind -> config class; aelab.models registers a model class for each kind.
VARIANT_CONFIGS: dict[str, type[Section]] = {
    config.model_fields["kind"].annotation.__args__[0]: config
    for config in (AEConfig, DAEConfig, SparseConfig, ContractiveConfig, VAEConfig, PCAConfig)
}
VariantConfig = Annotated[
    AEConfig | DAEConfig | SparseConfig | ContractiveConfig | VAEConfig | PCAConfig,
    Field(discriminator="kind"),
]


class Params(Section):
    seed: int = Field(ge=0, lt=2**32)
    data: DataParams
    split: SplitParams
    train: TrainParams
    variants: dict[VariantName, VariantConfig] = Field(min_length=1)
    evaluate: EvaluateParams
    classifier: ClassifierParams
    generate: GenerateParams
    tracking: TrackingParams
    champions: ChampionParams
    # `aelab check`: metric (or variant.metric) patterns, fnmatch-style, first match wins.
    regression: dict[Annotated[str, Field(min_length=1)], RegressionRule] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_variant_defaults(cls, data: Any) -> Any:
        """Give each variant the train defaults it does not set itself (and its kind uses)."""
        if not isinstance(data, dict):
            return data
        train, variants = data.get("train"), data.get("variants")
        if not isinstance(train, dict) or not isinstance(variants, dict):
            return data
        filled = {}
        for name, entry in variants.items():
            kind = entry.get("kind") if isinstance(entry, dict) else None
            config = VARIANT_CONFIGS.get(kind) if isinstance(kind, str) else None
            if config is not None:
                inherited = {k: v for k, v in train.items() if k in config.model_fields}
                entry = {**inherited, **entry}
            filled[name] = entry
        return {**data, "variants": filled}

    @model_validator(mode="after")
    def _champions_are_evaluated(self) -> Params:
        """A champion's metric must be one that evaluate computes."""
        score = re.fullmatch(ANOMALY_METRIC, self.champions.anomaly)["score"]
        clusterer = re.fullmatch(ENCODER_METRIC, self.champions.encoder)["clusterer"]
        for key, method, chosen in (("anomaly", score, self.evaluate.scores),
                                    ("encoder", clusterer, self.evaluate.clusterers)):  # fmt: skip
            if method not in chosen:
                # `at`: the key to name, which a model-level check cannot give pydantic.
                raise PydanticCustomError(
                    "champion_metric",
                    "{method} is not among evaluate's methods ({chosen}); add it there or "
                    "choose another metric",
                    {"method": method, "chosen": ", ".join(chosen), "at": ["champions", key],
                     "value": getattr(self.champions, key)},
                )  # fmt: skip
        return self

    @model_validator(mode="after")
    def _samplers_fit_their_variants(self, info: ValidationInfo) -> Params:
        """Every variant a sampler names exists and, where the caller handed the samplers'
        registry, has what the sampler draws from."""
        registry = (info.context or {}).get("samplers", {})
        for sampler, chosen in self.generate.samplers.items():
            kinds = getattr(registry.get(sampler), "kinds", None)
            for name in [] if chosen == "all" else chosen:
                config = self.variants.get(name)
                if config is None:
                    problem = f"{name} is not a variant ({', '.join(self.variants)})"
                elif kinds and config.kind not in kinds:
                    fit = [n for n, c in self.variants.items() if c.kind in kinds]
                    problem = (
                        f"{name} (kind {config.kind}) has no {sampler} to draw from; "
                        f"list variants of kind {' or '.join(kinds)}: {', '.join(fit)}"
                    )
                else:
                    continue
                raise PydanticCustomError(
                    "sampler_variant", problem,
                    {"at": ["generate", "samplers", sampler], "value": chosen},
                )  # fmt: skip
        return self

    def seeds_of(self, name: str) -> list[int]:
        """Variant `name`'s seeds in order, `seed`, `seed` + 1, ... (its `seeds`, which
        train.seeds gives unless it sets its own): the k-th trains models/<name>/seed_<k>/."""
        return [self.seed_of(name, k) for k in range(self.variant(name).seeds)]

    def seed_of(self, name: str, index: int) -> int:
        """The seed of variant `name`'s network `index` (models/<name>/seed_<index>/), read
        without its count of seeds: a stage that uses one network depends on no more."""
        self.variant(name)  # an unknown variant stops here
        return self.seed + index

    def variant(self, name: str) -> VariantConfig:
        if name not in self.variants:
            raise AelabError(
                f"unknown variant {name!r}; params.yaml defines: {', '.join(self.variants)}"
            )
        return self.variants[name]


def load_params(path: str | Path, **registries: Registry) -> Params:
    """Read and validate params.yaml; any problem is one AelabError line. `registries`
    (scores=, clusterers=, samplers=: aelab.analysis's) are those whose names to check."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run from the project root") from None
    except yaml.YAMLError as error:
        raise AelabError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except UnicodeDecodeError as error:
        raise AelabError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except ValueError as error:  # an integer longer than Python converts (4,300 digits)
        raise AelabError(f"{path}: {_huge_integer(path, error)}; shorten it") from None
    if not isinstance(raw, dict):
        raise AelabError(f"{path}: expected a mapping of sections, found {type(raw).__name__}")
    try:
        return Params.model_validate(raw, context=registries)
    except ValidationError as error:
        raise AelabError(f"{path}: {describe_validation_error(error)}") from None


def _huge_integer(path: Path, error: ValueError) -> str:
    """Where the integer PyYAML could not convert is, and how long it is."""
    limit = sys.get_int_max_str_digits()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        found = re.search(rf"\d{{{limit + 1},}}", line.replace("_", ""))
        if found:
            return (f"line {number}: an integer of {len(found[0]):,} digits, more than "
                    f"Python reads ({limit:,})")  # fmt: skip
    return f"a value Python cannot read ({' '.join(str(error).split())[:200]})"


def describe_validation_error(error: ValidationError) -> str:
    """One line for the first problem: key path, bad value, what is allowed."""
    problems = error.errors(include_url=False)
    first = problems[0]
    kind, loc, value = first["type"], list(first["loc"]), first["input"]
    message = first["msg"].removeprefix("Value error, ")
    if loc[-1:] == ["[key]"]:
        del loc[-1]  # pydantic's marker of a mapping's key, which the key itself names
    if loc[:1] == ["variants"] and len(loc) > 2:
        del loc[2]  # pydantic's union tag (the kind), not a key in the file
    if "at" in first.get("ctx", {}):
        loc, value = first["ctx"]["at"], first["ctx"]["value"]
    if kind == "unknown_key":
        loc.append(first["ctx"]["key"])
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
        value = first["ctx"].get("tag")
        message = f"unknown kind; allowed: {', '.join(VARIANT_CONFIGS)}"
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{_clip(part, 43)}" for part in loc)
    key = key.removeprefix(".") or "(top level)"
    if kind == "unknown_key":
        line = f"{key}: {message}"
    elif kind in ("missing", "union_tag_not_found"):
        line = f"{key}: missing; add it (see docs/params.md)"
    else:
        line = f"{key} = {_short(value)}: {message}"
        if kind == "float_type" and _is_number_text(value):
            line += " (YAML reads 1e-4 as text: write 1.0e-4)"
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problem(s))"
    return line


def _is_number_text(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _short(value: Any) -> str:
    return _clip(repr(value), 60)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
