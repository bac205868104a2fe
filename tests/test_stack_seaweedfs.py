"""stack.seaweedfs without servers: the security.toml it writes, and its check that a port
refuses a client without the stack's certificate (which `make stack` runs on every
SeaweedFS port it locks; tests/test_stack.py tries the real ones as another user)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack import seaweedfs
from stack.credentials import Credentials

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the TOML parser DVC brings
    import tomlkit as tomllib


def private_folder(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True)
    return path


def test_security_toml_locks_every_server_with_the_stacks_own_keys(tmp_path: Path):
    """JWT keys from the credentials, mutual TLS for each gRPC server, its clients and the
    master's HTTP; files of mode 0600. A folder whose name needs escaping in TOML is read
    back as it is. The certificates are made once, the file is written at every start."""
    secrets = private_folder(tmp_path / 'a "quoted" \\ name' / "secrets")
    credentials = Credentials.generate()
    seaweedfs.configure(secrets, credentials)
    config = tomllib.loads((secrets / seaweedfs.CONFIG).read_text())
    keys = {name: config["jwt"][table]["key"] for name, table in
            [("volume_write_key", "signing"), ("filer_write_key", "filer_signing")]}  # fmt: skip
    keys |= {"volume_read_key": config["jwt"]["signing"]["read"]["key"],
             "filer_read_key": config["jwt"]["filer_signing"]["read"]["key"]}  # fmt: skip
    assert keys == {name: getattr(credentials, name) for name in keys}
    pem = {"cert": str(secrets / seaweedfs.CERTIFICATE), "key": str(secrets / seaweedfs.KEY)}
    authority = str(secrets / seaweedfs.AUTHORITY)
    assert config["grpc"]["ca"] == authority
    for server in ("master", "volume", "filer", "s3", "client"):
        assert config["grpc"][server] == pem, server
    assert config["https"]["master"] == {**pem, "ca": authority}
    assert {path.name: path.stat().st_mode & 0o777 for path in secrets.iterdir()} == {
        name: 0o600
        for name in (seaweedfs.CONFIG, seaweedfs.AUTHORITY, seaweedfs.CERTIFICATE, seaweedfs.KEY)
    }

    certificate = (secrets / seaweedfs.CERTIFICATE).read_bytes()
    seaweedfs.configure(secrets, Credentials.generate())
    assert (secrets / seaweedfs.CERTIFICATE).read_bytes() == certificate


@contextmanager
def server(tls: ssl.SSLContext | None) -> Iterator[int]:
    """A server on 127.0.0.1 that answers one connection's first bytes, over `tls` (or in
    plain text); its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            with tls.wrap_socket(connection, server_side=True) if tls else connection as peer:
                peer.recv(100)
                peer.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass  # a refused client

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with listener:
        yield listener.getsockname()[1]
        thread.join(10)


def tls_server(secrets: Path, wants_certificate: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(secrets / seaweedfs.CERTIFICATE, secrets / seaweedfs.KEY)
    context.load_verify_locations(secrets / seaweedfs.AUTHORITY)
    context.verify_mode = ssl.CERT_REQUIRED if wants_certificate else ssl.CERT_NONE
    return context


def test_refusing_is_true_only_of_a_port_that_wants_the_stacks_certificate(tmp_path: Path):
    """True of a server with the stack's certificate that wants one of the client; false of
    one that answers a client without it, of plain text, of another stack's certificate
    (a server that is not the stack's), and of a closed port."""
    ours, theirs = private_folder(tmp_path / "ours"), private_folder(tmp_path / "theirs")
    for secrets in (ours, theirs):
        seaweedfs.configure(secrets, Credentials.generate())
    found = {}
    for name, tls in [("wants one", tls_server(ours, True)),
                      ("answers anyone", tls_server(ours, False)),
                      ("plain text", None),
                      ("another stack's", tls_server(theirs, True))]:  # fmt: skip
        with server(tls) as port:
            found[name] = seaweedfs.refusing("127.0.0.1", port, ours)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        found["closed"] = seaweedfs.refusing("127.0.0.1", unused.getsockname()[1], ours)
    assert found == {"wants one": True, "answers anyone": False, "plain text": False,
                     "another stack's": False, "closed": False}  # fmt: skip
