"""Layers: ``Dense`` (an affine map followed by an activation) and ``Dropout``.

A layer keeps its parameters in ``self.params`` and the gradients of the last
``backward`` in ``self.grads``, a dict with the same keys. ``forward(x)``
returns the output and caches the input; ``backward(grad_output)`` returns the
gradient for the input. Rows are samples, so ``Dense`` computes ``x @ W + b``
with ``W`` of shape ``(n_in, n_out)``.

Parameters are created by ``build(rng, dtype)``, which the ``Network`` calls;
weights given explicitly (``weights=``, ``biases=``) are used as they are, so a
classic example with printed numbers can be reproduced exactly.

``Dense`` has the one fast branch of the layers: with the optional
accelerator (``nnscratch.kernels``) the bias and a built-in ReLU, sigmoid or
tanh run as one fused pass, forward and backward, with the same bits as the
textbook code beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels
from ._cache import Cached
from ._registry import Registry
from ._validation import check_number, check_positive_int, is_sparse
from .activations import ACTIVATIONS, Activation, get_activation
from .initializers import get_initializer

__all__ = ["Layer", "Dense", "Dropout", "LAYERS"]

LAYERS = Registry("layer")


class Layer(Cached):
    """Base class. Layers without parameters keep empty ``params``/``grads``."""

    registry_name = "layer"

    n_in: int
    n_out: int

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    @property
    def built(self) -> bool:
        return True

    def build(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Create parameters (no-op for layers without any)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(
        self, grad_output: np.ndarray, need_input_grad: bool = True, overwrite: bool = False
    ) -> np.ndarray | None:
        """Store parameter gradients in ``grads`` and return ``dC/d(input)``.

        ``need_input_grad=False`` skips the input gradient and returns None: the
        network passes it for the first layer with parameters, whose input is
        the data (or needs no gradient). ``overwrite=True`` lets the layer
        compute in the memory of ``grad_output`` (the network passes arrays it
        no longer needs); otherwise ``grad_output`` is left alone and calling
        ``backward`` twice gives the same result.
        """
        raise NotImplementedError

    def penalty(self) -> float:
        """Regularisation term this layer adds to the loss."""
        return 0.0

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any], weights_follow: bool = False) -> Layer:
        """Rebuild the layer from ``get_config()``; ``weights_follow`` says the caller
        sets every parameter next (as ``nnscratch.load`` does)."""
        raise NotImplementedError


@LAYERS.register("dense")
class Dense(Layer):
    """Fully connected layer ``a = activation(x @ W + b)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    activation : str or Activation, default "identity"
        ``"identity"``, ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``,
        ``"softmax"`` or an ``Activation`` instance.
    bias : bool, default True
        Whether to add a bias vector ``b``.
    initializer : str or callable, default "glorot_uniform"
        Scheme for ``W`` (see ``nnscratch.initializers``).
    bias_initializer : str or callable, default "zeros"
    weights : array-like of shape (n_in, n_out), optional
        Explicit initial ``W`` (copied); overrides ``initializer``.
    biases : array-like of shape (n_out,), optional
        Explicit initial ``b`` (copied).
    l2, l1 : float, default 0
        Regularisation on ``W`` only (never on ``b``). The loss gains
        ``l2/2 * ||W||^2 + l1 * |W|_1``, so the gradient gains
        ``l2 * W + l1 * sign(W)``.

    Examples
    --------
    >>> Dense(784, 30, "sigmoid")
    Dense(784 -> 30, sigmoid)
    """

    cache_names = ("x", "fused", "fused_a")  # the input; the fused pass and its output, when it ran

    def clear_cache(self) -> None:
        super().clear_cache()
        self.activation.clear_cache()

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str | Activation | None = "identity",
        *,
        bias: bool = True,
        initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        weights: Any = None,
        biases: Any = None,
        l2: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_in, self.n_out = check_positive_int("n_in", n_in), check_positive_int("n_out", n_out)
        self.activation = get_activation(activation)
        self.bias = bool(bias)
        self.initializer = get_initializer(initializer)
        self.bias_initializer = get_initializer(bias_initializer)
        self._initializer_name = initializer if isinstance(initializer, str) else None
        self._bias_initializer_name = bias_initializer if isinstance(bias_initializer, str) else None
        self.l2, self.l1 = check_number("l2", l2, 0.0), check_number("l1", l1, 0.0)
        self._initial = {"W": self._check_given("weights", weights, (self.n_in, self.n_out))}
        if biases is not None and not self.bias:
            raise ValueError("biases were given but bias=False. Drop biases= or set bias=True.")
        self._initial["b"] = self._check_given("biases", biases, (self.n_out,))
        self.fused: kernels.ActivationPass | None = None
        self.fused_a: np.ndarray | None = None

    @staticmethod
    def _check_given(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        if value is None:
            return None
        arr = np.array(value, dtype=np.float64 if not hasattr(value, "dtype") else None)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}. Received shape {arr.shape}.")
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite numbers.")
        return arr

    @property
    def built(self) -> bool:
        return "W" in self.params

    def build(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Create ``W`` (and ``b``) in ``dtype``, drawing from ``rng`` unless given."""
        dtype = np.dtype(dtype)
        given_w, given_b = self._initial["W"], self._initial["b"]
        if self.built:  # rebuilt in another dtype: keep the values
            given_w, given_b = self.params["W"], self.params.get("b")
        w = given_w if given_w is not None else self.initializer(rng, (self.n_in, self.n_out), dtype)
        self.params = {"W": np.array(w, dtype=dtype)}
        if self.bias:
            b = given_b if given_b is not None else self.bias_initializer(rng, (self.n_out,), dtype)
            self.params["b"] = np.array(b, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward_linear(self, x: np.ndarray, add_bias: bool = True) -> np.ndarray:
        """The pre-activation ``z = x @ W + b`` (a new array; without ``b`` when
        ``add_bias`` is False); caches ``x`` for the weight gradient."""
        self.x = x
        z = x @ self.params["W"]
        if self.bias and add_bias:
            z += self.params["b"]
        return z

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``activation(x @ W + b)`` for ``x`` of shape (n, n_in)."""
        z = self.forward_linear(x, add_bias=False)  # z is ours alone: a takes its memory
        b = self.params.get("b")
        self.fused = kernels.activation_pass(self.activation, z, b)  # the accelerator, or None
        if self.fused is not None:
            self.fused_a = self.fused.forward(z, b)  # activation(z + b) in one pass: the same bits
            return self.fused_a
        self.fused_a = None
        if b is not None:
            z += b
        return self.activation.forward(z, out=z)

    def backward_linear(self, grad_z: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Given ``dC/dz``: store ``dC/dW = x^T dC/dz`` (+ penalty terms) and
        ``dC/db = sum over samples of dC/dz``; return ``dC/dx = dC/dz W^T``.

        The input gradient is skipped (None) when ``need_input_grad`` is False,
        as it is for the first layer, whose input is the data.
        """
        W = self.params["W"]
        if is_sparse(self.x):
            self.grads["W"][...] = self.x.T @ grad_z
        else:
            np.matmul(self.x.T, grad_z, out=self.grads["W"])
        if self.l2:
            self.grads["W"] += self.l2 * W
        if self.l1:
            self.grads["W"] += self.l1 * np.sign(W)
        if self.bias:
            grad_z.sum(axis=0, out=self.grads["b"])
        return grad_z @ W.T if need_input_grad else None

    def backward(
        self, grad_output: np.ndarray, need_input_grad: bool = True, overwrite: bool = False
    ) -> np.ndarray | None:
        """Backpropagate ``dC/da`` through the activation, then the affine map
        (see ``Layer.backward`` for the two flags)."""
        out = grad_output if overwrite else None
        if self.fused_a is not None:  # the accelerator's backward for the fused forward
            grad_z = self.fused.backward(grad_output, self.fused_a, out)
        else:
            grad_z = self.activation.backward(grad_output, out=out)
        return self.backward_linear(grad_z, need_input_grad)

    def penalty(self) -> float:
        """``l2/2 * ||W||^2 + l1 * sum|W|`` (zero when both are zero)."""
        total = 0.0
        if self.l2:
            w = self.params["W"].ravel()
            total += 0.5 * self.l2 * float(np.dot(w, w))
        if self.l1:
            total += self.l1 * float(np.abs(self.params["W"]).sum())
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.registry_name,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "activation": self.activation.get_config(),
            "bias": self.bias,
            "initializer": self._initializer_name,
            "bias_initializer": self._bias_initializer_name,
            "l2": self.l2,
            "l1": self.l1,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], weights_follow: bool = False) -> Dense:
        """Rebuild the layer from ``get_config()``.

        A custom (callable) initializer cannot be recorded in a config, so such a
        layer is refused, since its weights would silently be something else,
        unless ``weights_follow`` says the caller sets them next.
        """
        config = dict(config)
        config.pop("name", None)
        if "initializer" in config and config["initializer"] is None and not weights_follow:
            raise ValueError(
                "it was built with a custom initializer, which a config cannot record; rebuild it "
                "with that initializer, or load saved weights with nnscratch.load."
            )
        config["activation"] = ACTIVATIONS.from_config(config["activation"])
        # An unrecorded (custom) initializer stays unrecorded: the caller sets the weights.
        config["initializer"] = config.get("initializer") or _set_by_caller
        config["bias_initializer"] = config.get("bias_initializer") or _set_by_caller
        return cls(**config)

    def __repr__(self) -> str:
        extra = "" if self.bias else ", no bias"
        return f"Dense({self.n_in} -> {self.n_out}, {self.activation!r}{extra})"


