"""Data plumbing: mini-batch index iteration and seeded (stratified) splits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["batch_indices", "take_rows", "train_test_split", "stratified_split"]


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray | slice]:
    """Yield the rows of each mini-batch of an epoch.

    With ``rng``, a fresh permutation (index arrays); without, contiguous
    slices in order (no copying at all). The last batch may be smaller.
    """
    if rng is None:
        for start in range(0, n, batch_size):
            yield slice(start, min(start + batch_size, n))
        return
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def take_rows(X: Any, rows: np.ndarray | slice, dtype: np.dtype) -> Any:
    """The rows ``rows`` (an index array or a slice) of ``X`` as a C-contiguous
    array of ``dtype``, ready for a matrix product; a sparse ``X`` gives CSR rows.

    Converting a mini-batch as it is taken costs a pass over those rows only;
    converting all of ``X`` first would cost a copy of ``X`` on every call.
    A slice of an array that is already right is a view, not a copy.
    """
    if isinstance(X, np.ndarray) and X.flags.c_contiguous and not isinstance(rows, slice):
        part = np.take(X, rows, axis=0)  # the same gather as X[rows], a little faster; C-contiguous
    else:
        part = X[rows]  # a view for a slice; CSR rows for a sparse matrix
        if isinstance(part, np.ndarray) and not part.flags.c_contiguous:
            return np.ascontiguousarray(part, dtype=dtype)
    return part if part.dtype == dtype else part.astype(dtype)


def train_test_split(
    *arrays: Any,
    test_size: float = 0.25,
    seed: int | None = None,
    stratify: Any = None,
) -> list[Any]:
    """Split arrays into train and test parts by a seeded random permutation.

    Parameters
    ----------
    *arrays : array-like
        Same length along axis 0.
    test_size : float in (0, 1)
        Fraction that goes to the test part.
    seed : int, optional
    stratify : array-like of labels, optional
        Keep each label's proportion in both parts (each class contributes
        ``round(test_size * count)`` samples to the test part).

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``.
    """
    if not arrays:
        raise ValueError("train_test_split needs at least one array.")
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"All arrays must have the same length. Received {[a.shape[0] for a in arrays]}.")
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1). Received test_size={test_size!r}.")
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n)
        n_test = max(1, int(round(test_size * n)))
        test, train = order[:n_test], order[n_test:]
    else:
        labels = np.asarray(stratify)
        test_parts, train_parts = [], []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            k = int(round(test_size * members.size))
            test_parts.append(members[:k])
            train_parts.append(members[k:])
        test, train = np.sort(np.concatenate(test_parts)), np.sort(np.concatenate(train_parts))
        test, train = rng.permutation(test), rng.permutation(train)
    if train.size == 0 or test.size == 0:
        raise ValueError(f"test_size={test_size} leaves one part empty for {n} samples.")
    out: list[Any] = []
    for a in arrays:
        out.extend([a[train], a[test]])
    return out


def stratified_split(
    X: Any, y: Any, fraction: float = 0.2, seed: int | None = None, stratify: bool = True
) -> tuple[Any, Any, Any, Any]:
    """``(X_train, X_val, y_train, y_val)``: hold out ``fraction`` for validation.

    Stratified by ``y`` when ``stratify`` is true and ``y`` holds class labels
    (a 1-D integer or string array); otherwise a plain seeded random split.
    (``fit(validation_split=f)`` is different, as in Keras: it holds out the
    *last* ``f`` of the rows. For a seeded, stratified hold-out, split with this
    function and pass ``validation_data=(X_val, y_val)``.)

    >>> import numpy as np
    >>> Xa, Xv, ya, yv = stratified_split(np.arange(20).reshape(10, 2), np.array([0] * 5 + [1] * 5), 0.4, seed=0)
    >>> sorted(yv.tolist())
    [0, 0, 1, 1]
    """
    labels = np.asarray(y)
    is_classes = labels.ndim == 1 and (np.issubdtype(labels.dtype, np.integer) or labels.dtype.kind in "USO")
    X_train, X_val, y_train, y_val = train_test_split(
        X, labels, test_size=fraction, seed=seed, stratify=labels if stratify and is_classes else None
    )
    return X_train, X_val, y_train, y_val
