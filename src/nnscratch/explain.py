"""``explain``: one training step on one sample, every number shown.

Backpropagation is the chain rule applied layer by layer. For a Dense layer
``l`` with input ``a[l-1]``, pre-activation ``z[l] = a[l-1] W[l] + b[l]`` and
output ``a[l] = f(z[l])``::

    dC/dz[l]   = dC/da[l] * f'(z[l])         (the activation's backward)
    dC/db[l]   = dC/dz[l]
    dC/dW[l]   = a[l-1]^T dC/dz[l]
    dC/da[l-1] = dC/dz[l] W[l]^T             (with W[l] from BEFORE the update)

and then every parameter takes a gradient-descent step ``p -= lr * dC/dp``.
``explain`` performs exactly that on a copy of the network and returns every
intermediate, so the arithmetic of a worked example can be read off (and
checked) quantity by quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_number, check_X
from .layers import Dense

if TYPE_CHECKING:
    from .network import Network

__all__ = ["explain", "Explanation", "LayerStep"]


@dataclass
class LayerStep:
    """Everything one Dense layer did in the step (row vectors, one sample)."""

    index: int
    activation: str
    a_in: np.ndarray
    z: np.ndarray
    a: np.ndarray
    dC_da: np.ndarray | None  # None when the loss absorbed the activation (fused gradient)
    dC_dz: np.ndarray = field(default_factory=lambda: np.empty(0))
    dC_dW: np.ndarray = field(default_factory=lambda: np.empty(0))
    dC_db: np.ndarray | None = None
    dC_da_in: np.ndarray = field(default_factory=lambda: np.empty(0))
    W: np.ndarray = field(default_factory=lambda: np.empty(0))
    b: np.ndarray | None = None
    W_updated: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_updated: np.ndarray | None = None


@dataclass
class Explanation:
    """The record of one explained step; ``str()`` renders it as a lesson."""

    x: np.ndarray
    y: np.ndarray
    learning_rate: float
    loss: str
    layers: list[LayerStep]
    cost: float
    cost_updated: float
    output_updated: np.ndarray

    @property
    def output(self) -> np.ndarray:
        return self.layers[-1].a

    def __str__(self) -> str:
        def show(name: str, value: Any, note: str = "") -> str:
            if value is None:
                return f"  {name:<14} -  {note}".rstrip()
            arr = np.asarray(value)
            text = np.array2string(arr, precision=8, suppress_small=False, max_line_width=100)
            shape = "x".join(map(str, arr.shape)) or "scalar"
            return f"  {name:<14} {shape:>7}  {text}  {note}".rstrip()

        lines = [
            f"One gradient-descent step (learning rate {self.learning_rate:g}, loss {self.loss}) on one sample",
            show("x", self.x),
            show("target y", self.y),
            "",
            "Forward pass: z = a_in W + b, a = f(z)",
        ]
        for s in self.layers:
            lines += [f"layer {s.index} ({s.activation})", show("z", s.z), show("a", s.a)]
        lines += [f"cost C = {self.cost!r}", "", "Backward pass, last layer first (W before its update):"]
        for s in reversed(self.layers):
            lines.append(f"layer {s.index}")
            lines.append(show("dC/da", s.dC_da, "(loss absorbs the activation)" if s.dC_da is None else ""))
            lines.append(show("dC/dz", s.dC_dz, "= dC/da * f'(z)" if s.dC_da is not None else "= fused loss gradient"))
            lines.append(show("dC/db", s.dC_db, "= dC/dz"))
            lines.append(show("dC/dW", s.dC_dW, "= a_in^T dC/dz"))
            lines.append(show("dC/da_in", s.dC_da_in, "= dC/dz W^T"))
        lines += ["", f"Update: p -= {self.learning_rate:g} * dC/dp"]
        for s in self.layers:
            lines += [f"layer {s.index}", show("W", s.W_updated), show("b", s.b_updated)]
        lines += ["", show("new output", self.output_updated), f"cost {self.cost!r} -> {self.cost_updated!r}"]
        return "\n".join(lines)


def explain(network: Network, x: Any, y: Any, learning_rate: float, apply: bool = False) -> Explanation:
    """One gradient-descent step of ``network`` on a single sample, fully recorded.

    Parameters
    ----------
    network : Network
        Dense layers only (Dropout's randomness has no place in a worked example).
    x : array-like of shape (n_inputs,) or (1, n_inputs)
    y : target for that sample, in the form the network's loss expects
    learning_rate : float
        Plain gradient descent, ``p -= learning_rate * dC/dp``, whatever the
        network's own optimizer is.
    apply : bool, default False
        Also take the step on ``network`` itself (by default a copy steps).

    Returns
    -------
    Explanation
        ``layers[i]`` holds ``z, a, dC_da, dC_dz, dC_dW, dC_db, dC_da_in`` and the
        parameters before and after; ``cost`` and ``cost_updated`` the cost
        before and after the step. ``print()`` it for the worked arithmetic.
    """
    if not all(isinstance(layer, Dense) for layer in network.layers):
        raise ValueError("explain works on networks of Dense layers only (remove Dropout for the worked step).")
    learning_rate = check_number("learning_rate", learning_rate, 0.0, low_open=True)
    net = network if apply else network.copy()
    x = check_X(np.asarray(x, dtype=float).reshape(1, -1), net.n_inputs, net.dtype, name="x")
    y_arr = np.asarray(y)
    y = net.loss.check_targets(y_arr.reshape(1, *y_arr.shape[y_arr.ndim == 2 :]) if y_arr.ndim else y_arr.reshape(1),
                               1, net.n_outputs, net.dtype, name="y")  # fmt: skip

    # The standard pass, one public method at a time (Network.forward_backward
    # calls the same ones); none of them changes its argument, so every
    # intermediate can be kept as it is.
    steps: list[LayerStep] = []
    h = x
    for i, layer in enumerate(net.layers):
        z = layer.forward_linear(h)
        a = layer.activation.forward(z)
        steps.append(LayerStep(i, repr(layer.activation), h, z, a, None))
        h = a
    cost = net.loss.forward(steps[-1].z if net.fused else steps[-1].a, y) + net.penalty()
    grad = net.loss.backward()
    for i in range(len(net.layers) - 1, -1, -1):
        layer, step = net.layers[i], steps[i]
        if i == len(net.layers) - 1 and net.fused:
            step.dC_dz = grad  # the fused gradient output - target
        else:
            step.dC_da = grad
            step.dC_dz = layer.activation.backward(grad)
        step.W = layer.params["W"].copy()
        step.b = layer.params["b"].copy() if layer.bias else None
        step.dC_da_in = layer.backward_linear(step.dC_dz, need_input_grad=True)
        step.dC_dW = layer.grads["W"].copy()
        step.dC_db = layer.grads["b"].copy() if layer.bias else None
        grad = step.dC_da_in
    for layer, step in zip(net.layers, steps, strict=True):
        layer.params["W"] -= learning_rate * step.dC_dW
        step.W_updated = layer.params["W"].copy()
        if layer.bias:
            layer.params["b"] -= learning_rate * step.dC_db
            step.b_updated = layer.params["b"].copy()
    output_updated = net.forward(x)
    cost_updated = net.loss.forward(net.forward(x, loss_input=True), y) + net.penalty()
    return Explanation(x[0], np.asarray(y), float(learning_rate), repr(net.loss), steps, float(cost),
                       float(cost_updated), output_updated[0])  # fmt: skip
