"""New images for `aelab score` and the registry's anomaly model: files read and checked,
as (N, 784) float32 in [0, 1].

Inputs must be digits as MNIST has them: white digits on a black background, 28×28
grayscale. Nothing is inverted: a black digit on white paper scores as an anomaly.

Accepted sources:
- PNG and JPEG files (`.png`, `.jpg`, `.jpeg`, by extension; the content must be one of them);
- folders: their PNG and JPEG files, sorted by name. Not recursive: subfolders, hidden
  files (`.name`) and files with other extensions are ignored, but a file with an image
  extension that does not read as one is an error, never skipped;
- `.npy` and `.npz` arrays (an .npz's `images` array, or its only one) of shape N×784 or
  N×28×28, integers in 0..255 or floats in [0, 1]. The first axis is always the images:
  a single 28×28 array is refused (save it as 1×28×28), so `<path>[i]` is row i;
- IDX files as MNIST ships them (`*-ubyte`, `*.idx`, either gzipped as `*.gz`).

Images must be 28×28 and grayscale: mode "L", or "1" (black and white, read as 0 and 255,
losslessly). Any other size or mode ("LA", "P", "RGB", "RGBA", 16-bit "I;16"...) is
refused unless `resize` (`--resize`): then it is converted to 8-bit grayscale (alpha
dropped, 16 bits scaled, not clipped) and resized (stretched, Lanczos) to 28×28.

Sizes are read from headers before bodies (a gzip or .npz member is inflated only as far
as its header declares), so a small file that claims or inflates to gigabytes is refused
in bounded memory: at most MAX_IMAGES images a file, MAX_PIXELS pixels a picture.

Any bad input is one AelabError naming the path and the fix; nothing is returned until
every input has been read.
"""

from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from aelab.core.errors import AelabError
from aelab.data.digits import IMAGE_SHAPE, INPUT_DIM

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = ["PNG", "JPEG"]  # Pillow opens many more; the docs promise these two
IMAGE_MODES = ("L", "1")  # 8-bit grayscale, and black-and-white that converts losslessly
MAX_PIXELS = 4096 * 4096  # a photo of a digit; Pillow's own bomb limit is 5x as many
IDX_UBYTE = 0x08  # the IDX data type byte of unsigned bytes, MNIST's only one
IDX_MAGIC_BYTES = 4  # 0, 0, data type, number of dimensions
ACCEPTED = "PNG/JPEG files, folders of them, .npy/.npz arrays or MNIST IDX files"


@dataclass(frozen=True)
class Inputs:
    names: list[str]  # a file's path, or `<path>[<i>]` for the i-th image of an array
    images: np.ndarray  # (N, 784) float32 in [0, 1]; row i is names[i]


def read_inputs(sources: Sequence[str | Path], resize: bool = False) -> Inputs:
    """Every image of `sources` (files and folders, in order), or one AelabError."""
    if not sources:
        raise AelabError(f"no inputs given; name {ACCEPTED}")
    # Every path is found and checked before any is read: a typo fails at once.
    files = [file for source in sources for file in _files_of(Path(source))]
    names, blocks = [], []
    for path in files:
        if _is_image(path):
            names.append(str(path))
            blocks.append(_read_image(path, resize))
        else:
            block = as_images(_read_array(path), str(path))
            names += [f"{path}[{i}]" for i in range(len(block))]
            blocks.append(block)
    return Inputs(names, np.concatenate(blocks))


def _files_of(path: Path) -> list[Path]:
    """The file itself, or a folder's image files; each one checked to be readable."""
    if path.is_dir():
        files = _folder_images(path)
    elif not path.exists():  # also a symbolic link to nowhere
        raise AelabError(f"{path}: no such file or folder; check the path")
    elif not (_is_image(path) or _is_array(path) or _is_idx(path)):
        raise AelabError(f"{path}: not an image, array or IDX file by its name; give {ACCEPTED}")
    else:
        files = [path]
    for file in files:
        _check_readable(file)
    return files


def _folder_images(folder: Path) -> list[Path]:
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    images = sorted(entry for entry in entries if _is_image(entry) and not entry.is_dir())
    if not images:
        found = "it is empty" if not entries else "other files and subfolders are ignored"
        raise AelabError(
            f"{folder}: no PNG or JPEG files in this folder ({found}); put the digits' images "
            f"in it, or give array or IDX files themselves"
        )
    return images


def _check_readable(path: Path) -> None:
    # A FIFO or device would block or stream forever in the readers, even for root.
    if not path.is_file():
        raise AelabError(f"{path}: not a regular file (a FIFO, device or broken link); give a file")
    try:
        path.open("rb").close()
    except OSError as error:
        reason = _reason(error)
        raise AelabError(f"{path}: cannot open it ({reason}); check its permissions") from None


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _is_array(path: Path) -> bool:
    return path.suffix.lower() in (".npy", ".npz")


