"""The training loop behind ``Network.fit``.

Each epoch draws a fresh permutation of the row indices and walks it in
mini-batches, so the dataset itself is never copied or reshuffled in memory.
Every step is guarded: before it, the parameters are copied to a backup
buffer, so that a step that overflows, or a Ctrl-C that lands half-way
through an update, can be undone exactly. A Ctrl-C between steps undoes
nothing: the last step stands, consistent with the optimizer's state. (One
that lands inside the optimizer's update restores the weights, but Adam's
moment estimates may already include that step's gradient.)

``fit`` reads top to bottom as the loop it is; three helpers carry the rest:
``_Inputs`` (the checked rows, targets, weights and held-out set), ``_StepGuard``
(the backup, the restore, the error state, Ctrl-C and the BLAS thread tuner)
and ``_BlowUp`` (the check that stops a loss which rose far and stayed
finite). Written against the network's public surface: ``train_step``,
``parameters.snapshot()``/``restore()``, the loss's ``check_targets`` and
``count_correct``, and ``inference.evaluate`` for validation data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
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


def fit(net: Any, X: Any, y: Any, *, epochs: int = 1, batch_size: int | None = 32, shuffle: bool = True,
        validation_data: Any = None, validation_split: float = 0.0, sample_weight: Any = None,
        callbacks: Sequence[Callback] | None = None, verbose: int | bool = 0) -> History:  # fmt: skip
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
        Hold out this last fraction of the rows (before shuffling), as Keras does,
        unless ``validation_data`` is given (stratified: ``data.stratified_split``).
    sample_weight : array-like of shape (n,), optional
    callbacks : list of Callback, optional
    verbose : int or bool, default 0 (show a progress bar when true)

    Returns
    -------
    History
        ``.history`` maps ``loss``, ``val_loss``, ... to lists; ``.stop_reason`` says why it ended.

    Raises
    ------
    TrainingDivergedError
        On a NaN, infinite or blown-up (``BLOW_UP``) loss, after restoring the weights from before.
    """
    epochs = check_positive_int("epochs", epochs)
    data = _Inputs.check(net, X, y, sample_weight, validation_data, validation_split, batch_size, shuffle)
    history = net.history = History()
    every = [history, *_check_callbacks(callbacks)] + ([ProgressBar()] if verbose else [])
    _begin(net, every, epochs, data)
    blow_up, guard = _BlowUp(net), _StepGuard(net, data.size)  # the guard holds the thread limit until close()
    try:
        for epoch in range(epochs):
            try:
                logs = _run_epoch(net, data, guard, blow_up, every)
            except _StepDiverged as err:
                guard.undo()
                history.stop_reason = "diverged"
                raise TrainingDivergedError(_diverged(epoch, err), history) from None
            for cb in every:
                cb.on_epoch_end(epoch, logs)
            if net.stop_training:
                history.stop_reason = "early_stopping"
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
    finally:
        guard.close()
        for cb in every:
            cb.on_train_end({"stop_reason": history.stop_reason})
    return history


