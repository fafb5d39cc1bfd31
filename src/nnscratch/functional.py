"""The numerically stable maths that every other module builds on.

Each function here is written so that inputs of any magnitude give finite
results without a NumPy warning, in float32 and float64 alike. The tricks are
classical and worth reading once:

* ``sigmoid`` is the textbook ``1 / (1 + exp(-x))`` with ``-x`` clamped just
  below the overflow threshold of ``exp``, so it never overflows and otherwise
  matches the classic programs bit for bit.
* ``softmax`` and ``log_softmax`` subtract the row maximum whenever a value
  lies outside +-60, so the largest exponent is ``exp(0) = 1``. Inside that
  range nothing can overflow or underflow (``exp(60)`` times thousands of
  classes is far below float32's maximum), so the shift is skipped and the
  result is bit-for-bit the textbook ``exp(x) / sum(exp(x))``.
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
    "exp_normalize",
    "one_hot",
]


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))``, exactly the textbook formula,
    with the exponent clamped so that ``exp`` can never overflow.

    ``exp(-x)`` overflows once ``-x`` exceeds ``log(finfo.max)`` (about 88.7 in
    float32, 709.8 in float64). We clamp ``-x`` one unit below that: there the
    true value is below 1e-38 (float32) and we return about 1e-38, finite and
    without a warning. Everywhere else the result is bit-for-bit the textbook
    one, which is what lets the classic examples reproduce their printed numbers.

    Parameters
    ----------
    x : ndarray
        Any shape, floating dtype.
    out : ndarray, optional
        Where to write the result (may be ``x`` itself).

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``, values in ``(0, 1]``.

    Examples
    --------
    >>> sigmoid(np.array([-1e4, 0.0, 1e4])) < [1e-300, 0.51, 1.01]
    array([ True,  True,  True])
    """
    t = np.negative(x, out=out)
    np.minimum(t, _EXP_LIMIT[t.dtype.char], out=t)
    np.exp(t, out=t)
    t += 1.0
    return np.reciprocal(t, out=t)


_EXP_LIMIT = {
    np.dtype(np.float16).char: float(np.log(np.finfo(np.float16).max)) - 1.0,
    np.dtype(np.float32).char: float(np.log(np.finfo(np.float32).max)) - 1.0,
    np.dtype(np.float64).char: float(np.log(np.finfo(np.float64).max)) - 1.0,
    np.dtype(np.longdouble).char: float(np.log(np.finfo(np.float64).max)) - 1.0,
}


def exp_limit(dtype: np.dtype) -> float:
    """The largest exponent ``sigmoid`` hands to ``exp`` in ``dtype`` (see ``sigmoid``)."""
    return _EXP_LIMIT[np.dtype(dtype).char]


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


_SHIFT_BEYOND = 60.0


def _stable_shift(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` minus its maximum along ``axis``, or ``x`` itself when every value
    lies within +-60 and exponentiating it directly is safe."""
    if x.size and (x.max() > _SHIFT_BEYOND or x.min() < -_SHIFT_BEYOND):
        return x - np.max(x, axis=axis, keepdims=True)
    return x


def exp_normalize(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of a softmax: ``(shifted, probs, log_total)`` with
    ``probs = exp(shifted) / sum(exp(shifted))`` and
    ``log_softmax(x) = shifted - log_total``. Shared by ``softmax`` and the
    cross-entropy loss, which needs both the probabilities and their logs."""
    shifted = _stable_shift(x, axis)
    probs = np.exp(shifted)
    total = np.sum(probs, axis=axis, keepdims=True)
    probs /= total
    return shifted, probs, np.log(total)


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
    shifted, _, log_total = exp_normalize(x, axis)
    return shifted - log_total


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the row maximum when needed.

    Examples
    --------
    >>> softmax(np.array([[1e4, 1e4, -1e4]]))
    array([[0.5, 0.5, 0. ]])
    """
    shifted = _stable_shift(x, axis)
    out = np.exp(shifted, out=out)
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
