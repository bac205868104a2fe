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
in bounded memory: at most MAX_IMAGES images a call, all files together, and MAX_PIXELS
pixels a picture. Bodies are read and scaled a chunk at a time into one float32 array.

Any bad input is one AelabError naming the path and the fix; nothing is returned until
every input has been read.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
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


# Memory is bounded per call, not per file: every file's image count is read from its header
# first, and the call is refused when they add up to more than MAX_IMAGES. The images then go
# straight into one float32 array, read and scaled CHUNK_ROWS at a time, so a call holds that
# array (314 MB at the cap) and one chunk of the file being read, whatever the files hold.
MAX_IMAGES = 100_000
CHUNK_ROWS = 8192  # 6 MB of uint8, 51 MB of float64 rows read at a time
SPLIT_IT = "score them in several calls"


@dataclass(frozen=True)
class _Source:
    """One input file and its image count, known (from its header) before its body is read."""

    path: Path
    count: int
    fill: Callable[[np.ndarray], None]  # writes its images into a (count, 784) block

    def names(self) -> list[str]:
        if _is_image(self.path):
            return [str(self.path)]
        return [f"{self.path}[{i}]" for i in range(self.count)]


def input_files(sources: Sequence[str | Path]) -> list[Path]:
    """The files `sources` name, folders expanded to their images, each checked to be a
    readable file of an accepted kind; or one AelabError."""
    if not sources:
        raise AelabError(f"no inputs given; name {ACCEPTED}")
    return [file for source in sources for file in _files_of(Path(source))]


def read_inputs(sources: Sequence[str | Path], resize: bool = False) -> Inputs:
    """Every image of `sources` (files and folders, in order), or one AelabError."""
    # Every path is found and checked before any is read: a typo fails at once.
    planned, total = [], 0
    for path in input_files(sources):
        source = _source(path, resize)
        _check_total(source, total)
        planned.append(source)
        total += source.count
    images = np.empty((total, INPUT_DIM), np.float32)
    row = 0
    for source in planned:
        source.fill(images[row : row + source.count])
        row += source.count
    return Inputs([name for source in planned for name in source.names()], images)


def _source(path: Path, resize: bool) -> _Source:
    if _is_image(path):

        def fill(block: np.ndarray) -> None:
            block[:] = _read_image(path, resize)

        return _Source(path, 1, fill)
    header = _array_header(path)
    return _Source(path, header.shape[0], lambda block: _fill_from_body(path, header, block))


def _check_total(source: _Source, before: int) -> None:
    count = source.count
    if before + count <= MAX_IMAGES:
        return
    if before == 0:
        raise AelabError(
            f"{source.path}: {count:,} images, more than a call takes ({MAX_IMAGES:,}); "
            f"split it into files of at most {MAX_IMAGES:,} images and {SPLIT_IT}"
        )
    raise AelabError(
        f"{source.path}: its {count:,} images bring the call to {before + count:,}, more than "
        f"a call takes ({MAX_IMAGES:,}); {SPLIT_IT}"
    )


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


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]  # (N, 784) or (N, 28, 28)
    dtype: np.dtype
    kind: str  # ".npy", ".npz" or "IDX": how to find the body again


def _array_header(path: Path) -> _Header:
    """An array or IDX file's shape and dtype, from its header alone, checked to be digits."""
    if _is_idx(path):
        with _idx_stream(path) as stream:
            return _idx_header(stream, path)
    if path.suffix.lower() == ".npz":
        with _npz_member(path) as (handle, name):
            return _npy_header(handle, name, ".npz")
    with _npy_file(path) as handle:
        return _npy_header(handle, str(path), ".npy")


