"""Callbacks: code that watches training epoch by epoch.

``fit`` calls ``on_train_begin``, then ``on_batch_end`` after every update and
``on_epoch_end`` with that epoch's logs (``loss``, ``accuracy``, ``val_loss``,
...), then ``on_train_end``. A callback stops training by setting
``network.stop_training = True``. ``ProgressBar`` is the only code in
nnscratch that writes to the terminal, and only when asked (``verbose``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_choice, check_count, check_number

__all__ = ["Callback", "History", "EarlyStopping", "ProgressBar"]


class Callback:
    """Base class: override the hooks you need."""

    network: Any

    def set_network(self, network: Any) -> None:
        self.network = network

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """``info`` holds ``epochs``, ``steps_per_epoch`` and ``metrics`` (log keys)."""

    def on_batch_end(self, step: int, logs: dict[str, float]) -> None:
        """After each optimizer step; ``logs["loss"]`` is that batch's loss."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After each epoch, with that epoch's metrics."""

    def on_train_end(self, logs: dict[str, Any]) -> None:
        """Once, however training ended."""


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list.

    ``stop_reason`` says why training ended: ``"completed"``,
    ``"early_stopping"``, ``"interrupted"`` (Ctrl-C) or ``"diverged"``.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stop_reason = "completed"

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)}, stop_reason={self.stop_reason!r})"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs.
    patience : int, default 0
        Epochs without improvement to tolerate.
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        ``"auto"`` maximises metrics named like accuracy, minimises the rest.
    restore_best_weights : bool, default False
        On stopping (or at the end), put back the weights of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        self.patience = check_count("patience", patience)
        self.min_delta = check_number("min_delta", min_delta, 0.0)
        check_choice("mode", mode, ("auto", "min", "max"))
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self.stopped_epoch: int | None = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        if self.monitor not in info["metrics"]:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which this fit will not log. "
                f"Available: {', '.join(info['metrics'])}. Pass validation data for val_* metrics."
            )
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch, self.wait, self.best_weights = -1, 0, None
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.network.parameters.snapshot()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.network.stop_training = True

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.network.parameters.restore(self.best_weights)

    def __repr__(self) -> str:
        return f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta:g})"


class ProgressBar(Callback):
    """A tqdm bar over all training steps, with the latest metrics beside it."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: Any = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        self.epochs = info["epochs"]
        kwargs = {"unit": "step", "dynamic_ncols": True, "leave": True, **self.tqdm_kwargs}
        self.bar = tqdm(total=info["epochs"] * info["steps_per_epoch"], desc=f"epoch 1/{self.epochs}", **kwargs)

    def on_batch_end(self, step: int, logs: dict[str, float]) -> None:
        self.bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.bar.set_description(f"epoch {min(epoch + 2, self.epochs)}/{self.epochs}")
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()

    def __repr__(self) -> str:
        return "ProgressBar()"
