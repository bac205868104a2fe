"""Registered models are checked before they run: a model's code is imported and its files
loaded only once their digest is the one recorded when the version was registered
(aelab.serving.digests, which the model's own load_context uses too).

`digest_tags` are the tags registration records; `verified_copy` downloads a version once,
checks that copy and returns it: what was checked is what loads.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aelab.core.errors import AelabError
from aelab.serving.digests import CONTENT, DIGEST, METADATA, check, digest, recorded_digest

REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def digest_tags(folder: Path) -> dict[str, str]:
    return {DIGEST: digest(folder), CONTENT: digest(folder, skip=(METADATA,))}


def download(model_uri: str, into: Path) -> Path:
    """The model's artifacts, as files in `into`."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into)))


def verified_copy(client: MlflowClient, uri: str, expected_name: str, into: Path) -> Path:
    """A local copy of the registered version `uri` (models:/NAME@ALIAS or
    models:/NAME/VERSION) of `expected_name`, whose digest is the one recorded at
    registration; anything else is one AelabError, before any of its code runs."""
    found = REGISTERED.match(uri)
    if found is None:
        raise AelabError(f"--model {uri}: not a registered version; give "
                         f"models:/{expected_name}@champion or models:/{expected_name}/<version>: "
                         f"only those carry the digest that is checked before loading")  # fmt: skip
    name, alias, number = found["name"], found["alias"], found["version"]
    if name != expected_name:
        raise AelabError(f"--model {uri}: {name} is not an anomaly detector; give "
                         f"models:/{expected_name}@champion")  # fmt: skip
    try:
        version = (client.get_model_version_by_alias(name, alias) if alias
                   else client.get_model_version(name, number))  # fmt: skip
    except MlflowException as error:
        raise AelabError(f"--model {uri}: no such version ({error.message})") from None
    recorded_digest(version, f"--model {uri}")  # refused before anything is downloaded
    copy = download(f"models:/{name}/{version.version}", Path(tempfile.mkdtemp(dir=into)))
    check(copy, version, f"--model {uri}")
    return copy
