"""Typed, validated params: the one place params.yaml is read.

Every stage calls `load_params()` first, so a bad value anywhere in params.yaml stops the
pipeline before any work, with one line naming the key path, the bad value and what is
allowed. Sections are pydantic models that forbid unknown keys; values are strict (no
silent "5" -> 5 coercion). New sections (train, variants, evaluate, mlflow) are new
fields on `Params`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from aelab.errors import AelabError

PARAMS_FILE = "params.yaml"

Fraction = Annotated[float, Field(gt=0, lt=1)]
Source = Literal["sample", "mnist", "fashion_mnist", "kmnist"]


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


class Params(Section):
    seed: int = Field(ge=0, lt=2**32)
    data: DataParams
    split: SplitParams


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; any problem is one AelabError line."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; run from the project root") from None
    except yaml.YAMLError as error:
        raise AelabError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise AelabError(f"{path}: expected a mapping of sections, found {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise AelabError(f"{path}: {describe_validation_error(error)}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line for the first problem: key path, bad value, what is allowed."""
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = list(first["loc"])
    if first["type"] == "unknown_key":
        loc.append(first["ctx"]["key"])
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    key = key.removeprefix(".") or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "unknown_key":
        line = f"{key}: {message}"
    elif first["type"] == "missing":
        line = f"{key}: missing; add it (see the README's params table)"
    else:
        line = f"{key} = {_short(first['input'])}: {message}"
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problem(s))"
    return line


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
