"""MNIST: find it, read it in any of its usual layouts, check it, or fetch it.

``load_mnist()`` looks, in order, at an explicit ``path=``, the folder named by
the ``NNSCRATCH_DATA`` environment variable, and the per-user cache
(``$XDG_CACHE_HOME/nnscratch`` or ``~/.cache/nnscratch``). In each it accepts:

* the classic ``mnist.pkl.gz`` of Nielsen's book (50k/10k/10k, pixels / 256);
* the four IDX files (``train-images-idx3-ubyte[.gz]`` ...), as published;
* an ``mnist.npz`` with ``x_train, y_train, x_test, y_test`` (Keras' layout).

Failing all of those it downloads the four IDX files from public mirrors with a
progress bar, checks each file's SHA-256 after decompression, and caches them.
Every array is checked (shape, dtype, range, matching lengths) before anything
is returned, so a corrupt or wrong file is reported, never half-loaded.

The pickle is read with an unpickler that can only build NumPy arrays: a
tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["load_mnist", "MNIST", "DataNotFoundError", "DataFileError", "cache_dir"]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed IDX files (the widely published values; the
# shared data folder's README quotes the same).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
N_TRAIN = 50_000  # the classic split: the last 10,000 training images validate


class MNIST(NamedTuple):
    """Three ``(X, y)`` pairs: X float32 (n, 784) in [0, 1), y int64 (n,)."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


class DataNotFoundError(FileNotFoundError):
    """The data is in none of the places searched and could not be downloaded."""


class DataFileError(ValueError):
    """A data file exists but is corrupt, truncated or not what it claims."""


