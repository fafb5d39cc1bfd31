"""Checks at the public boundary: every bad input gets an error that names the
argument, what was expected and what was received. Nothing here mutates a
network, so a rejected call leaves it exactly as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import _is_sparse
from .losses import BinaryCrossEntropy, CrossEntropy, Loss


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{none}. Received {name}={value!r}.")
    return int(value)


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received {name}={value!r}.")
    return float(value)


def check_X(X: Any, n_features: int, dtype: np.dtype, name: str = "X", finite: bool = True) -> Any:
    """Return ``X`` as a 2-D array of ``dtype`` (a sparse matrix stays sparse),
    checked to be finite unless ``finite=False`` (for callers that prove it
    more cheaply themselves; see ``Network.predict``)."""
    if _is_sparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features). Received shape {X.shape}.")
        if X.format != "csr":  # mini-batches take rows: CSR slices them cheaply
            X = X.tocsr()
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{name} must be numeric. Received dtype {X.dtype}.")
        X = X.astype(dtype, copy=False)
        data = X.data
    else:
        arr = np.asarray(X)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(
                f"{name} must be numeric. Received dtype {arr.dtype}"
                f"{' (e.g. ' + repr(arr.flat[0]) + ')' if arr.size else ''}. Convert or encode it first."
            )
        if np.iscomplexobj(arr):
            raise ValueError(f"{name} must be real numbers. Received dtype {arr.dtype}.")
        if arr.ndim != 2:
            hint = " Use X.reshape(-1, 1) for a single feature." if arr.ndim == 1 else ""
            raise ValueError(f"{name} must be 2-D (n_samples, n_features). Received shape {arr.shape}.{hint}")
        X = data = np.ascontiguousarray(arr, dtype=dtype)
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples. Pass at least one row.")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the first layer expects {n_features}. "
            f"Received {name} of shape {X.shape}."
        )
    if finite:
        check_finite(data, name)
    return X


def check_finite(data: np.ndarray, name: str = "X") -> None:
    """Raise a ValueError that counts the NaN and infinite values, if there are any."""
    if not all_finite(data):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s). Remove or impute them first.")


def all_finite(a: np.ndarray) -> bool:
    """True when no element is NaN or infinite.

    Any NaN or inf makes the sum NaN or inf, so a finite sum proves the array
    finite with one reduction and no temporary. Only a non-finite sum (which
    can also come from overflow of huge but finite values) needs the exact,
    element-wise check.
    """
    if a.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(a)
    return bool(np.isfinite(total)) or bool(np.isfinite(a).all())


def check_targets(y: Any, n_samples: int, n_outputs: int, loss: Loss, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Return targets in the form ``loss`` expects, after checking every value."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(
            f"{name} must be numeric. Received dtype {y.dtype}. Encode string labels as integers "
            "(nnscratch.sklearn.NeuralNetClassifier does this for you)."
        )
    if y.shape[0:1] != (n_samples,):
        raise ValueError(
            f"X and {name} have different lengths: X has {n_samples} samples, "
            f"{name} has {y.shape[0] if y.ndim else 'a scalar'}."
        )
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if isinstance(loss, CrossEntropy) and loss.targets == "index":
        if y.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D integer class labels for CrossEntropy(targets='index'). "
                f"Received shape {y.shape}. For one-hot rows use CrossEntropy(targets='onehot')."
            )
        labels = y.astype(np.intp)
        if not np.array_equal(labels, y):
            raise ValueError(
                f"{name} must hold integer class labels. Received non-integer values, e.g. {y[labels != y][0]!r}."
            )
        if labels.min() < 0 or labels.max() >= n_outputs:
            raise ValueError(
                f"{name} holds labels from {labels.min()} to {labels.max()} but the output layer has "
                f"{n_outputs} units, so labels must lie in [0, {n_outputs - 1}]."
            )
        return labels
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(
            f"{name} must have shape ({n_samples}, {n_outputs}) to match the {n_outputs} output units. "
            f"Received shape {y.shape}."
        )
    if isinstance(loss, (BinaryCrossEntropy, CrossEntropy)) and (y.min() < 0 or y.max() > 1):
        raise ValueError(
            f"{name} for {type(loss).__name__} must lie in [0, 1]. Received values from {y.min()} to {y.max()}."
        )
    return np.ascontiguousarray(y, dtype=dtype)


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> np.ndarray | None:
    """Non-negative finite weights, one per sample, not all zero."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if not np.issubdtype(w.dtype, np.number) or w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must be {n_samples} numbers, one per sample. Received shape {w.shape}, dtype {w.dtype}."
        )
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError("sample_weight must be finite, >= 0 and not all zero.")
    return w.astype(dtype)
