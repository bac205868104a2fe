"""SeaweedFS for the stack, locked to its S3 gateway: what lets only the stack's own
processes past it.

Each server is a `weed` process of its own (stack/supervisord.conf gives their commands):
`weed server` runs them in one, with Unix sockets under fixed names in /tmp (a folder
another user makes there first stops it); these keep theirs in the stack's data folder,
which is its user's alone.

Every local user can connect to 127.0.0.1, and SeaweedFS's `[guard] white_list` tells
clients apart by address only, so the stack's servers ask for a credential instead:

- gRPC (master, volume, filer, S3): mutual TLS with a certificate of the stack's own
  certificate authority, made on the first start (weed shell, filer.copy and every write
  token of the master go through gRPC);
- the master's HTTP API (/dir/assign, /dir/lookup, /col/delete, /submit, ...): mutual TLS
  with the same certificate;
- the volume and filer servers' HTTP: JWTs signed with the stack's keys (stack.credentials),
  which only the master and the S3 gateway hold.

Everything is in <stack>/secrets/security.toml (and the certificates beside it, mode 0600),
which `weed -config_dir=<stack>/secrets` reads before ./, ~/.seaweedfs/ or /etc/seaweedfs/.
SeaweedFS starts a server without TLS when its certificates fail to load, so `refusing`
checks the ports themselves.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import time
from pathlib import Path

from aelab.core.errors import AelabError
from stack.credentials import Credentials, write_secret

SERVERS = ("master", "volume", "filer", "s3")  # in start order; the filer runs no S3 itself
CONFIG = "security.toml"
AUTHORITY, CERTIFICATE, KEY = "seaweedfs-ca.pem", "seaweedfs.pem", "seaweedfs-key.pem"
VALID_DAYS = 3650  # made once per stack; a new one comes with a new stack folder


def private_folder(folder: Path) -> Path:
    """`folder`, and all already in it, for its user alone (a stack made before kept its
    data world-readable); the servers' umask (077) keeps what they add so."""
    folder.mkdir(mode=0o700, exist_ok=True)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o700)
    return folder


def configure(secrets: Path, credentials: Credentials) -> Path:
    """security.toml in `secrets` (a 0700 folder), with the certificates it names, made
    once; the folder to give weed as -config_dir."""
    if not all((secrets / name).exists() for name in (AUTHORITY, CERTIFICATE, KEY)):
        _write_certificates(secrets)
    write_secret(secrets / CONFIG, security_toml(secrets, credentials))
    return secrets


def security_toml(secrets: Path, credentials: Credentials) -> str:
    """SeaweedFS's security.toml (`weed scaffold -config=security` explains each key). One
    certificate serves every server and client: the stack is one user's processes."""
    pem = {"cert": str(secrets / CERTIFICATE), "key": str(secrets / KEY)}
    tables = {
        # Write tokens (master to volume server) and read tokens, 10 s and 60 s.
        "jwt.signing": {"key": credentials.volume_write_key, "expires_after_seconds": 10},
        "jwt.signing.read": {"key": credentials.volume_read_key, "expires_after_seconds": 60},
        # The filer's HTTP, behind the S3 gateway; the write key also guards its IAM gRPC.
        "jwt.filer_signing": {"key": credentials.filer_write_key, "expires_after_seconds": 10},
        "jwt.filer_signing.read": {"key": credentials.filer_read_key, "expires_after_seconds": 60},
        "access": {"ui": False},  # no volume server UI
        "grpc": {"ca": str(secrets / AUTHORITY)},
        **{f"grpc.{server}": pem for server in SERVERS},
        "grpc.client": pem,
        "https.master": {**pem, "ca": str(secrets / AUTHORITY)},  # its HTTP API: mutual TLS
    }
    # JSON strings are TOML basic strings: any path is written safely.
    return "".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                          for key, value in table.items()) + "\n"
                   for name, table in tables.items())  # fmt: skip


def _write_certificates(secrets: Path) -> None:
    """A certificate authority of this stack alone, and one certificate it signs for
    127.0.0.1, as server and as client. The authority's key is not kept: nothing else is
    ever signed by it."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise AelabError("cryptography is not installed: install the team extra: "
                         "pip install -e '.[team]'") from None  # fmt: skip

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer: str, signer, *extensions):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))  # fmt: skip
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signer, hashes.SHA256())

    authority_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    authority = certificate("aelab stack CA", authority_key, "aelab stack CA", authority_key,
                            x509.BasicConstraints(ca=True, path_length=0))  # fmt: skip
    server = certificate(
        "aelab stack", key, "aelab stack CA", authority_key,
        x509.BasicConstraints(ca=False, path_length=None),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.DNSName("localhost")]),
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    write_secret(secrets / AUTHORITY, authority.public_bytes(pem).decode())
    write_secret(secrets / CERTIFICATE, server.public_bytes(pem).decode())
    write_secret(secrets / KEY, private.decode())


def refusing(host: str, port: int, secrets: Path) -> bool:
    """Whether `port` speaks TLS with the stack's certificate and refuses a client that has
    none: what security.toml asks of it."""
    context = ssl.create_default_context(cafile=str(secrets / AUTHORITY))
    context.check_hostname = False  # the stack's authority signs nothing else
    try:
        raw = socket.create_connection((host, port), timeout=5)
    except OSError:
        return False
    with raw:
        try:
            tls = context.wrap_socket(raw)  # fails unless the server's certificate is ours
        except (ssl.SSLError, OSError) as error:
            return "CERTIFICATE" in str(error).upper() and "VERIFY" not in str(error).upper()
        with tls:  # TLS 1.3 refuses a client without a certificate after the handshake
            try:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                return tls.recv(1) == b""
            except (ssl.SSLError, OSError):
                return True


def answering_anyone(host: str, ports: dict[str, int], secrets: Path,
                     timeout: float = 15) -> list[str]:  # fmt: skip
    """The names of `ports` that do not refuse a client without the stack's certificate,
    after `timeout` seconds for servers still starting."""
    deadline = time.monotonic() + timeout
    while True:
        left = [name for name, port in ports.items() if not refusing(host, port, secrets)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.3)
