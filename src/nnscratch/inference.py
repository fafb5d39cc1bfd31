"""Prediction and evaluation in bounded memory: ``predict``, ``predict_proba``,
``predict_labels`` and ``evaluate`` (``Network`` methods of the same names
hand over to these).

Rows go through the network in chunks of ``batch_size`` (8,192 by default), so
scoring a million rows never holds a million rows of every hidden layer. What
outputs mean (probabilities, labels, what counts as correct) is the loss's
business (``ClassificationLoss``); this module only walks the chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import threads
from ._validation import (
    all_finite,
    check_finite,
    check_fits,
    check_positive_int,
    check_sample_weight,
    check_X,
    is_sparse,
)
from .data import take_rows

__all__ = ["predict", "predict_proba", "predict_labels", "evaluate", "chunks", "CHUNK", "NonFiniteOutputError"]


class NonFiniteOutputError(FloatingPointError):
    """The network's outputs for finite inputs are NaN or infinite: its weights are too large
    for its dtype (a damaged model file, or a training run that diverged)."""


CHUNK = 8192  # rows per inference chunk: bounded memory, BLAS-friendly sizes


def chunks(X: Any, batch_size: int | None = None, dtype: Any = None) -> Iterator[tuple[int, Any]]:
    """``(start, X[start:start + size])`` over the rows of ``X``, each chunk
    converted to ``dtype`` (C-contiguous) when one is given."""
    size = check_positive_int("batch_size", batch_size, allow_none=True) or CHUNK
    for start in range(0, X.shape[0], size):
        rows = slice(start, start + size)
        yield start, X[rows] if dtype is None else take_rows(X, rows, dtype)


def predict(net: Any, X: Any, batch_size: int | None = None) -> np.ndarray:
    """Outputs after the output activation, shape (n, n_outputs).

    X must be finite; for dense input that is proven at a fraction of the cost
    of reading X: a NaN or inf anywhere in a row makes every value of that
    row's first pre-activation ``x @ W + b`` NaN or inf, so checking ``z``
    (n x width) proves X (n x n_inputs) finite. Only a non-finite ``z`` sends
    us to X (an error that counts the bad values, or names the ones too large
    for the network's dtype) or, if X is fine, to NumPy's own overflow
    warning. Outputs that come out NaN or infinite from finite inputs raise
    ``NonFiniteOutputError``.
    """
    return _forward_chunks(net, X, batch_size, loss_input=False)


def _forward_chunks(net: Any, X: Any, batch_size: int | None, loss_input: bool) -> np.ndarray:
    """``net.forward`` chunk by chunk (see ``predict``); ``loss_input``: what the loss
    consumes, the logits for the classification losses."""
    dense = not is_sparse(X)
    X = check_X(X, net.n_inputs, net.dtype, finite=not dense, convert=False)  # dense X: proven below
    out = np.empty((X.shape[0], net.n_outputs), dtype=net.dtype)
    size = check_positive_int("batch_size", batch_size, allow_none=True) or CHUNK
    with threads.limited(threads.largest_product(net.layers, min(X.shape[0], size))):
        for start, rows in chunks(X, size):
            if dense:
                h = _forward_proving_finite(net, X, rows, loss_input)
            else:
                h = net.forward(take_rows(rows, slice(None), net.dtype), loss_input=loss_input)
            out[start : start + h.shape[0]] = h
    if not all_finite(out):
        _refuse_non_finite(net, X, out)
    return out


def _forward_proving_finite(net: Any, X: np.ndarray, rows: np.ndarray, loss_input: bool) -> np.ndarray:
    """``net.forward(rows)``, layer by layer as it runs, with the first pre-activation
    checked on the way (see ``predict``); ``rows`` are rows of ``X``."""
    first, last = net.layers[0], len(net.layers) - 1
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite z is examined next
        chunk = take_rows(rows, slice(None), net.dtype)  # a value too big for the dtype becomes inf
        z = first.forward_linear(chunk)
    if not all_finite(z):
        check_finite(X)  # NaN or inf in X: a ValueError that counts them
        check_fits(X, net.dtype)  # finite values too large for the network's dtype: said so
        z = first.forward_linear(chunk)  # X is finite but z overflowed: warn as NumPy would
    h = z if last == 0 and loss_input and net.fused else first.activation.forward(z, out=z)
    for i in range(1, last + 1):
        h = net.output_layer.forward_linear(h) if i == last and loss_input and net.fused else net.layers[i].forward(h)
    return h


def _refuse_non_finite(net: Any, X: Any, out: np.ndarray) -> None:
    """Outputs that are NaN or infinite are never returned as predictions: say why."""
    rows = int((~np.isfinite(out)).any(axis=1).sum())
    weights = max((float(np.max(np.abs(v))) for v in net.parameters.state_dict().values() if v.size), default=0.0)
    inputs = float(abs(X).max()) if X.shape[0] else 0.0
    raise NonFiniteOutputError(
        f"the network's outputs are NaN or infinite for {rows:,} of {out.shape[0]:,} rows although the inputs are "
        f"finite: the inputs reach {inputs:.3g} and the weights reach {weights:.3g} in magnitude, and {net.dtype} "
        f"overflows above {float(np.finfo(net.dtype).max):.3g}. Scale the inputs; or, if the weights are huge, the "
        "model is damaged or its training diverged: use a good copy or retrain it."
    )


def _require_classifier(net: Any, what: str) -> None:
    if not net.is_classifier:
        raise ValueError(
            f"{what} needs a classification loss (cross_entropy or binary_cross_entropy); this network "
            f"uses {net.loss!r}. Use predict() for its raw outputs."
        )


def predict_proba(net: Any, X: Any, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities: softmax rows (n, k); for one sigmoid unit, (n, 2)
    columns ``[1 - p, p]``; for several sigmoid units, one probability each."""
    _require_classifier(net, "predict_proba")
    return net.loss.probabilities(_forward_chunks(net, X, batch_size, loss_input=True))


def predict_labels(net: Any, X: Any, batch_size: int | None = None) -> np.ndarray:
    """Integer labels: argmax for softmax, ``p > 0.5`` for one sigmoid unit,
    ``p >= 0.5`` per unit for several."""
    _require_classifier(net, "predict_labels")
    return net.loss.labels(_forward_chunks(net, X, batch_size, loss_input=True))


def evaluate(net: Any, X: Any, y: Any, sample_weight: Any = None, batch_size: int | None = None) -> dict[str, float]:
    """``{"loss": ..., "accuracy": ...}`` (accuracy for classifiers only).

    The loss includes the regularisation penalty, as in training.
    """
    X = check_X(X, net.n_inputs, net.dtype, convert=False)
    y = net.loss.check_targets(y, X.shape[0], net.n_outputs, net.dtype)
    w = check_sample_weight(sample_weight, X.shape[0], net.dtype)
    per_sample = np.empty(X.shape[0], dtype=np.float64)
    correct = 0
    for start, chunk in chunks(X, batch_size, net.dtype):
        stop = start + chunk.shape[0]
        out = net.forward(chunk, loss_input=True)
        per_sample[start:stop] = net.loss.per_sample(out, y[start:stop])
        if net.is_classifier:
            correct += net.loss.count_correct(out, y[start:stop])
    metrics = {"loss": net.loss.reduce(per_sample, w) + net.penalty()}
    if net.is_classifier:
        metrics["accuracy"] = correct / net.loss.count_predictions(y)
    return metrics
