"""Turning a DATA argument into arrays, and the preprocessing a model carries.

DATA is a dataset name (``digits``, ``mnist``, ``moons``, ``circles``, ``xor``)
or a CSV path. Whatever the model needs to treat new inputs the way it treated
its training data (class names, feature names, the standardisation) is stored
in the model file's metadata as plain JSON, and applied again by ``evaluate``
and ``predict``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import train_test_split
from ..datasets import NAMES, load, load_csv, load_mnist

IMAGE_SHAPES = {"mnist": [28, 28], "digits": [8, 8]}


class DataError(Exception):
    """A DATA argument that cannot be used; reported as one line."""


@dataclass
class Prepared:
    """Train and test parts plus everything ``predict`` must know later."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _encode_labels(y: np.ndarray, task: str) -> tuple[np.ndarray, list[Any] | None]:
    """Class indices and the class list (names or numbers), or float targets for regression."""
    if task == "regression":
        if y.dtype.kind in "US":
            raise DataError(f"regression needs numbers, but the labels are names such as {y[0]!r}; "
                            "leave out --task regression to classify them.")  # fmt: skip
        return y.astype(np.float32), None
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        examples = ", ".join(f"{v:g}" for v in np.unique(y)[:3])
        raise DataError(f"the labels are real numbers ({examples}, ...), not classes: pass --task regression to "
                        "predict them, or give class labels (integers or names).")  # fmt: skip
    classes, encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"classification needs at least 2 classes; the labels hold only {classes.tolist()}.")
    return encoded, classes.tolist()


def _split(X: np.ndarray, y: np.ndarray, task: str, test_size: float, seed: int,
           name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # fmt: skip
    """Train and held-out parts, and how they were made.

    ``test_size`` 0, or data too small to hold out a part with every class in
    training (the 4 rows of XOR), trains on every row and evaluates on the same
    rows, and says so: the score then measures fitting, not generalising.
    """
    if not 0.0 <= test_size < 1.0:
        raise DataError(f"--test-size must be in [0, 1). Received {test_size}.")
    stratify = y if task == "classification" else None
    counts = np.unique(y, return_counts=True)[1] if stratify is not None else np.array([len(y)])
    whole = test_size == 0.0 or len(y) * test_size < max(len(counts), 1) or counts.min() < 2
    if not whole:
        try:
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, seed=seed,
                                                                stratify=stratify)  # fmt: skip
            return X_train, X_test, y_train, y_test, {"test_size": test_size, "seed": seed}
        except ValueError:
            whole = True
    reason = "--test-size 0" if test_size == 0.0 else (
        f"{len(y)} rows are too few to hold out {test_size:g} of them with every class in training"
        + (f" ({int((counts < 2).sum())} class(es) have a single row)" if counts.min() < 2 else ""))  # fmt: skip
    print(f"note: {name}: training on all {len(y)} rows and evaluating on the same rows ({reason}); the score "
          "measures how well the data were fitted, not how well new data will be.", file=sys.stderr)  # fmt: skip
    return X, X, y, y, {"test_size": 0.0, "seed": seed, "whole": True}


def fit_scaler(X: np.ndarray) -> dict[str, list[float]]:
    """Per-feature mean and standard deviation (1 where a feature is constant)."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std == 0] = 1.0
    return {"mean": mean.tolist(), "scale": std.tolist()}


def apply_preprocessing(X: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Standardise with the training data's statistics, if the model was trained so."""
    scaler = meta.get("scaler")
    if scaler is None:
        return X.astype(np.float32, copy=False)
    mean, scale = np.asarray(scaler["mean"]), np.asarray(scaler["scale"])
    if X.shape[1] != mean.size:
        raise DataError(f"the data has {X.shape[1]} features but the model was trained on {mean.size}.")
    return ((X - mean) / scale).astype(np.float32)


def parse_label(text: str | None) -> str | int:
    """A ``--label`` argument: a column index when it reads as an integer, else a
    column name; None means the last column."""
    if text is None:
        return -1
    try:
        return int(text)
    except ValueError:
        return text


