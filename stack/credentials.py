"""The stack's secrets: generated on its first start, kept in <folder>/secrets (mode 0700,
each file 0600), never in the code, never on a command line (other users see those in
`ps`). Each server and client reads them from a file or its environment:

    credentials.json  every secret below, the source of the other files
    pgpass            libpq's password file (PGPASSFILE) for role `aelab`
    s3.json           SeaweedFS's S3 identities: signed requests with this key pair only
    aws-credentials   the same key pair for DVC (credentialpath) and boto3, profile aelab-stack
    mlflow-auth.ini   MLflow's basic-auth app: its admin user, its user database
    mlflow-password   that user's password, for MLFLOW_TRACKING_PASSWORD (.stack/env)
    (supervisor/supervisord.conf, written by stack.supervisor at every start of supervisord,
    holds supervisord's user and password, and mlflow server's keys: mode 0600 too)
    security.toml     SeaweedFS's JWT keys and TLS certificates (written by stack.seaweedfs,
                      with seaweedfs*.pem, at every start of SeaweedFS)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from aelab.core.errors import AelabError

FOLDER = "secrets"
PROFILE = "aelab-stack"  # the profile of aws-credentials
DATABASE_USER = "aelab"  # owns the stack's databases, and nothing else
DATABASE_ADMIN = "postgres"  # the cluster's superuser: creates that role and the databases
MLFLOW_USER = "aelab"  # the MLflow server's admin user
SUPERVISOR_USER = "aelab"  # of supervisord's control socket


@dataclass(frozen=True)
class Credentials:
    database_admin_password: str
    database_password: str
    s3_access_key: str
    s3_secret_key: str
    mlflow_password: str
    mlflow_form_key: str  # the server's CSRF protection of its own forms
    # SeaweedFS signs its own internal requests with these (JWT, security.toml): its filer
    # and volume servers refuse the unsigned ones that would bypass S3's keys.
    volume_write_key: str
    volume_read_key: str
    filer_write_key: str
    filer_read_key: str
    supervisor_password: str  # another local user must not drive supervisord

    @classmethod
    def generate(cls) -> Credentials:
        values = {name: secrets.token_urlsafe(32) for name in cls.__dataclass_fields__}
        return cls(**values | {"s3_access_key": "AELAB" + secrets.token_hex(8).upper()})


def folder_of(stack_folder: Path) -> Path:
    return stack_folder / FOLDER


def load_or_create(stack_folder: Path) -> Credentials:
    """The stack's credentials, generated and written on the first call."""
    path = folder_of(stack_folder) / "credentials.json"
    if path.exists():
        return load(stack_folder)
    credentials = Credentials.generate()
    folder = folder_of(stack_folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(path, json.dumps(asdict(credentials), indent=1))
    write_secret(folder / "pgpass", f"*:*:*:{DATABASE_USER}:{credentials.database_password}\n")
    write_secret(folder / "s3.json", json.dumps(_s3_identities(credentials)))
    write_secret(folder / "aws-credentials", f"[{PROFILE}]\naws_access_key_id = "
                 f"{credentials.s3_access_key}\naws_secret_access_key = "
                 f"{credentials.s3_secret_key}\n")  # fmt: skip
    write_secret(folder / "mlflow-auth.ini", _mlflow_auth_config(stack_folder, credentials))
    write_secret(folder / "mlflow-password", credentials.mlflow_password)
    return credentials


def load(stack_folder: Path) -> Credentials:
    path = folder_of(stack_folder) / "credentials.json"
    try:
        saved = json.loads(path.read_text())
        credentials = Credentials(**asdict(Credentials.generate()) | saved)
    except FileNotFoundError:
        raise AelabError(f"{path} is missing: start the stack once (make stack) to create "
                         f"its credentials") from None  # fmt: skip
    except (OSError, ValueError, TypeError) as error:
        raise AelabError(f"{path} is unreadable ({error}); stop the stack and restore it, "
                         f"or start a new stack in another --folder") from None  # fmt: skip
    if saved.keys() != asdict(credentials).keys():  # a secret added since: made once, kept
        write_secret(path, json.dumps(asdict(credentials), indent=1))
    return credentials


def write_secret(path: Path, text: str) -> None:
    """`text` into a file that only its owner can read, from its first byte."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _s3_identities(credentials: Credentials) -> dict:
    """SeaweedFS's S3 configuration: one identity, no anonymous access."""
    return {"identities": [{
        "name": "aelab",
        "credentials": [{"accessKey": credentials.s3_access_key,
                         "secretKey": credentials.s3_secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}  # fmt: skip


def _mlflow_auth_config(stack_folder: Path, credentials: Credentials) -> str:
    """The basic-auth app's configuration (MLFLOW_AUTH_CONFIG_PATH): its admin user is the
    stack's one user; its user database sits beside this file."""
    database = folder_of(stack_folder).resolve() / "mlflow-auth.db"
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{database}\n"
        f"admin_username = {MLFLOW_USER}\n"
        f"admin_password = {credentials.mlflow_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "# A checked password is trusted for a minute: the log step's hundreds of requests\n"
        "# would otherwise each pay for the password's hash.\n"
        "auth_cache_ttl_seconds = 60\n"
    )
