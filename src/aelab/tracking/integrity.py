"""Registered models are checked before they run: a model's code is imported and its files
loaded only once their digest is the one recorded when the version was registered.

At registration (aelab.tracking.registry) each version gets two tags:
- `aelab.sha256`: the digest of every file of its artifacts; loading compares it.
- `aelab.content`: the same without MLmodel (which names the run and the time of logging):
  equal for two logs of the same weights and code, so the same content is not registered
  twice.
`verified_copy` downloads a version once, checks that copy and returns it: what was checked
is what loads.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aelab.core.errors import AelabError
from aelab.core.io import file_sha256

DIGEST, CONTENT = "aelab.sha256", "aelab.content"
METADATA = "MLmodel"  # names the run, the model id and the time: not content
# MLflow writes this file into each download, with the name and version asked for: not part
# of what was logged.
DOWNLOAD_NOTE = "registered_model_meta"
REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def digest(folder: Path, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 over each file's relative path and SHA-256, in path order."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in (*skip, DOWNLOAD_NOTE):
            total.update(f"{name}\0{file_sha256(path)}\n".encode())
    return total.hexdigest()


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
    recorded = version.tags.get(DIGEST)
    if recorded is None:
        raise AelabError(f"--model {uri}: version {version.version} has no {DIGEST} tag "
                         f"(registered before digests, or by hand); register it again with "
                         f"`aelab log`")  # fmt: skip
    copy = download(f"models:/{name}/{version.version}", Path(tempfile.mkdtemp(dir=into)))
    found_digest = digest(copy)
    if found_digest != recorded:
        raise AelabError(f"--model {uri}: its files are not the ones registered as version "
                         f"{version.version} (digest {found_digest[:12]}, recorded "
                         f"{recorded[:12]}): refused; someone changed its artifacts")  # fmt: skip
    return copy