def is_dataset_name(data: str) -> bool:
    return data in NAMES


def prepare(data: str, *, task: str, test_size: float, seed: int, label: str | int, scale: str) -> Prepared:
    """Load DATA and split it into training and held-out test parts."""
    if data == "mnist":
        mnist = load_mnist()
        X = np.concatenate([mnist.train[0], mnist.validation[0]])
        y = np.concatenate([mnist.train[1], mnist.validation[1]])
        X_test, y_test = mnist.test
        meta: dict[str, Any] = {"dataset": "mnist", "classes": list(range(10)), "image_shape": [28, 28]}
        return Prepared("mnist", X, y, X_test, y_test, {**meta, "task": "classification", "scaler": None})
    if is_dataset_name(data):
        X, y = load(data)
        names = [f"x{i}" for i in range(X.shape[1])]
        name = data
    else:
        path = Path(data)
        if not path.exists():  # a folder is named as one by load_csv
            raise DataError(f"{data!r} is neither a dataset name ({', '.join(NAMES)}) nor an existing CSV file.")
        X, y, names = load_csv(path, label=label)
        name = path.stem
    y, classes = _encode_labels(y, task)
    X_train, X_test, y_train, y_test, split = _split(X, y, task, test_size, seed, name)
    scaler = fit_scaler(X_train) if scale == "standard" or (scale == "auto" and not is_dataset_name(data)) else None
    meta = {"dataset": name, "task": task, "classes": classes, "feature_names": names, "scaler": scaler,
            "split": split}  # fmt: skip
    if data in IMAGE_SHAPES:
        meta["image_shape"] = IMAGE_SHAPES[data]
    X_train, X_test = apply_preprocessing(X_train, meta), apply_preprocessing(X_test, meta)
    return Prepared(name, X_train, y_train, X_test, y_test, meta)


def match_columns(X: np.ndarray, names: list[str], meta: dict[str, Any], source: str) -> np.ndarray:
    """The columns of ``X`` in the order the model was trained on, matched by name.

    When both the file and the model have real column names (a header row), the
    columns are taken by name, whatever their order in the file; names that
    differ are an error naming them. Without a header, columns are positional.
    """
    expected = meta.get("feature_names")
    synthetic = [f"x{i}" for i in range(len(names))]
    if not expected or names == synthetic or expected == [f"x{i}" for i in range(len(expected))]:
        return X
    if names == expected:
        return X
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    if missing or extra or len(set(names)) != len(names):
        raise DataError(f"{source}: the columns do not match the model's. Missing: {missing or 'none'}; not in the "
                        f"model: {extra or 'none'}. The model was trained on {expected}.")  # fmt: skip
    return X[:, [names.index(n) for n in expected]]


def labelled_data(data: str, meta: dict[str, Any], label: str | int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out data for ``evaluate``: a named dataset's test part (the same split
    ``train`` made, when the model was trained on it), or a whole CSV file, with
    labels encoded the way the model's classes were."""
    if data == "mnist":
        return load_mnist().test
    if is_dataset_name(data):
        X, y = load(data)
        split = meta.get("split") if meta.get("dataset") == data else None
        if split and not split.get("whole"):  # the same held-out rows train kept aside
            stratify = y if meta.get("task") == "classification" else None
            _, X, _, y = train_test_split(X, y, test_size=split["test_size"], seed=split["seed"], stratify=stratify)
    else:
        if not Path(data).exists():  # a folder is named as one by load_csv
            raise DataError(f"{data!r} is neither a dataset name ({', '.join(NAMES)}) nor an existing CSV file.")
        X, y, names = load_csv(data, label=label)
        X = match_columns(X, names, meta, data)
    X = apply_preprocessing(X, meta)
    classes = meta.get("classes")
    if classes is None:
        return X, y
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in y.tolist() if v not in lookup})
    if unknown:
        raise DataError(f"labels {unknown[:5]} do not occur among the model's classes {classes[:20]}.")
    return X, np.array([lookup[v] for v in y.tolist()])
