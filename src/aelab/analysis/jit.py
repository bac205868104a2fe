"""numba's cache of compiled code on disk, for umap-learn: its functions are compiled once
per machine and CPU, then loaded by every process (about 7 s of compiling in each process
before, a fraction of a second to load).

The cache is the user's own, like __pycache__: NUMBA_CACHE_DIR when set, else the user's
cache folder (~/.cache/aelab/numba on Linux). It lies outside the project, so neither git
nor DVC sees it. numba keys each entry by the function's bytecode, its argument types, the
numba version and the CPU it compiles for (its name and features, or NUMBA_CPU_NAME and
NUMBA_CPU_FEATURES where they pin them): a hit is the code this process would compile, so
no result depends on the cache. numba writes each file atomically, but two processes that
add entries to one function's index at the same moment could pair one's index with the
other's code; so a process imports the package and runs its first block (where everything
compiles) holding the cache alone. numba's threads come from its own pool, not OpenMP's.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from platformdirs import user_cache_dir

from aelab.core.errors import AelabError

CACHE_ENV = "NUMBA_CACHE_DIR"
THREADING_ENV = "NUMBA_THREADING_LAYER"
LOCK = "aelab.lock"  # in the cache folder: held while a process compiles or loads
_ready: set[str] = set()  # the packages whose first block this process has run


@contextmanager
def cached(package: str) -> Iterator[None]:
    """Run the block with `package` imported and numba's disk cache on for its jitted
    functions. The first time in a process, the import and the block (whose calls compile
    the code, or load it from the cache) hold the cache alone."""
    if package in _ready:
        yield
        return
    # umap-learn calls numba.set_num_threads, which starts numba's thread pool. Its OpenMP
    # pool, beside torch's, slows every later OpenMP user in the process (a k-means fit in
    # the figures stage: 0.03 s before the first map, 3.5 s after); numba's own pool does
    # not. The maps run on one thread anyway.
    os.environ.setdefault(THREADING_ENV, "workqueue")
    with _locked(cache_dir()):
        importlib.import_module(package)
        _cache_jitted(package)
        yield
    _ready.add(package)


def cache_dir() -> Path:
    """NUMBA_CACHE_DIR when set, else <the user's cache folder>/aelab/numba."""
    return Path(os.environ.get(CACHE_ENV) or Path(user_cache_dir("aelab")) / "numba")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    os.environ[CACHE_ENV] = str(folder)  # numba reads it when it compiles
    lock = FileLock(folder / LOCK)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as error:
        raise AelabError(f"numba's cache folder {folder} is not writable ({error.strerror}); "
                         f"set {CACHE_ENV} to a folder that is") from None  # fmt: skip
    try:
        yield
    finally:
        lock.release()


def _cache_jitted(package: str) -> None:
    """numba's disk cache on for every jitted function of `package`'s loaded modules
    (umap-learn declares most of its own without cache=True). A function compiles at its
    first call, so this comes before any."""
    from numba.extending import is_jitted  # loaded by the package already

    for name, module in list(sys.modules.items()):
        if name == package or name.startswith(f"{package}."):
            for value in list(vars(module).values()):
                if is_jitted(value):
                    value.enable_caching()
