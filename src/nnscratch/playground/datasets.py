"""The playground's 2-D data: six generated sets and the user's own CSV.

Every set lives in the square [-6, 6]^2, as in TensorFlow Playground, so one
picture of the input plane fits them all. Generators take a seed and a noise
level in [0, 1] and return ``(X, y)``: ``X`` of shape (n, 2), ``y`` integer
class labels (classification) or numbers in [-1, 1] (regression).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from ..datasets.bundled import is_number

__all__ = ["GENERATORS", "REGRESSION", "generate", "read_csv", "DataError", "MAX_CSV_BYTES", "MAX_ROWS", "MAX_CLASSES"]

MAX_CSV_BYTES = 1_000_000
MAX_ROWS = 5_000
MAX_CLASSES = 8
RANGE = 6.0


class DataError(ValueError):
    """Data the playground cannot use; the message says why and what to change."""


def _circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    inner = n // 2
    radius = np.concatenate([rng.uniform(0, 2.5, inner), rng.uniform(3.5, 5.0, n - inner)])
    angle = rng.uniform(0, 2 * math.pi, n)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    X += rng.normal(0, 1.0 * noise, X.shape)
    return X, np.concatenate([np.ones(inner, int), np.zeros(n - inner, int)])


def _xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-5, 5, (n, 2))
    X += np.sign(X) * 0.3  # a small gap along the axes
    y = (X[:, 0] * X[:, 1] >= 0).astype(int)
    return X + rng.normal(0, 1.0 * noise, X.shape), y


def _gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    half = n // 2
    spread = 0.5 + 2.5 * noise
    X = np.concatenate([rng.normal(2, spread, (half, 2)), rng.normal(-2, spread, (n - half, 2))])
    return X, np.concatenate([np.ones(half, int), np.zeros(n - half, int)])


def _spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    half = n // 2
    t = np.linspace(0.0, 1.0, half, endpoint=False)
    r = 5.0 * t
    parts = []
    for label, delta in ((1, 0.0), (0, math.pi)):
        angle = 1.75 * t * 2 * math.pi + delta
        pts = np.column_stack([r * np.sin(angle), r * np.cos(angle)])
        parts.append((pts + rng.normal(0, 0.5 * noise + 0.05, pts.shape), np.full(half, label)))
    X = np.concatenate([p[0] for p in parts])
    return X, np.concatenate([p[1] for p in parts]).astype(int)


def _moons(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    half = n // 2
    a = rng.uniform(0, math.pi, half)
    b = rng.uniform(0, math.pi, n - half)
    upper = np.column_stack([np.cos(a), np.sin(a)])
    lower = np.column_stack([1 - np.cos(b), 0.5 - np.sin(b)])
    X = (np.concatenate([upper, lower]) - [0.5, 0.25]) * 3.5
    X += rng.normal(0, 0.2 + 1.2 * noise, X.shape)
    return X, np.concatenate([np.zeros(half, int), np.ones(n - half, int)])


def _plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-RANGE, RANGE, (n, 2))
    y = (X[:, 0] + X[:, 1]) / (2 * RANGE) + rng.normal(0, 0.5 * noise, n)
    return X, np.clip(y, -1, 1)


def _gauss_bumps(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-RANGE, RANGE, (n, 2))
    centres = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]
    y = sum(s * np.exp(-((X[:, 0] - cx) ** 2 + (X[:, 1] - cy) ** 2) / 4) for cx, cy, s in centres)
    return X, np.clip(y + rng.normal(0, 0.5 * noise, n), -1, 1)


GENERATORS = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral, "moons": _moons,
              "plane": _plane, "bumps": _gauss_bumps}  # fmt: skip
REGRESSION = {"plane", "bumps"}


def generate(name: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the set ``name`` with ``noise`` in [0, 1], clipped to the square."""
    X, y = GENERATORS[name](np.random.default_rng(seed), n, noise)
    return np.clip(X, -RANGE, RANGE), y


def read_csv(text: str) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Parse ``x1,x2,target`` rows (a header line is allowed and skipped).

    Returns ``(X, y, problem, classes)``: a target column of integers with at
    most ``MAX_CLASSES`` values, or of words, is classification (``classes``
    names them, ``y`` indexes them); other numbers are regression, scaled into
    [-1, 1]. ``X`` is scaled into the playground's square. Raises ``DataError``.
    """
    if len(text.encode()) > MAX_CSV_BYTES:
        raise DataError(f"the CSV is {len(text.encode()):,} bytes; the playground takes up to {MAX_CSV_BYTES:,}")
    if "\x00" in text:
        raise DataError("the file holds NUL bytes: it is not a text CSV (x1,x2,target rows)")
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except csv.Error as err:  # e.g. a field over the csv module's limit (131,072 characters)
        raise DataError(f"the CSV cannot be read ({err}); it needs rows of x1,x2,target") from None
    if rows and not is_number(rows[0][0]):
        rows = rows[1:]  # a header
    if len(rows) < 4:
        raise DataError(f"the CSV has {len(rows)} data rows; it needs at least 4 rows of x1,x2,target")
    if len(rows) > MAX_ROWS:
        raise DataError(f"the CSV has {len(rows):,} rows; the playground takes up to {MAX_ROWS:,}")
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != 3 or not (is_number(r[0]) and is_number(r[1]))]
    if bad:
        raise DataError(f"row(s) {bad[:5]} are not x1,x2,target with numbers for x1 and x2 "
                        f"(e.g. {rows[bad[0] - 1]!r})")  # fmt: skip
    X = np.array([[float(r[0]), float(r[1])] for r in rows])
    if not np.isfinite(X).all():
        raise DataError("x1 and x2 must be finite numbers (no nan or inf)")
    targets = [r[2].strip() for r in rows]
    numeric = all(is_number(t) for t in targets)
    values = np.array([float(t) for t in targets]) if numeric else None
    if numeric and not np.isfinite(values).all():
        raise DataError("the target column must be finite numbers (no nan or inf)")
    if numeric and not (np.all(values == np.round(values)) and len(set(targets)) <= MAX_CLASSES):
        low, high = values.min(), values.max()
        y = (values - (high + low) / 2) / max((high - low) / 2, 1e-12)
        problem, classes = "regression", []
    else:
        classes = sorted(set(targets), key=lambda t: (float(t), t) if numeric else (0.0, t))
        if len(classes) > MAX_CLASSES:
            raise DataError(f"the target column has {len(classes)} classes; the playground shows up to {MAX_CLASSES}")
        if len(classes) < 2:
            raise DataError("the target column has one class only; a classifier needs at least two")
        index = {c: i for i, c in enumerate(classes)}
        y, problem = np.array([index[t] for t in targets]), "classification"
    with np.errstate(over="ignore", invalid="ignore"):  # a span past float64's range is refused next
        centre = (X.max(axis=0) + X.min(axis=0)) / 2
        half = np.maximum((X.max(axis=0) - X.min(axis=0)) / 2, 1e-12)
    if not (np.isfinite(centre).all() and np.isfinite(half).all()):
        raise DataError("x1 and x2 span more than the playground can scale (values near 1e308): scale them first")
    return (X - centre) / half * (RANGE * 0.9), y, problem, classes