def _run_epoch(net: Any, data: _Inputs, guard: _StepGuard, blow_up: _BlowUp, callbacks: list[Callback]) -> dict:
    """One pass over the data, every step under ``guard``; returns the epoch's logs
    (``loss``, ``accuracy`` for classifiers, then the validation scores)."""
    total_loss, correct = 0.0, 0
    batch_callbacks = [cb for cb in callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
    with guard.epoch():
        for i, (xb, yb, wb) in enumerate(data.batches(net)):
            loss, z = guard.step(i, net.train_step, xb, yb, wb)
            blow_up.observe(net, loss, yb, wb)
            total_loss += loss * xb.shape[0]
            if net.is_classifier:
                correct += net.loss.count_correct(z, yb)
            if batch_callbacks:
                with guard.callers_errstate():
                    for cb in batch_callbacks:
                        cb.on_batch_end(guard.steps, {"loss": loss})
    logs = {"loss": total_loss / data.n}
    blow_up.check(logs["loss"], guard)
    if net.is_classifier:
        logs["accuracy"] = correct / net.loss.count_predictions(data.y)
    if data.validation is not None:
        logs.update({f"val_{k}": v for k, v in inference.evaluate(net, *data.validation).items()})
    return logs


class _Inputs:
    """What ``fit`` trains on, checked once: ``X`` (left in its own dtype; each
    mini-batch is converted as it is taken), ``y`` and ``w`` in the loss's form,
    the held-out ``validation`` set or None, and the batch ``size``."""

    def __init__(self, X: Any, y: np.ndarray, w: np.ndarray | None, validation: Any, size: int, shuffle: bool):
        self.X, self.y, self.w, self.validation, self.size, self.shuffle = X, y, w, validation, size, shuffle
        self.n = X.shape[0]

    @classmethod
    def check(
        cls,
        net: Any,
        X: Any,
        y: Any,
        sample_weight: Any,
        validation_data: Any,
        validation_split: float,
        batch_size: int | None,
        shuffle: bool,
    ) -> _Inputs:
        batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        validation_split = check_fraction("validation_split", validation_split)
        X = check_X(X, net.n_inputs, net.dtype, convert=False)
        y = net.loss.check_targets(y, X.shape[0], net.n_outputs, net.dtype)
        w = check_sample_weight(sample_weight, X.shape[0], net.dtype)
        validation = _check_validation(net, validation_data)
        if validation is None and validation_split:
            n_val = int(X.shape[0] * validation_split)
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(
                    f"validation_split={validation_split} leaves no data on one side of {X.shape[0]} samples."
                )
            cut = X.shape[0] - n_val
            validation = (X[cut:], y[cut:], None if w is None else w[cut:])
            X, y, w = X[:cut], y[:cut], None if w is None else w[:cut]
        size = X.shape[0] if batch_size is None else min(batch_size, X.shape[0])
        return cls(X, y, w, validation, size, bool(shuffle))

    @property
    def steps(self) -> int:
        return -(-self.n // self.size)

    def batches(self, net: Any) -> Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
        """``(xb, yb, wb)`` for each mini-batch of an epoch, in a new order when shuffling."""
        for rows in batch_indices(self.n, self.size, net.rng if self.shuffle else None):
            yield take_rows(self.X, rows, net.dtype), self.y[rows], None if self.w is None else self.w[rows]


def _check_validation(net: Any, data: Any) -> tuple[Any, np.ndarray, Any] | None:
    if data is None:
        return None
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val).")
    Xv = check_X(data[0], net.n_inputs, net.dtype, name="X_val", convert=False)
    yv = net.loss.check_targets(data[1], Xv.shape[0], net.n_outputs, net.dtype, name="y_val")
    wv = check_sample_weight(data[2], Xv.shape[0], net.dtype) if len(data) == 3 else None
    return Xv, yv, wv


def _check_callbacks(callbacks: Sequence[Callback] | None) -> list[Callback]:
    callbacks = list(callbacks or [])
    if not all(isinstance(cb, Callback) for cb in callbacks):
        raise TypeError(f"callbacks must be Callback instances. Received {callbacks!r}.")
    return callbacks


def _begin(net: Any, callbacks: list[Callback], epochs: int, data: _Inputs) -> None:
    """Hand the network to every callback and tell them what the run will log."""
    metrics = ["loss"] + (["accuracy"] if net.is_classifier else [])
    if data.validation is not None:
        metrics += [f"val_{m}" for m in metrics]
    net.stop_training = False
    for cb in callbacks:
        cb.set_network(net)
    for cb in callbacks:
        cb.on_train_begin({"epochs": epochs, "steps_per_epoch": data.steps, "metrics": metrics})


class _StepDiverged(Exception):
    """A step overflowed or produced a non-finite loss (internal; becomes TrainingDivergedError)."""


def _diverged(epoch: int, err: _StepDiverged) -> str:
    return (
        f"Training diverged at epoch {epoch + 1} ({err}); it stopped and the weights from before that step "
        "(or epoch) were restored. Try a lower learning rate, scaling the inputs (e.g. to [0, 1] or zero mean "
        "and unit variance), or a smaller initialisation."
    )


class _StepGuard:
    """Every step runs inside the guard, which can undo it.

    Before a step it copies the weights to ``backup``, so that a step that
    overflows, or a Ctrl-C that lands half-way through an update, is undone
    exactly. During an epoch overflow and invalid operations raise (the run has
    diverged: stop, rather than go on computing with inf and NaN); the error
    state is set once per epoch, because setting it costs as much as ten small
    NumPy calls, and callbacks run under the caller's own. For large products
    the guard also holds the BLAS thread limit and the tuner that picks the
    threads epoch by epoch (see ``nnscratch.threads``).
    """

    def __init__(self, net: Any, batch_rows: int) -> None:
        self.params = net.parameters
        self.backup = self.params.snapshot()
        self.steps = 0  # steps taken in this fit call
        self._caller_errstate = np.geterr()
        largest = threads.largest_product(net.layers, batch_rows)
        self._tuner = threads.Tuner(largest)
        self._held = ExitStack()  # what close() lets go of: the thread limit
        self._held.enter_context(threads.limited(largest))
        self._net = net

    @contextmanager
    def epoch(self) -> Iterator[None]:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield

    def callers_errstate(self) -> Any:
        return np.errstate(**self._caller_errstate)

    def step(self, i: int, train_step: Any, *batch: Any) -> tuple[float, np.ndarray]:
        """``train_step(*batch)`` as the epoch's ``i``-th step; raises ``_StepDiverged``
        on an overflow or a loss that is not finite."""
        np.copyto(self.backup, self.params.values)
        self._tuner.before_step(i)
        started = time.perf_counter()
        try:
            loss, z = train_step(*batch)
        except FloatingPointError as err:
            raise _StepDiverged(str(err)) from err
        except KeyboardInterrupt:
            self.undo()  # the interrupt may have cut the update in half
            raise
        self._tuner.after_step(i, time.perf_counter() - started)
        if not math.isfinite(loss):
            raise _StepDiverged(f"loss = {loss}")
        self.steps += 1
        return loss, z

    def undo(self) -> None:
        """Put back the weights from before the last step (or what ``backup`` was set to)."""
        self.params.restore(self.backup)

    def close(self) -> None:
        """Release the thread limits and forget what the last step kept for backward
        (it holds training rows)."""
        self._tuner.close()
        self._held.close()
        for layer in self._net.layers:
            layer.clear_cache()
        self._net.loss.clear_cache()


class _BlowUp:
    """Stops a run whose epoch loss rose ``BLOW_UP`` times above its reference and
    stayed finite, with the weights of the last sane epoch.

    The reference is taken once per ``fit`` call, at its first step: the larger of
    that step's loss and the loss of an all-zero output on that batch (a network
    that has learnt nothing: log k for a softmax over k classes). So a loop of
    short ``fit`` calls on a network already near zero loss (a playground,
    ``partial_fit``) is not stopped by an ordinary bump of Adam from 1e-4 to 0.6.
    """

    def __init__(self, net: Any) -> None:
        self.reference: float | None = None
        self.sane = net.parameters.snapshot()  # the weights after the last epoch that had not blown up
        self._params = net.parameters

    def observe(self, net: Any, loss: float, yb: np.ndarray, wb: np.ndarray | None) -> None:
        if self.reference is None:
            zeros = np.zeros((yb.shape[0], net.n_outputs), dtype=net.dtype)
            self.reference = max(loss, net.loss.reduce(net.loss.per_sample(zeros, yb), wb))

    def check(self, mean_loss: float, guard: _StepGuard) -> None:
        """Raise ``_StepDiverged`` (the guard then restores the sane weights) or
        remember these weights as sane."""
        reference = max(self.reference or 0.0, 1e-12)
        if mean_loss > BLOW_UP * reference:
            np.copyto(guard.backup, self.sane)
            raise _StepDiverged(
                f"the loss rose to {mean_loss:.4g} and stayed finite: more than {BLOW_UP:g} "
                f"times {reference:.4g}, the larger of its first value and the loss of an "
                "all-zero output"
            )
        np.copyto(self.sane, self._params.values)
