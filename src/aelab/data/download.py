"""Fetch checksummed files from a list of mirrors, with time limits and one clear error.

torchvision's own `download_url` has no timeout (a dead network hangs it) and reports a
bad checksum without naming what it expected, so the loop over mirrors lives here; the
file tables, parsing and extraction stay torchvision's.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from aelab.core.errors import AelabError
from aelab.core.io import atomic_open

TIMEOUT_SECONDS = 10  # per connection attempt and per read; a blackholed mirror fails fast
# Per file, everything included: a mirror trickling a byte every few seconds never trips
# the per-read timeout, so it fails on this (MNIST's largest file, 9.9 MB, needs 33 kB/s).
DEADLINE_SECONDS = 300
CHUNK_BYTES = 1 << 20
OFFLINE_HINT = "docs/datasets.md, 'Offline'"


class ChecksumMismatch(Exception):
    pass


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_verified(filename: str, md5: str, folder: Path, mirrors: Sequence[str]) -> Path:
    """Return `folder/filename` with the expected MD5, downloading it from the first mirror
    that serves it. A file already there (cached or pre-seeded) is verified, never replaced."""
    path = folder / filename
    if path.exists():
        found = md5_of(path)
        if found != md5:
            raise AelabError(
                f"{path}: checksum mismatch (expected md5 {md5}, found {found}); "
                "delete it to download it again, or replace it with the original file"
            )
        return path
    failures = []
    for mirror in mirrors:
        url = mirror + filename
        try:
            _download(url, path, md5)
            return path
        except ChecksumMismatch as error:
            failures.append(f"{url}: {error}")
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {_reason(error)}")
    raise AelabError(
        f"could not download {filename} from any mirror ({'; '.join(failures) or 'none given'}); "
        f"set data.mirrors to a mirror you can reach, or copy the original {filename} into "
        f"{folder}/ to run offline ({OFFLINE_HINT})"
    )


def _download(url: str, path: Path, md5: str) -> None:
    """Stream `url` into `path` atomically; the file appears only if its MD5 matches and
    it came whole within DEADLINE_SECONDS (else a TimeoutError, an OSError like the rest)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        size = int(response.headers.get("Content-Length") or 0) or None
        with (
            atomic_open(path) as out,
            tqdm(total=size, unit="B", unit_scale=True, desc=path.name, leave=False) as bar,
        ):
            # read1 returns what has arrived (read waits for a whole chunk), so the
            # deadline is checked at least once per TIMEOUT_SECONDS however slow the mirror.
            for chunk in iter(lambda: response.read1(CHUNK_BYTES), b""):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no complete file within {DEADLINE_SECONDS} s")
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            if digest.hexdigest() != md5:
                raise ChecksumMismatch(
                    f"checksum mismatch (expected md5 {md5}, found {digest.hexdigest()})"
                )


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or error  # URLError wraps the socket error
    return " ".join(str(reason).split()) or type(error).__name__
