"""The same bytes on every x86-64 machine with AVX2: the instruction sets and thread counts
that the lab's numerical libraries are held to.

PyTorch, oneDNN, MKL and numba each choose their kernels by the processor they find: an
AVX-512 machine sums in another order than an AVX2 one, so a network trained on one
differs in its last bits from the same network trained on the other, and then in every
metric downstream (pytorch#155423). Held to AVX2, the oldest instruction set the lab
supports, they run the same kernels everywhere (FastSurfer's PR #892 got bit-identical
float32 across CPU models with the first three pins). A sum split over threads depends on
the thread count, so everything runs on one thread; the lab uses the cores for seeds and
networks side by side instead.

Each variable is read once, when its library loads, so the pins must be in the process's
environment before: every stage (`python -m stages`, stages/__main__.py) and the `aelab`
command pin first, and a stage refuses to run without them (aelab.core.errors.run_stage).
numpy's and scipy's OpenBLAS also choose kernels by processor, but some machines set
OPENBLAS_CORETYPE because older OpenBLAS builds fail on them: the lab leaves it alone, so
PCA, the mixtures and k-means may differ in their last bits across processors
(docs/gate.md).
"""

from __future__ import annotations

import os

PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: PyTorch's convolutions
    "MKL_CBWR": "AVX2,STRICT",  # MKL: PyTorch's matrix products, reproducible bit for bit
    "NUMBA_CPU_NAME": "haswell",  # numba (umap-learn's layout): the first AVX2 processor
    "NUMBA_CPU_FEATURES": "",  # ... with that processor's features, not the host's
    "OMP_NUM_THREADS": "1",  # PyTorch, MKL and OpenBLAS
    "NUMBA_NUM_THREADS": "1",
}


def pin_instruction_sets(environ: os._Environ | dict[str, str] = os.environ) -> None:
    """Put the pins into `environ` (the process's own by default), whatever it held."""
    environ.update(PINS)


def pinned(environ: os._Environ | dict[str, str] = os.environ) -> bool:
    """Whether `environ` (the process's own by default) holds every pin."""
    return all(environ.get(name) == value for name, value in PINS.items())
