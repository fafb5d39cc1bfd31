"""Small datasets that need no download: the classic 4-row tables, scikit-learn's
moons, circles and 8x8 digits, and any CSV file of numbers.

Each loader returns ``(X, y)`` with X float32 of shape (n, n_features).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import os
from pathlib import Path

import numpy as np

from ..extras import require

__all__ = ["classic_table", "load_xor", "load_moons", "load_circles", "load_digits", "load_csv", "CSVError"]

CLASSIC_X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)


class CSVError(ValueError):
    """A CSV file that cannot be turned into a numeric table."""


def classic_table(target: str = "xor") -> tuple[np.ndarray, np.ndarray]:
    """The 4-row input table of the classic examples, ``X = [[0,0,1], [0,1,1], [1,0,1], [1,1,1]]``.

    ``target="first"`` gives ``y = [0, 0, 1, 1]`` (the output copies the first
    input: the two-layer example); ``"xor"`` gives ``y = [0, 1, 1, 0]`` (the
    three-layer example). ``y`` is a column, float64, as the originals used.
    """
    targets = {"first": [0, 0, 1, 1], "xor": [0, 1, 1, 0]}
    if target not in targets:
        raise ValueError(f"target must be 'first' or 'xor'. Received target={target!r}.")
    return CLASSIC_X.copy(), np.array(targets[target], dtype=np.float64).reshape(-1, 1)


def load_xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points in 2-D with integer labels ``[0, 1, 1, 0]``."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return X, np.array([0, 1, 1, 0])


def load_moons(n_samples: int = 200, noise: float = 0.2, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two interleaving half-circles."""
    require("sklearn", "datasets")
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples, noise=noise, random_state=seed)
    return X.astype(np.float32), y