def _is_idx(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(("-ubyte", ".idx"))


def _read_image(path: Path, resize: bool) -> np.ndarray:
    """One image file as a (1, 784) row."""
    image = _open_image(path)
    if image.mode not in IMAGE_MODES or image.size != IMAGE_SHAPE:
        if not resize:
            raise AelabError(
                f"{path}: {image.size[0]}x{image.size[1]} {image.mode} image, not 28x28 "
                f"grayscale; pass --resize to convert it"
            )
        image = _to_mnist_size(image)
    return np.asarray(image.convert("L"), np.float32).reshape(1, INPUT_DIM) / 255


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            _check_pixels(path, image.size)  # from the header, before anything is decoded
            image.load()  # decodes now: a truncated file fails here, not later
    except UnidentifiedImageError:
        raise AelabError(f"{path}: not a PNG or JPEG image; give a digit picture") from None
    except Image.DecompressionBombError as error:
        raise AelabError(f"{path}: too large an image ({error}); shrink it first") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's decoding errors
        raise AelabError(
            f"{path}: damaged image ({_reason(error)}); save it again as PNG"
        ) from None
    return image


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise AelabError(
            f"{path}: {size[0]}x{size[1]} pixels, more than --resize takes "
            f"({MAX_PIXELS:,}); shrink it to 28x28 first"
        )


def _to_mnist_size(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):  # 16-bit grayscale: convert("L") clips it at 255
        eight_bit = np.clip(np.round(np.asarray(image) / 257), 0, 255).astype(np.uint8)
        image = Image.fromarray(eight_bit)
    return image.convert("L").resize(IMAGE_SHAPE, Image.Resampling.LANCZOS)


def _read_array(path: Path) -> np.ndarray:
    if _is_idx(path):
        return _read_idx(path)
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    return _read_npy(path)


# Every array's size is checked against its header before its body is read or inflated,
# and a compressed body is read no further than that size: a small file that claims or
# inflates to gigabytes is refused in one line with memory bounded by MAX_IMAGES.
MAX_IMAGES = 100_000  # per file: 78 MB of bytes, 314 MB once scaled to float32
MAX_BYTES = MAX_IMAGES * INPUT_DIM * 8  # float64 images, the widest dtype as_images takes
SPLIT_IT = f"split it into files of at most {MAX_IMAGES:,} images"


def _read_npy(path: Path) -> np.ndarray:
    with _readable_array(path, ".npy", "save numbers with numpy.save"):
        if zipfile.is_zipfile(path):  # numpy reads by content: an .npz archive
            raise AelabError(f"{path}: an .npz archive, not an .npy array; rename it to .npz")
        with path.open("rb") as handle:
            return _checked_npy(handle, str(path))


def _read_npz(path: Path) -> np.ndarray:
    fix = "save the digits with numpy.savez(path, images=...)"
    with _readable_array(path, ".npz", fix), zipfile.ZipFile(path) as archive:
        member = _images_member(archive, path)
        name = f"{path}[{member.filename.removesuffix('.npy')}]"
        if member.file_size > MAX_BYTES + NPY_HEADER_ROOM:  # zipfile inflates no further
            raise AelabError(
                f"{name}: {member.file_size:,} bytes once inflated, more than "
                f"{MAX_IMAGES:,} images take; {SPLIT_IT}"
            )
        with archive.open(member) as handle:
            return _checked_npy(handle, name)


NPY_HEADER_ROOM = 1 << 16  # numpy's own limit on an .npy header is 10,000 bytes
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _images_member(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    """The archive's `images` array, or its only one."""
    members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    if "images" in members:
        return members["images"]
    if len(members) != 1:
        raise AelabError(
            f"{path}: {len(members)} arrays ({', '.join(sorted(members))}) and none named "
            f"`images`; save the digits under the name `images`"
        )
    return next(iter(members.values()))


def _checked_npy(handle: IO[bytes], name: str) -> np.ndarray:
    """An .npy array from `handle`, its header's shape and dtype checked first."""
    start = handle.tell()
    version = np.lib.format.read_magic(handle)
    if version not in NPY_HEADER_READERS:
        raise AelabError(f"{name}: .npy format {version}, not 1.0 or 2.0; save it with numpy.save")
    shape, _, dtype = NPY_HEADER_READERS[version](handle)
    _check_declared(name, shape, dtype.itemsize)
    handle.seek(start)
    return np.lib.format.read_array(handle, allow_pickle=False)


@contextmanager
def _readable_array(path: Path, kind: str, fix: str) -> Iterator[None]:
    try:
        yield
    except AelabError:
        raise
    except Exception as error:  # numpy, zipfile, zlib and OS errors all mean "unusable"
        raise AelabError(f"{path}: not a readable {kind} array ({_reason(error)}); {fix}") from None


def _check_declared(name: str, shape: tuple[int, ...], itemsize: int) -> None:
    """Refuse, from its header alone, an array that is not N digits or has too many."""
    if len(shape) not in (2, 3) or shape[1:] not in ((INPUT_DIM,), IMAGE_SHAPE):
        raise AelabError(
            f"{name}: shape {shape}, not N x 784 or N x 28 x 28 digits; reshape it "
            f"(one image as 1 x 28 x 28)"
        )
    if shape[0] > MAX_IMAGES or math.prod(shape) * itemsize > MAX_BYTES:
        raise AelabError(
            f"{name}: {shape[0]:,} images of {itemsize}-byte values, more than a file may hold "
            f"({MAX_IMAGES:,} of at most 8 bytes); {SPLIT_IT}"
        )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file, gzipped or not: 0, 0, the data type, the number of dimensions, each
    dimension as a big-endian int32, then the data, read no further than the header says."""
    with _idx_stream(path) as stream:
        magic = _read_idx_part(stream, path, IDX_MAGIC_BYTES)
        if len(magic) < IDX_MAGIC_BYTES or magic[:2] != b"\0\0" or magic[2] != IDX_UBYTE:
            raise AelabError(
                f"{path}: not an IDX file of unsigned bytes (it starts {magic.hex(' ')}, not "
                f"00 00 08); give MNIST's images file"
            )
        ndim = magic[3]
        if ndim == 1:
            raise AelabError(f"{path}: an IDX file of labels, not images; give the images file")
        dims = _read_idx_part(stream, path, 4 * ndim)
        if len(dims) < 4 * ndim:
            raise AelabError(f"{path}: IDX header cut short; download the file again")
        shape = tuple(int(size) for size in np.frombuffer(dims, ">u4"))
        _check_declared(str(path), shape, 1)
        data = _read_idx_part(stream, path, math.prod(shape))
        extra = len(_read_idx_part(stream, path, 1))
        if len(data) + extra != math.prod(shape):
            more = "more" if extra else f"{len(data):,} bytes of"
            raise AelabError(
                f"{path}: {more} data where its header's shape {shape} needs "
                f"{math.prod(shape):,} bytes (truncated or damaged); download the file again"
            )
    return np.frombuffer(data, np.uint8).reshape(shape)


def _idx_stream(path: Path) -> IO[bytes]:
    """The file's bytes as a stream: a gzip file inflated only as far as it is read."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _read_idx_part(stream: IO[bytes], path: Path, size: int) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as error:  # not gzip, cut short, or corrupt
        raise AelabError(
            f"{path}: not a readable gzip file ({_reason(error)}); download it again"
        ) from None


def as_images(array: np.ndarray, name: str) -> np.ndarray:
    """An array of digits, N×784 or N×28×28 (integers in 0..255, floats in [0, 1]), as
    (N, 784) float32 in [0, 1]; anything else is one AelabError naming `name`."""
    if array.ndim not in (2, 3) or array.shape[1:] not in ((INPUT_DIM,), IMAGE_SHAPE):
        raise AelabError(
            f"{name}: shape {array.shape}, not N x 784 or N x 28 x 28 digits; reshape it "
            f"(one image as 1 x 28 x 28)"
        )
    if len(array) == 0:
        raise AelabError(f"{name}: no images in it (shape {array.shape}); give at least one")
    flat = array.reshape(len(array), INPUT_DIM)
    if array.dtype.kind in "iu":
        _check_range(flat, 255, "0..255", name, "give integers in 0..255")
        return flat.astype(np.float32) / 255
    if array.dtype.kind == "f":
        _check_range(flat, 1, "[0, 1]", name, "divide 0..255 pixels by 255")
        return flat.astype(np.float32)
    raise AelabError(f"{name}: {array.dtype} values; give integers in 0..255 or floats in [0, 1]")


def _check_range(flat: np.ndarray, top: int, span: str, name: str, fix: str) -> None:
    """Every value in 0..top (NaN fails too: it compares False), or name the first image
    that is not."""
    outside = ~((flat >= 0) & (flat <= top))
    bad_rows = np.flatnonzero(outside.any(axis=1))
    if len(bad_rows):
        first = bad_rows[0]
        value = flat[first][outside[first]][0]
        raise AelabError(
            f"{name}: image {first} holds the value {value}, outside {span} "
            f"({len(bad_rows)} of {len(flat)} images do); {fix}"
        )


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or " ".join(str(error).split())[:200]
