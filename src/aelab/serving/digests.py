"""A registered model's files against the digest recorded when its version was registered:
the check every loading path of the anomaly model makes before its weights load.

At registration (aelab.tracking.registry) each version gets two tags:
- `aelab.sha256`: the digest of every file of its artifacts; loading compares it.
- `aelab.content`: the same without MLmodel (which names the run and the time of logging):
  equal for two logs of the same weights and code, so the same content is not registered
  twice.

Two callers: `aelab score --model` checks its download before MLflow reads any of it
(aelab.tracking.integrity.verified_copy), and the model's own `load_context`
(aelab.serving.pyfunc) checks the folder MLflow downloaded before it imports the detector's
code or loads its weights, so `mlflow models serve` and `mlflow.pyfunc.load_model` refuse
what `aelab score` refuses, with the same line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from mlflow import MlflowClient

from aelab.core.errors import AelabError
from aelab.core.io import file_sha256

DIGEST, CONTENT = "aelab.sha256", "aelab.content"
METADATA = "MLmodel"  # names the run, the model id and the time: not content
# MLflow writes this file into each download of models:/NAME/VERSION (or @ALIAS), with the
# name and version it resolved: not part of what was logged, and never taken from the store.
DOWNLOAD_NOTE = "registered_model_meta"


def digest(folder: Path, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 over each file's relative path and SHA-256, in path order."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in (*skip, DOWNLOAD_NOTE):
            total.update(f"{name}\0{file_sha256(path)}\n".encode())
    return total.hexdigest()


def recorded_digest(version, label: str) -> str:
    """The digest registration recorded on `version` (an MLflow ModelVersion), or one
    AelabError line that starts with `label`."""
    recorded = version.tags.get(DIGEST)
    if recorded is None:
        raise AelabError(f"{label}: version {version.version} has no {DIGEST} tag (registered "
                         f"before digests, or by hand); register it again with "
                         f"`aelab log`")  # fmt: skip
    return recorded


def check(folder: Path, version, label: str) -> None:
    """`folder`'s files are those registered as `version`, or one AelabError line that starts
    with `label`."""
    recorded = recorded_digest(version, label)
    found = digest(folder)
    if found != recorded:
        raise AelabError(f"{label}: its files are not the ones registered as version "
                         f"{version.version} (digest {found[:12]}, recorded {recorded[:12]}): "
                         f"refused; someone changed its artifacts")  # fmt: skip


def check_download(folder: Path, registered_as: str) -> None:
    """`folder`, a model MLflow downloaded from the registry, checked against the digest of
    the version it was downloaded as (the tracking store's registry: MLFLOW_TRACKING_URI).
    A model loaded any other way (runs:/, models:/m-..., a folder) carries no recorded
    digest and is refused; `registered_as` (models:/NAME@champion) says how to load it."""
    name, number = _downloaded_as(folder)
    if not name or not number:
        raise AelabError(f"{folder}: not loaded as a registered version; load "
                         f"{registered_as} (or /<version>): only a registered version carries "
                         f"the digest checked before loading")  # fmt: skip
    label = f"models:/{name}/{number}"
    try:
        version = MlflowClient().get_model_version(name, str(number))
    except Exception as error:  # MLflow, HTTP, SQLAlchemy: all mean "no digest to check"
        reason = " ".join(str(getattr(error, "message", error)).split())[:300]
        raise AelabError(
            f"{label}: cannot read its registered digest ({reason}); set MLFLOW_TRACKING_URI "
            f"to the store it was registered in"
        ) from None
    check(folder, version, label)


def _downloaded_as(folder: Path) -> tuple[str | None, str | None]:
    try:
        note = yaml.safe_load((folder / DOWNLOAD_NOTE).read_text())
    except (OSError, yaml.YAMLError):
        return None, None
    if not isinstance(note, dict):
        return None, None
    return note.get("model_name"), note.get("model_version")