def _set_by_caller(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The placeholder for an initializer a config could not record: zeros, which the
    caller overwrites (``from_config(..., weights_follow=True)``), recorded as None again."""
    return np.zeros(shape, dtype)


@LAYERS.register("dropout")
class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate``
    and scale the survivors by ``1 / (1 - rate)``; at inference, the identity.

    The mask is drawn from the generator given to ``build`` (the network's
    dropout stream). Set ``hold_mask = True`` to reuse the last mask, which
    gradient checks need.
    """

    cache_names = ("mask",)

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = check_number("rate", rate, 0.0, 1.0)
        self.hold_mask = False
        self.mask: np.ndarray | None = None
        self.rng = np.random.default_rng(0)
        self.n_in = self.n_out = 0  # set by the network from its neighbours

    def build(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        self.rng = rng

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        if not (self.hold_mask and self.mask is not None and self.mask.shape == x.shape):
            keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
            self.mask = keep.astype(x.dtype) * (1.0 / (1.0 - self.rate))
        return x * self.mask

    def backward(
        self, grad_output: np.ndarray, need_input_grad: bool = True, overwrite: bool = False
    ) -> np.ndarray | None:
        if not need_input_grad:
            return None
        if self.mask is None:
            return grad_output if overwrite else grad_output.copy()
        return np.multiply(grad_output, self.mask, out=grad_output if overwrite else None)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "rate": self.rate}

    @classmethod
    def from_config(cls, config: dict[str, Any], weights_follow: bool = False) -> Dropout:
        return cls(rate=config["rate"])

    def __repr__(self) -> str:
        return f"Dropout({self.rate:g})"