def _fill_from_body(path: Path, header: _Header, block: np.ndarray) -> None:
    """Read the file's body into `block`, CHUNK_ROWS images at a time, each scaled to [0, 1]."""
    if header.kind == "IDX":
        with _idx_stream(path) as stream:
            _idx_header(stream, path)
            _read_rows(stream, str(path), header, block)
            if _read_idx_part(stream, path, 1):
                raise AelabError(
                    f"{path}: more data where its header's shape {header.shape} needs "
                    f"{len(block) * INPUT_DIM:,} bytes (damaged); download the file again"
                )
        return
    if header.kind == ".npz":
        with _npz_member(path) as (handle, name):
            _npy_header(handle, name, ".npz")
            _read_rows(handle, name, header, block)
        return
    with _npy_file(path) as handle:
        _npy_header(handle, str(path), ".npy")
        _read_rows(handle, str(path), header, block)


def _read_rows(stream: IO[bytes], name: str, header: _Header, block: np.ndarray) -> None:
    row_bytes = INPUT_DIM * header.dtype.itemsize
    for start in range(0, len(block), CHUNK_ROWS):
        rows = min(CHUNK_ROWS, len(block) - start)
        data = _read_body(stream, name, rows * row_bytes, header.kind)
        if len(data) < rows * row_bytes:
            done = start * row_bytes + len(data)
            raise AelabError(
                f"{name}: {done:,} bytes of data where its header's shape {header.shape} needs "
                f"{len(block) * row_bytes:,} bytes (truncated or damaged); {_FIXES[header.kind]}"
            )
        rows_read = np.frombuffer(data, header.dtype).reshape(rows, INPUT_DIM)
        _scale_into(block[start : start + rows], rows_read, name, start)


_FIXES = {
    "IDX": "download the file again",
    ".npy": "save numbers with numpy.save",
    ".npz": "save the digits with numpy.savez(path, images=...)",
}


def _read_body(stream: IO[bytes], name: str, size: int, kind: str) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        what = "gzip file" if kind == "IDX" else f"{kind} array"
        raise AelabError(
            f"{name}: not a readable {what} ({_reason(error)}); {_FIXES[kind]}"
        ) from None


@contextmanager
def _npy_file(path: Path) -> Iterator[IO[bytes]]:
    with _readable_array(path, ".npy"):
        if zipfile.is_zipfile(path):  # numpy reads by content: an .npz archive
            raise AelabError(f"{path}: an .npz archive, not an .npy array; rename it to .npz")
        with path.open("rb") as handle:
            yield handle


@contextmanager
def _npz_member(path: Path) -> Iterator[tuple[IO[bytes], str]]:
    """The archive's images member, opened (zipfile inflates no further than it is read),
    and its name for messages: `<path>[images]`."""
    with _readable_array(path, ".npz"), zipfile.ZipFile(path) as archive:
        member = _images_member(archive, path)
        name = f"{path}[{member.filename.removesuffix('.npy')}]"
        if member.file_size > MAX_BYTES + NPY_HEADER_ROOM:
            raise AelabError(
                f"{name}: {member.file_size:,} bytes once inflated, more than "
                f"{MAX_IMAGES:,} images take; split it into files of at most "
                f"{MAX_IMAGES:,} images and {SPLIT_IT}"
            )
        with archive.open(member) as handle:
            yield handle, name


MAX_BYTES = MAX_IMAGES * INPUT_DIM * 8  # float64 images, the widest dtype accepted
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


def _npy_header(handle: IO[bytes], name: str, kind: str) -> _Header:
    """An .npy header read from `handle`, which is left at the start of the body."""
    version = np.lib.format.read_magic(handle)
    if version not in NPY_HEADER_READERS:
        raise AelabError(f"{name}: .npy format {version}, not 1.0 or 2.0; save it with numpy.save")
    shape, fortran_order, dtype = NPY_HEADER_READERS[version](handle)
    header = _checked_header(name, shape, dtype, kind)
    if fortran_order and len(shape) > 1:  # its bytes are not image after image
        raise AelabError(f"{name}: stored in Fortran order; save "
                         f"numpy.ascontiguousarray(images) instead")  # fmt: skip
    return header


@contextmanager
def _readable_array(path: Path, kind: str) -> Iterator[None]:
    try:
        yield
    except AelabError:
        raise
    except Exception as error:  # numpy, zipfile, zlib and OS errors all mean "unusable"
        raise AelabError(
            f"{path}: not a readable {kind} array ({_reason(error)}); {_FIXES[kind]}"
        ) from None


