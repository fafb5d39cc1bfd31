"""The numerically stable maths that every other module builds on.

Each function here is written so that inputs of any magnitude give finite
results without a NumPy warning, in float32 and float64 alike. The tricks are
classical and worth reading once:

* ``sigmoid`` only ever exponentiates ``-|x|``, which lies in ``(-inf, 0]``, so
  ``exp`` can underflow to zero but never overflow.
* ``softmax`` and ``log_softmax`` subtract the row maximum first; the largest
  exponent is then ``exp(0) = 1``.
* ``log_sigmoid`` is ``min(x, 0) - log1p(exp(-|x|))``, which never takes the
  log of a rounded-to-zero probability.

Every function keeps the floating dtype of its input: a float32 array in gives
a float32 array out.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid",
    "log_sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "logsumexp",
    "one_hot",
]


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))``, computed without overflow.

    For ``x >= 0`` it is exactly the textbook formula; for ``x < 0`` it uses the
    equivalent ``exp(x) / (1 + exp(x))``. Both only exponentiate ``-|x|``.

    Parameters
    ----------
    x : ndarray
        Any shape, floating dtype.
    out : ndarray, optional
        Where to write the result (may be ``x`` itself).

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``, values in ``[0, 1]``.

    Examples
    --------
    >>> sigmoid(np.array([-1e4, 0.0, 1e4]))
    array([0. , 0.5, 1. ])
    """
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|x|), in (0, 1]
    numerator = np.where(x >= 0, 1.0, e).astype(e.dtype, copy=False)
    e += 1.0
    return np.divide(numerator, e, out=out)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, stable for any ``x``.

    Examples
    --------
    >>> log_sigmoid(np.array([-1e4, 0.0]))
    array([-1.00000000e+04, -6.93147181e-01])
    """
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, stable for any ``x``."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent (NumPy's is already stable: it saturates at +-1)."""
    return np.tanh(x, out=out)


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis``, shifted by the maximum for stability.

    Examples
    --------
    >>> float(logsumexp(np.array([1e4, 1e4])))
    10000.69314718056
    """
    m = np.max(x, axis=axis, keepdims=True)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis`` (rows are samples by default)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``axis``, after subtracting the row maximum.

    Examples
    --------
    >>> softmax(np.array([[1e4, 1e4, -1e4]]))
    array([[0.5, 0.5, 0. ]])
    """
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype | str = "float32") -> np.ndarray:
    """Encode integer class labels as rows of a one-hot matrix.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
        Values in ``[0, n_classes)``.
    n_classes : int
        Number of columns.
    dtype : dtype, default float32

    Returns
    -------
    ndarray, shape (n, n_classes)

    Examples
    --------
    >>> one_hot(np.array([2, 0]), 3, dtype="int64")
    array([[0, 0, 1],
           [1, 0, 0]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D. Received shape {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}). Received values from {labels.min()} to {labels.max()}.")
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out
