"""``Parameters``: every weight and bias of a network in one flat buffer.

Each layer keeps its ``params`` and ``grads`` dicts, but their arrays are views
into two flat buffers owned here: ``values`` (weights first, then biases) and
``grads`` beside it. So an optimizer updates the whole network with a few
vectorised calls, and saving, restoring or copying the weights is one array
copy. Assign to a parameter in place (``layer.params["W"][...] = new``) so the
view stays connected.

This object also decides which parameters take weight decay (the weights,
never the biases), and hands an optimizer its groups with that decision
attached, as nanoGPT's ``configure_optimizers`` does; an optimizer never
guesses from key names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Parameters", "Groups"]


class Groups(NamedTuple):
    """What an optimizer's ``step`` takes: values and gradients by group name
    (views into the flat buffers) and whether each group takes weight decay."""

    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    decay: dict[str, bool]


class Parameters:
    """The flat parameter and gradient buffers of a list of built layers.

    Parameters
    ----------
    layers : sequence of Layer
        Built layers; those with parameters get their ``params``/``grads``
        rebound as views into this object's buffers (their values are kept).
    dtype : numpy dtype

    Attributes
    ----------
    values, grads : ndarray of shape (size,)
        Every parameter, and the gradients of the last backward pass.
    names : list of str
        ``"layers.{i}.{key}"`` for each parameter, in buffer order.
    """

    def __init__(self, layers: Sequence[Any], dtype: np.dtype) -> None:
        self._layers = list(layers)
        self.dtype = np.dtype(dtype)
        self.bind()

    def bind(self) -> None:
        """(Re)create the flat buffers from the layers' current values and point
        every layer's ``params``/``grads`` at them. A copy or an unpickled
        network calls this: copying turns the views into independent arrays."""
        entries = [(i, layer, key) for key in ("W", "b") for i, layer in enumerate(self._layers) if key in layer.params]
        sizes = [layer.params[key].size for _, layer, key in entries]
        self.values = np.empty(sum(sizes), dtype=self.dtype)
        self.grads = np.zeros(sum(sizes), dtype=self.dtype)
        self.names: list[str] = []
        self._views: dict[str, np.ndarray] = {}
        offset, self.n_weights = 0, 0
        for (i, layer, key), size in zip(entries, sizes, strict=True):
            shape = layer.params[key].shape
            view = self.values[offset : offset + size].reshape(shape)
            view[...] = layer.params[key]
            layer.params[key] = view
            layer.grads[key] = self.grads[offset : offset + size].reshape(shape)
            name = f"layers.{i}.{key}"
            self.names.append(name)
            self._views[name] = view
            offset += size
            self.n_weights += size if key == "W" else 0
        cut = self.n_weights
        self._groups = {  # views, so made once per binding
            False: Groups({"params": self.values}, {"params": self.grads}, {"params": True}),
            True: Groups(
                {"W": self.values[:cut], "b": self.values[cut:]},
                {"W": self.grads[:cut], "b": self.grads[cut:]},
                {"W": True, "b": False},
            ),
        }

    def __getstate__(self) -> dict[str, Any]:
        # The layers carry the values; the owner calls bind() once they are back
        # (Network.__setstate__), so a pickle holds each weight once.
        return {"_layers": self._layers, "dtype": self.dtype}

    @property
    def size(self) -> int:
        return int(self.values.size)

    def __getitem__(self, name: str) -> np.ndarray:
        """The view of one parameter, e.g. ``parameters["layers.0.W"]``."""
        return self._views[name]

    def __repr__(self) -> str:
        return f"Parameters({self.size:,} values in {len(self.names)} arrays, {self.dtype.name})"

    # --- groups for an optimizer ------------------------------------------
    def groups(self, split: bool = False) -> Groups:
        """One group ``"params"`` holding everything (the fastest: a few calls per
        step), or, with ``split``, the weights ``"W"`` (decayed) and the biases
        ``"b"`` (not decayed) apart, for optimizers with weight decay."""
        return self._groups[bool(split)]

    # --- whole-buffer copies ----------------------------------------------
    def snapshot(self) -> np.ndarray:
        """A copy of every value, as one flat array."""
        return self.values.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        """Overwrite every value from a ``snapshot()``."""
        snapshot = np.asarray(snapshot)
        if snapshot.shape != self.values.shape:
            raise ValueError(f"Expected {self.size} parameters. Received shape {snapshot.shape}.")
        np.copyto(self.values, snapshot)

    def all_finite(self) -> bool:
        """True when no value is NaN or infinite."""
        return bool(np.isfinite(self.values).all())

    # --- named state --------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter by name (copies), in buffer order."""
        return {name: self._views[name].copy() for name in self.names}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Set every parameter from ``state`` (as ``state_dict()`` gives it).

        Every name must be present with the same shape; nothing is changed
        unless all of them are.
        """
        for name in self.names:
            if name not in state:
                raise KeyError(f"the parameter {name!r} is missing")
            value, target = np.asarray(state[name]), self._views[name]
            if value.shape != target.shape:
                raise ValueError(f"parameter {name!r} has shape {value.shape}, expected {target.shape}")
        for name in self.names:
            self._views[name][...] = state[name]