def _checked_header(name: str, shape: tuple[int, ...], dtype: np.dtype, kind: str) -> _Header:
    """Refuse, from its header alone, an array that is not N digits of numbers."""
    _check_shape(name, shape)
    _check_dtype(name, dtype)
    return _Header(tuple(shape), dtype, kind)


def _check_shape(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) not in (2, 3) or tuple(shape[1:]) not in ((INPUT_DIM,), IMAGE_SHAPE):
        raise AelabError(
            f"{name}: shape {tuple(shape)}, not N x 784 or N x 28 x 28 digits; reshape it "
            f"(one image as 1 x 28 x 28)"
        )
    if shape[0] == 0:
        raise AelabError(f"{name}: no images in it (shape {tuple(shape)}); give at least one")


def _check_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise AelabError(f"{name}: {dtype} values; give integers in 0..255 or floats in [0, 1]")


def _idx_header(stream: IO[bytes], path: Path) -> _Header:
    """An IDX file's header: 0, 0, the data type, the number of dimensions, each dimension as a
    big-endian int32. The stream is left at the start of the data."""
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
    return _checked_header(str(path), shape, np.dtype(np.uint8), "IDX")


def _idx_stream(path: Path) -> IO[bytes]:
    """The file's bytes as a stream: a gzip file inflated only as far as it is read."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _read_idx_part(stream: IO[bytes], path: Path, size: int) -> bytes:
    return _read_body(stream, str(path), size, "IDX")


def as_images(array: np.ndarray, name: str) -> np.ndarray:
    """An array of digits, N×784 or N×28×28 (integers in 0..255, floats in [0, 1]), as
    (N, 784) float32 in [0, 1]; anything else is one AelabError naming `name`. Converted
    CHUNK_ROWS at a time: the float32 copy is the only one of the whole array, and float32
    rows are not copied at all."""
    _check_shape(name, array.shape)
    _check_dtype(name, array.dtype)
    flat = array.reshape(len(array), INPUT_DIM)
    if flat.dtype == np.float32:  # read_inputs' own output, say: checked, not copied
        for start in range(0, len(flat), CHUNK_ROWS):
            _check_range(flat[start : start + CHUNK_ROWS], 1, "[0, 1]", name,
                         "divide 0..255 pixels by 255", start)  # fmt: skip
        return flat
    images = np.empty(flat.shape, np.float32)
    for start in range(0, len(flat), CHUNK_ROWS):
        _scale_into(images[start : start + CHUNK_ROWS], flat[start : start + CHUNK_ROWS], name,
                    start)  # fmt: skip
    return images


def _scale_into(block: np.ndarray, rows: np.ndarray, name: str, first: int) -> None:
    """`rows` (integers in 0..255 or floats in [0, 1]) scaled into the float32 `block`, as
    `rows.astype(np.float32) / 255` would; `first`: the index of rows[0] in its file."""
    if rows.dtype.kind in "iu":
        if rows.dtype != np.uint8:  # uint8 is in 0..255 by its type
            _check_range(rows, 255, "0..255", name, "give integers in 0..255", first)
        block[:] = rows
        block /= 255
    else:
        _check_range(rows, 1, "[0, 1]", name, "divide 0..255 pixels by 255", first)
        block[:] = rows


def _check_range(rows: np.ndarray, top: int, span: str, name: str, fix: str, first: int) -> None:
    """Every value in 0..top (NaN fails too: it compares False), or name the first image
    that is not."""
    outside = ~((rows >= 0) & (rows <= top))
    bad_rows = np.flatnonzero(outside.any(axis=1))
    if len(bad_rows):
        bad = bad_rows[0]
        value = rows[bad][outside[bad]][0]
        raise AelabError(f"{name}: image {first + bad} holds the value {value}, outside {span}; "
                         f"{fix}")  # fmt: skip


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or " ".join(str(error).split())[:200]