def cache_dir() -> Path:
    """The per-user cache folder for downloaded data."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "nnscratch"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and plain containers, and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol 2 stores raw bytes as latin-1 text; this turns them back
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataFileError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core") :]  # NumPy 2 moved it
        return super().find_class(module, name)


def _read_pickle(path: Path) -> MNIST:
    try:
        with gzip.open(path, "rb") as f:
            parts = _ArrayUnpickler(f, encoding="latin1").load()
    except DataFileError as err:
        raise DataFileError(f"{path}: {err}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as err:
        raise DataFileError(f"{path} is not a readable mnist.pkl.gz (truncated or corrupt): {err}") from None
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(len(p) == 2 for p in parts)):
        raise DataFileError(f"{path} does not hold the (train, validation, test) tuple of (X, y) pairs.")
    return MNIST(*((np.asarray(X), np.asarray(y)) for X, y in parts))


def _open(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path} could not be read (truncated or corrupt): {err}") from None


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode an IDX file (unsigned bytes, 1 or 3 dimensions) into a uint8 array."""
    if len(data) < 8:
        raise DataFileError(f"{name} is too short to be an IDX file ({len(data)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataFileError(f"{name} is not an unsigned-byte IDX file (magic {data[:4].hex()}).")
    header = 4 + 4 * ndim
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataFileError(f"{name} is truncated or padded: {len(data)} bytes, expected {expected} for shape {shape}.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / (stem + ".gz"), folder / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    return None


def _from_raw(
    train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray
) -> MNIST:
    def images(a: np.ndarray) -> np.ndarray:
        return a.reshape(a.shape[0], -1).astype(np.float32) / 256.0  # stays float32

    X, y = images(train_images), train_labels.astype(np.int64)
    if X.shape[0] <= N_TRAIN:
        raise DataFileError(f"expected more than {N_TRAIN} training images, found {X.shape[0]}.")
    return MNIST(
        (X[:N_TRAIN], y[:N_TRAIN]), (X[N_TRAIN:], y[N_TRAIN:]), (images(test_images), test_labels.astype(np.int64))
    )


def _read_idx_folder(folder: Path, verify: bool = False) -> MNIST:
    raw = {}
    for key, stem in IDX_FILES.items():
        path = _find_idx(folder, stem)
        assert path is not None
        data = _open(path)
        if verify and hashlib.sha256(data).hexdigest() != SHA256[stem]:
            raise DataFileError(f"{path} does not match the published SHA-256 of {stem}: corrupt or not MNIST.")
        raw[key] = parse_idx(data, str(path))
    return _from_raw(**raw)


def _read_npz(path: Path) -> MNIST:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, ValueError, OSError) as err:
        raise DataFileError(f"{path} is not an MNIST .npz with x_train, y_train, x_test, y_test: {err}") from None
    x_train = arrays["x_train"]
    if x_train.dtype != np.uint8:  # already scaled floats: bring back to bytes for one code path
        x_train = np.rint(np.asarray(x_train, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8)
        arrays["x_test"] = np.rint(np.asarray(arrays["x_test"], dtype=np.float64) * 256).clip(0, 255).astype(np.uint8)
    return _from_raw(x_train, arrays["y_train"], arrays["x_test"], arrays["y_test"])


def _check(data: MNIST, source: Path) -> MNIST:
    """Every split: float32 (n, 784) in [0, 1], int labels 0-9, matching lengths."""
    out = []
    for name, (X, y) in zip(MNIST._fields, data, strict=True):
        X = np.asarray(X)
        y = np.asarray(y)
        problem = None
        if X.ndim != 2 or X.shape[1] != 784:
            problem = f"{name} images have shape {X.shape}, expected (n, 784)"
        elif y.shape != (X.shape[0],):
            problem = f"{name} has {X.shape[0]} images but labels of shape {y.shape}"
        elif not np.issubdtype(X.dtype, np.floating) or not np.issubdtype(y.dtype, np.integer):
            problem = f"{name} has dtypes {X.dtype}/{y.dtype}, expected float images and integer labels"
        elif X.size and (not np.isfinite(X).all() or X.min() < 0 or X.max() > 1):
            problem = f"{name} pixel values lie outside [0, 1]"
        elif y.size and (y.min() < 0 or y.max() > 9):
            problem = f"{name} labels lie outside 0-9"
        if problem:
            raise DataFileError(f"{source}: {problem}; the file is corrupt or not MNIST.")
        out.append((X.astype(np.float32, copy=False), y.astype(np.int64, copy=False)))
    return MNIST(*out)


def _load_from(location: Path) -> MNIST | None:
    """Load from a file or a folder; None when nothing MNIST-like is there."""
    if location.is_file():
        if location.name.endswith(".pkl.gz") or location.suffix == ".pkl":
            return _check(_read_pickle(location), location)
        if location.suffix == ".npz":
            return _check(_read_npz(location), location)
        raise DataFileError(f"{location}: expected mnist.pkl.gz, an .npz, or a folder of IDX files.")
    if not location.is_dir():
        return None
    for name in ("mnist.pkl.gz", "mnist.npz"):
        if (location / name).is_file():
            return _load_from(location / name)
    if all(_find_idx(location, stem) for stem in IDX_FILES.values()):
        return _check(_read_idx_folder(location), location)
    if (location / "mnist").is_dir():
        return _load_from(location / "mnist")
    return None


def _download(target: Path, progress: bool) -> None:
    """Fetch the four IDX files into ``target``, verifying each before keeping it."""
    from tqdm.auto import tqdm

    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        final = target / (stem + ".gz")
        if final.is_file():
            continue
        errors = []
        for mirror in MIRRORS:
            url = mirror + stem + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    buffer = io.BytesIO()
                    with tqdm(total=total, unit="B", unit_scale=True, desc=stem, disable=not progress) as bar:
                        while chunk := response.read(1 << 16):
                            buffer.write(chunk)
                            bar.update(len(chunk))
                blob = buffer.getvalue()
                if hashlib.sha256(gzip.decompress(blob)).hexdigest() != SHA256[stem]:
                    raise DataFileError(f"checksum mismatch for {url}")
            except (OSError, EOFError, DataFileError) as err:
                errors.append(f"{url}: {err}")
                continue
            fd, tmp = tempfile.mkstemp(dir=target, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, final)
            break
        else:
            raise DataNotFoundError("; ".join(errors))


def load_mnist(path: str | os.PathLike[str] | None = None, *, download: bool = True, progress: bool = True) -> MNIST:
    """Load MNIST as ``(train, validation, test)``, each ``(X, y)``.

    Parameters
    ----------
    path : path-like, optional
        A file (``mnist.pkl.gz``, ``.npz``) or a folder holding one of the
        supported layouts. When given, only this is tried.
    download : bool, default True
        Fetch the IDX files into the cache when nothing is found locally.
    progress : bool, default True
        Show a progress bar while downloading.

    Returns
    -------
    MNIST
        50,000 training, 10,000 validation and 10,000 test images; X float32
        of shape (n, 784) with values ``pixel / 256`` in [0, 1); y int64 digits.

    Raises
    ------
    DataNotFoundError
        Not found anywhere and not downloadable; the message lists where it looked.
    DataFileError
        A file was found but is corrupt, truncated or not MNIST.
    """
    if path is not None:
        found = _load_from(Path(path))
        if found is None:
            raise DataNotFoundError(f"No MNIST at {path}: expected mnist.pkl.gz, mnist.npz or the four IDX files.")
        return found
    looked = []
    env = os.environ.get("NNSCRATCH_DATA")
    looked.append(f"$NNSCRATCH_DATA ({env})" if env else "$NNSCRATCH_DATA (not set)")
    if env:
        found = _load_from(Path(env))
        if found is not None:
            return found
    cache = cache_dir() / "mnist"
    looked.append(str(cache))
    found = _load_from(cache)
    if found is not None:
        return found
    reason = "downloading is off (download=False)"
    if download:
        try:
            _download(cache, progress)
            return _check(_read_idx_folder(cache, verify=True), cache)
        except DataNotFoundError as err:
            reason = f"download failed: {err}"
    raise DataNotFoundError(
        "MNIST was not found. Looked in: " + "; ".join(looked) + f"; {reason}. "
        "Provide it: set NNSCRATCH_DATA to a folder holding mnist.pkl.gz (or the four IDX files, "
        "or mnist.npz), pass load_mnist(path=...), or put the IDX files in " + str(cache) + "."
    )
