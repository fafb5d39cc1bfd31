"""The training loop behind ``Network.fit``.

Each epoch draws a fresh permutation of the row indices and walks it in
mini-batches, so the dataset itself is never copied or reshuffled in memory.
Every step is guarded: before it, the parameters are copied to a backup
buffer, so that a step that overflows, or a Ctrl-C that lands half-way
through an update, can be undone exactly. A Ctrl-C between steps undoes
nothing: the last step stands, consistent with the optimizer's state. (One
that lands inside the optimizer's update restores the weights, but Adam's
moment estimates may already include that step's gradient.)

Written against the network's public surface: ``train_step``,
``parameters.snapshot()``/``restore()``, the loss's ``check_targets`` and
``count_correct``, and ``inference.evaluate`` for validation data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import inference, threads
from ._validation import check_fraction, check_positive_int, check_sample_weight, check_X
from .callbacks import Callback, History, ProgressBar
from .data import batch_indices, take_rows

__all__ = ["fit", "TrainingDivergedError", "BLOW_UP"]

# An epoch whose mean loss is this many times its reference has blown up, even if
# every number stayed finite (a learning rate of 1e9 can keep the loss finite and
# useless): training stops as it does on an overflow. The reference is the larger
# of the call's first step and the loss of an all-zero output (a network that has
# learnt nothing: log k for a softmax over k classes), so that a loop of short
# ``fit`` calls on a network already near zero loss (a playground, ``partial_fit``)
# is not stopped by an ordinary bump of Adam from 1e-4 to 0.6.
BLOW_UP = 1000.0


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite. ``history`` holds the completed epochs."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


def _prepare_validation(net: Any, data: Any) -> tuple[Any, np.ndarray, Any] | None:
    if data is None:
        return None
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val).")
    Xv = check_X(data[0], net.n_inputs, net.dtype, name="X_val", convert=False)
    yv = net.loss.check_targets(data[1], Xv.shape[0], net.n_outputs, net.dtype, name="y_val")
    wv = check_sample_weight(data[2], Xv.shape[0], net.dtype) if len(data) == 3 else None
    return Xv, yv, wv


def fit(
    net: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int | None = 32,
    shuffle: bool = True,
    validation_data: Any = None,
    validation_split: float = 0.0,
    sample_weight: Any = None,
    callbacks: Sequence[Callback] | None = None,
    verbose: int | bool = 0,
) -> History:
    """Train ``net`` by mini-batch gradient descent and return a ``History``.

    Parameters
    ----------
    X : array-like of shape (n, n_inputs), or a scipy.sparse matrix
    y : array-like
        Targets in the form the loss expects (see ``CrossEntropy.targets``).
    epochs : int, default 1
    batch_size : int or None, default 32
        ``None`` is full-batch gradient descent, ``1`` is online learning.
    shuffle : bool, default True
        Visit the rows in a new random order each epoch (from the network's seed).
    validation_data : tuple (X_val, y_val[, w_val]), optional
        Scored after every epoch as ``val_loss`` (and ``val_accuracy``).
    validation_split : float in [0, 1), default 0
        Hold out this last fraction of ``X``/``y`` (before shuffling) as
        validation data, as Keras does. Ignored when ``validation_data`` is
        given. For a seeded, stratified hold-out use ``data.stratified_split``
        and ``validation_data``.
    sample_weight : array-like of shape (n,), optional
    callbacks : list of Callback, optional
    verbose : int or bool, default 0
        Show a progress bar when true.

    Returns
    -------
    History
        ``history.history`` maps ``loss``, ``accuracy``, ``val_loss``, ... to
        per-epoch lists; ``history.stop_reason`` says why training ended.

    Raises
    ------
    TrainingDivergedError
        If the loss becomes NaN or infinite. The weights from before the
        failing step are restored first.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    validation_split = check_fraction("validation_split", validation_split)
    X = check_X(X, net.n_inputs, net.dtype, convert=False)  # each mini-batch is converted as it is taken
    y = net.loss.check_targets(y, X.shape[0], net.n_outputs, net.dtype)
    w = check_sample_weight(sample_weight, X.shape[0], net.dtype)
    validation = _prepare_validation(net, validation_data)
    if validation is None and validation_split:
        n_val = int(X.shape[0] * validation_split)
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves no data on one side of {X.shape[0]} samples.")
        cut = X.shape[0] - n_val
        validation = (X[cut:], y[cut:], None if w is None else w[cut:])
        X, y, w = X[:cut], y[:cut], None if w is None else w[:cut]
    callbacks = list(callbacks or [])
    if not all(isinstance(cb, Callback) for cb in callbacks):
        raise TypeError(f"callbacks must be Callback instances. Received {callbacks!r}.")

    n = X.shape[0]
    size = n if batch_size is None else min(batch_size, n)
    steps = -(-n // size)
    history = History()
    net.history = history
    metrics = ["loss"] + (["accuracy"] if net.is_classifier else [])
    if validation is not None:
        metrics += [f"val_{m}" for m in metrics]
    all_callbacks: list[Callback] = [history, *callbacks] + ([ProgressBar()] if verbose else [])
    for cb in all_callbacks:
        cb.set_network(net)
    net.stop_training = False
    params = net.parameters
    backup = params.snapshot()
    info = {"epochs": epochs, "steps_per_epoch": steps, "metrics": metrics}
    for cb in all_callbacks:
        cb.on_train_begin(info)
    # Only callbacks that act after each step are called after each step.
    batch_callbacks = [cb for cb in all_callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
    step = 0
    first_loss: float | None = None  # what a blow-up is measured against (see BLOW_UP)
    sane = params.snapshot()  # the weights after the last epoch whose loss had not blown up
    # One BLAS thread for small products; for large ones, measured each epoch: see nnscratch.threads.
    largest = threads.largest_product(net.layers, size)
    tuner = threads.Tuner(largest)
    with threads.limited(largest):
        try:
            for epoch in range(epochs):
                try:
                    total_loss, correct, step, first = _run_epoch(net, X, y, w, size, shuffle, backup, batch_callbacks,
                                                                  step, tuner)  # fmt: skip
                    first_loss = first if first_loss is None else first_loss
                    if total_loss / n > BLOW_UP * max(first_loss, 1e-12):
                        np.copyto(backup, sane)
                        raise _StepDiverged(f"the loss rose to {total_loss / n:.4g} and stayed finite: more than "
                                            f"{BLOW_UP:g} times {first_loss:.4g}, the larger of its first value "
                                            "and the loss of an all-zero output")  # fmt: skip
                    np.copyto(sane, params.values)
                except _StepDiverged as err:
                    params.restore(backup)
                    history.stop_reason = "diverged"
                    raise TrainingDivergedError(
                        f"Training diverged at epoch {epoch + 1} ({err}); it stopped and the weights from "
                        "before that step (or epoch) were restored. Try a lower learning rate, scaling the inputs "
                        "(e.g. to [0, 1] or zero mean and unit variance), or a smaller initialisation.",
                        history,
                    ) from None
                logs = {"loss": total_loss / n}
                if net.is_classifier:
                    logs["accuracy"] = correct / net.loss.count_predictions(y)
                if validation is not None:
                    scores = inference.evaluate(net, *validation)
                    logs.update({f"val_{k}": v for k, v in scores.items()})
                for cb in all_callbacks:
                    cb.on_epoch_end(epoch, logs)
                if net.stop_training:
                    history.stop_reason = "early_stopping"
                    break
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
        finally:
            tuner.close()
            for layer in net.layers:  # what the last step kept for backward holds training rows
                layer.clear_cache()
            net.loss.clear_cache()
            for cb in all_callbacks:
                cb.on_train_end({"stop_reason": history.stop_reason})
    return history


class _StepDiverged(Exception):
    """A step overflowed or produced a non-finite loss (internal; becomes TrainingDivergedError)."""


def _run_epoch(
    net: Any,
    X: Any,
    y: np.ndarray,
    w: np.ndarray | None,
    size: int,
    shuffle: bool,
    backup: np.ndarray,
    batch_callbacks: list[Callback],
    step: int,
    tuner: threads.Tuner,
) -> tuple[float, float, int]:
    """One pass over the data. Returns the summed loss, the number of correct
    predictions, the running step count and the blow-up reference: the larger of
    the epoch's first step's loss and the loss of an all-zero output on its batch.
    ``tuner`` picks the BLAS threads for large products (see ``nnscratch.threads``)."""
    total_loss, correct = 0.0, 0.0
    first = None
    params, logits = net.parameters, net.fused or net.outputs_logits
    caller_errstate = np.geterr()
    # Overflow or an invalid operation inside a step means the run has diverged:
    # raise at once, rather than warn and go on computing with inf and NaN. The
    # error state is set once per epoch (setting it costs as much as ten small
    # NumPy calls); callbacks run under the caller's own.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for i, rows in enumerate(batch_indices(X.shape[0], size, net.rng if shuffle else None)):
            xb, yb, wb = take_rows(X, rows, net.dtype), y[rows], (None if w is None else w[rows])
            np.copyto(backup, params.values)  # to undo a step that fails half-way
            tuner.before_step(i)
            started = time.perf_counter()
            try:
                loss, out = net.train_step(xb, yb, wb)
            except FloatingPointError as err:
                raise _StepDiverged(str(err)) from err
            except KeyboardInterrupt:
                params.restore(backup)  # the interrupt may have cut the update in half
                raise
            tuner.after_step(i, time.perf_counter() - started)
            if not math.isfinite(loss):
                raise _StepDiverged(f"loss = {loss}")
            total_loss += loss * xb.shape[0]
            if first is None:
                zeros = np.zeros((xb.shape[0], net.n_outputs), dtype=net.dtype)
                first = max(loss, net.loss.reduce(net.loss.per_sample(zeros, yb), wb))
            if net.is_classifier:
                correct += net.loss.count_correct(out, yb, logits)
            step += 1
            if batch_callbacks:
                with np.errstate(**caller_errstate):
                    for cb in batch_callbacks:
                        cb.on_batch_end(step, {"loss": loss})
    return total_loss, correct, step, first if first is not None else 0.0
