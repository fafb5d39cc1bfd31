"""Checks at the public boundary: every bad input gets an error that names the
argument, what was expected and what was received. Nothing here mutates a
network, so a rejected call leaves it exactly as it was.

This is the one home of argument checks and a leaf module: it imports only
NumPy, so every other module (engine, tools, CLI) can use it without cycles.
What depends on a loss (class labels or rows of targets) is asked of the loss
(``Loss.check_targets``), which builds it from the helpers here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "is_sparse",
    "check_positive_int",
    "check_count",
    "check_fraction",
    "check_number",
    "check_choice",
    "check_X",
    "check_finite",
    "all_finite",
    "numeric_targets",
    "class_indices",
    "target_rows",
    "check_sample_weight",
]


def is_sparse(x: Any) -> bool:
    """True for scipy.sparse matrices and arrays (they carry a ``format``); the
    engine never imports SciPy, it only needs to know not to call dense-only code."""
    return not isinstance(x, np.ndarray) and hasattr(x, "tocsr") and hasattr(x, "format")


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{none}. Received {name}={value!r}.")
    return int(value)


def check_count(name: str, value: Any) -> int:
    """``value`` as an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0. Received {name}={value!r}.")
    return int(value)


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received {name}={value!r}.")
    return float(value)


def check_number(
    name: str,
    value: Any,
    low: float = -np.inf,
    high: float = np.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
    whole: bool = False,
) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high``
    (closed at ``low`` and open at ``high`` unless told otherwise); with
    ``whole``, a whole number."""
    received = value
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        value = float(value)
        ok = bool(np.isfinite(value)) and (low < value if low_open else low <= value)
        ok = ok and (value < high if high_open else value <= high) and (not whole or value == int(value))
    if not ok:
        kind = "a whole number" if whole else "a finite number"
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if high == np.inf:
            rule = f"be {kind} {'>' if low_open else '>='} {low:g}"
        else:
            rule = f"be a whole number in {interval}" if whole else f"lie in {interval}"
        raise ValueError(f"{name} must {rule}. Received {name}={received!r}.")
    return value


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {options}. Received {name}={value!r}.")
    return value


def check_X(
    X: Any, n_features: int, dtype: np.dtype, name: str = "X", finite: bool = True, convert: bool = True
) -> Any:
    """Return ``X`` as a 2-D array of ``dtype`` (a sparse matrix stays sparse, as CSR),
    checked to be finite unless ``finite=False`` (for callers that prove it
    more cheaply themselves; see ``Network.predict``).

    With ``convert=False`` a dense ``X`` is checked as it is and returned without
    a copy, in its own dtype and layout: for callers that convert the rows they
    use as they use them (``data.take_rows``), so that a float64 ``X`` is never
    copied whole into a float32 one, once per call.
    """
    if is_sparse(X):
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
        if finite:  # values that would overflow ``dtype`` are said so, not cast to inf (predict checks lazily)
            check_fits(arr, dtype, name)
        X = data = np.ascontiguousarray(arr, dtype=dtype) if convert else arr
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


def check_fits(data: np.ndarray, dtype: np.dtype, name: str = "X") -> None:
    """Raise a ValueError when finite values of ``data`` are too large for ``dtype`` (1e200 in
    a float32 network would become inf), naming how many, the largest and the limit."""
    dtype = np.dtype(dtype)
    if (
        not (np.issubdtype(dtype, np.floating) and np.issubdtype(data.dtype, np.floating))
        or data.size == 0
        or data.dtype.itemsize <= dtype.itemsize
    ):
        return
    limit = float(np.finfo(dtype).max)
    with np.errstate(invalid="ignore"):
        if -limit <= np.min(data) and np.max(data) <= limit:  # two reductions, no temporary: the usual case
            return
        big = np.isfinite(data) & (np.abs(data) > limit)
    if big.any():
        raise ValueError(
            f"{name} has {int(big.sum())} value(s) too large for {dtype} (the largest in magnitude is "
            f"{float(np.max(np.abs(data[big]))):.3g}; {dtype} holds up to {limit:.3g}). Scale the features first "
            "(e.g. standardise them), or use a float64 network (dtype='float64')."
        )


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


def numeric_targets(y: Any, n_samples: int, name: str = "y") -> np.ndarray:
    """``y`` as a finite numeric array with one entry (or row) per sample.

    What else a target must be (class indices, one column per output unit,
    values in [0, 1]) depends on the loss: ``Loss.check_targets`` asks for it.
    """
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
    return y


def class_indices(y: np.ndarray, n_classes: int, name: str = "y", hint: str = "") -> np.ndarray:
    """``y`` (from ``numeric_targets``) as 1-D integer labels in ``[0, n_classes)``."""
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer class labels. Received shape {y.shape}.{hint}")
    labels = y.astype(np.intp)
    if not np.array_equal(labels, y):
        raise ValueError(
            f"{name} must hold integer class labels. Received non-integer values, e.g. {y[labels != y][0]!r}."
        )
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"{name} holds labels from {labels.min()} to {labels.max()} but the output layer has "
            f"{n_classes} units, so labels must lie in [0, {n_classes - 1}]."
        )
    return labels


def target_rows(y: np.ndarray, n_outputs: int, dtype: np.dtype, name: str = "y", unit_interval: str = "") -> np.ndarray:
    """``y`` (from ``numeric_targets``) as rows of ``n_outputs`` values in ``dtype``
    (a 1-D ``y`` is one column when there is one output); with ``unit_interval``
    set to the loss's name, every value must also lie in [0, 1]."""
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(
            f"{name} must have shape ({y.shape[0]}, {n_outputs}) to match the {n_outputs} output units. "
            f"Received shape {y.shape}."
        )
    if unit_interval and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"{name} for {unit_interval} must lie in [0, 1]. Received values from {y.min()} to {y.max()}.")
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