def load_circles(n_samples: int = 200, noise: float = 0.1, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two concentric circles (factor 0.5)."""
    require("sklearn", "datasets")
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    return X.astype(np.float32), y


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 1,797 8x8 digits, scaled to [0, 1] (pixel / 16)."""
    require("sklearn", "datasets")
    from sklearn.datasets import load_digits as sk_digits

    X, y = sk_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def load_csv(
    path: str | os.PathLike[str], label: str | int | None = -1, *, delimiter: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read a CSV of numbers with an optional header row.

    Parameters
    ----------
    path : path-like
    label : str, int or None, default -1
        The label column, by header name or by index (negative counts from the
        end); None when the file has no labels (e.g. inputs to predict).
    delimiter : str, optional
        Sniffed from the file when not given.

    Returns
    -------
    X : float32 (n, n_features)
    y : ndarray (n,) or None
        Integers when every label is integral, float32 for other numbers, and
        strings when the label column holds names (``barolo``, ``spam``).
    feature_names : list of str

    Raises
    ------
    CSVError
        Empty file, ragged rows, a missing or non-numeric value (with its row
        and column), or an unknown label column.
    """
    path = Path(path)
    if path.is_dir():
        raise CSVError(f"{path} is a folder, not a CSV file: give the file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"No CSV file at {path}.")
    text = _csv_text(path)
    if not text.strip():
        raise CSVError(f"{path} is empty.")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t ").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        rows = [row for row in reader if row]
    except csv.Error as err:  # e.g. a field over the csv module's limit (131,072 characters)
        raise CSVError(f"{path}, line {reader.line_num}: {err}. A table's cells are numbers; is this the right "
                       "file?") from None  # fmt: skip
    header = None
    if any(not is_number(cell) for cell in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise CSVError(f"{path}: the header names the column(s) {', '.join(map(repr, twice))} more than once; "
                           "columns are matched by name, so give each a name of its own.")  # fmt: skip
    if not rows:
        raise CSVError(f"{path} has a header but no data rows.")
    width = len(rows[0])
    names = header or [f"x{i}" for i in range(width)]
    if len(names) != width:
        raise CSVError(f"{path}: the header has {len(names)} columns but the first row has {width}.")
    if label is None:
        index = None
    elif isinstance(label, str):
        if label not in names:
            raise CSVError(f"{path} has no column {label!r}. Columns: {', '.join(names)}.")
        index = names.index(label)
    else:
        if not -width <= label < width:
            raise CSVError(f"label column {label} is out of range for {width} columns.")
        index = label % width
    values = np.empty((len(rows), width), dtype=np.float64)
    label_cells: list[str] = []
    for r, row in enumerate(rows):
        if len(row) != width:
            raise CSVError(f"{path}, line {r + 1 + (header is not None)}: {len(row)} values, expected {width}.")
        for c, cell in enumerate(row):
            cell = cell.strip()
            if cell == "" or cell.lower() in ("na", "nan", "null", "none", "?"):
                raise CSVError(
                    f"{path}, line {r + 1 + (header is not None)}, column {names[c]!r}: missing value. "
                    "Fill or drop missing values first."
                )
            if c == index:
                label_cells.append(cell)  # class names are fine in the label column
                values[r, c] = 0.0
                continue
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise CSVError(
                    f"{path}, line {r + 1 + (header is not None)}, column {names[c]!r}: {cell!r} is not a number. "
                    "Encode categorical columns as numbers first."
                ) from None
    if not np.isfinite(values).all():
        raise CSVError(f"{path} contains infinite values.")
    limit = float(np.finfo(np.float32).max)
    too_big = np.argwhere(np.abs(values) > limit)
    if len(too_big):
        r, c = too_big[0]
        raise CSVError(f"{path}: {len(too_big)} value(s) are too large for float32, the networks' default (e.g. "
                       f"line {r + 1 + (header is not None)}, column {names[c]!r}: {values[r, c]:.3g}; float32 holds "
                       f"up to {limit:.3g}). Scale them first.")  # fmt: skip
    if index is None:
        return values.astype(np.float32), None, names
    X = np.delete(values, index, axis=1)
    if all(is_number(cell) for cell in label_cells):
        y = np.array([float(cell) for cell in label_cells])
        if not np.isfinite(y).all():
            raise CSVError(f"{path} contains infinite values.")
        y_out = y.astype(np.int64) if np.array_equal(y, np.round(y)) else y.astype(np.float32)
    else:
        y_out = np.array(label_cells)  # class names, e.g. "barolo"
    return X.astype(np.float32), y_out, [n for i, n in enumerate(names) if i != index]


_COMPRESSED = {b"\x1f\x8b": ("gzip", gzip.decompress), b"BZh": ("bzip2", bz2.decompress),
               b"\xfd7zXZ\x00": ("xz", lzma.decompress)}  # fmt: skip


def _csv_text(path: Path) -> str:
    """The text of a CSV file, decompressed when it is gzip, bzip2 or xz (by its first bytes).

    A damaged or cut-short archive, a binary file (NUL bytes) and bytes that are not
    UTF-8 are each a ``CSVError`` that says so (never replaced characters: a class
    name read wrongly would label every prediction wrongly).
    """
    raw = path.read_bytes()
    for magic, (kind, decompress) in _COMPRESSED.items():
        if raw.startswith(magic):
            try:
                raw = decompress(raw)
            except (EOFError, OSError, ValueError, lzma.LZMAError) as err:  # bz2 says ValueError
                raise CSVError(f"{path} is cut short or damaged ({kind}: {err}).") from None
            break
    if b"\x00" in raw:
        raise CSVError(f"{path} is not a text file (it holds NUL bytes): a CSV is text, one row per line.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CSVError(f"{path}, line {line}: byte 0x{raw[err.start]:02x} is not UTF-8. Save the file as UTF-8 "
                       f"(e.g. iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8.csv).") from None  # fmt: skip


def is_number(text: str) -> bool:
    """True when ``float(text)`` reads it (a CSV cell that is a number)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
