"""The ``Network``: a stack of layers, a loss and an optimizer.

Forward propagation feeds each layer's output to the next. Backpropagation
starts from the loss gradient and walks the layers in reverse; each layer turns
``dC/d(output)`` into its parameter gradients and ``dC/d(input)``
(``forward_backward``, the one place both directions meet). ``train_step`` adds
the optimizer's update.

This class is the structure only. Training (``fit``), evaluation and chunked
prediction live in ``training`` and ``inference``, written against the public
surface here; the methods of the same names below hand over to them, so
``net.fit(X, y)`` reads as in Keras. Every parameter lives in one flat buffer
(``parameters``, see ``nnscratch.parameters``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import inference, io, training
from .layers import LAYERS, Dense, Dropout, Layer
from .losses import LOSSES, Loss, get_loss
from .optimizers import OPTIMIZERS, Optimizer, get_optimizer
from .parameters import Parameters
from .summary import summarize

__all__ = ["Network"]


@io.MODELS.register("network")  # nnscratch.load finds the class here
class Network:
    """A feed-forward network trained by backpropagation.

    Parameters
    ----------
    layers : sequence of Layer
        Applied in order; the last one must be ``Dense``.
    loss : str or Loss, default "cross_entropy"
    optimizer : str or Optimizer, default "adam"
    dtype : {"float32", "float64"}, default "float32"
        Precision of parameters and computation; inputs are converted once.
    seed : int, optional
        Seeds weight initialisation, shuffling and dropout (three independent
        streams). The same seed gives bit-identical weights.

    Examples
    --------
    >>> net = Network([Dense(2, 4, "tanh"), Dense(4, 1, "sigmoid")],
    ...               loss="binary_cross_entropy", optimizer="sgd", seed=0)
    >>> net.layers
    [Dense(2 -> 4, tanh), Dense(4 -> 1, sigmoid)]
    >>> net.optimizer
    SGD(learning_rate=0.01, momentum=0.0, nesterov=False)
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        loss: str | Loss = "cross_entropy",
        optimizer: str | Optimizer = "adam",
        *,
        dtype: str | np.dtype = "float32",
        seed: int | None = None,
    ) -> None:
        self.layers = list(layers)
        if not self.layers or not all(isinstance(layer, Layer) for layer in self.layers):
            raise ValueError(f"layers must be a non-empty list of Layer objects. Received {layers!r}.")
        if not isinstance(self.layers[-1], Dense):
            raise ValueError(f"The last layer must be Dense. Received {self.layers[-1]!r}.")
        self.dtype = _float_dtype(dtype)
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer)
        self._connect_widths()
        self.loss.check_output(self.output_layer.activation, self.n_outputs)
        sequence = np.random.SeedSequence(seed)
        self.seed = int(sequence.entropy)  # recorded even when drawn at random
        init_seq, shuffle_seq, dropout_seq = sequence.spawn(3)
        self.rng = np.random.default_rng(shuffle_seq)
        init_rng, dropout_rng = np.random.default_rng(init_seq), np.random.default_rng(dropout_seq)
        for layer in self.layers:
            layer.build(dropout_rng if not isinstance(layer, Dense) else init_rng, self.dtype)
        self.parameters = Parameters(self.layers, self.dtype)
        # Layers before the first one with parameters need no input gradient.
        self._first_trainable = next(i for i, layer in enumerate(self.layers) if layer.params)
        self.stop_training = False  # a callback sets it to end fit() after this epoch
        self.history: Any = None

    def _connect_widths(self) -> None:
        width = None
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                if width is not None and layer.n_in != width:
                    raise ValueError(
                        f"Layer {i} ({layer!r}) expects {layer.n_in} inputs but the previous layer gives {width}."
                    )
                width = layer.n_out
            else:
                if width is None:
                    raise ValueError(f"Layer {i} ({layer!r}) needs a Dense layer before it to know its width.")
                layer.n_in = layer.n_out = width

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling and deep copies turn each layer's parameter views into
        # independent arrays: bind them to one flat buffer again.
        self.__dict__.update(state)
        self.parameters.bind()

    # --- structure -------------------------------------------------------
    @property
    def output_layer(self) -> Dense:
        return self.layers[-1]  # type: ignore[return-value]

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.output_layer.n_out

    @property
    def n_params(self) -> int:
        return self.parameters.size

    @property
    def is_classifier(self) -> bool:
        return self.loss.is_classifier

    @property
    def fused(self) -> bool:
        """True when the loss takes the logits and applies the output activation itself."""
        return self.loss.absorbs(self.output_layer.activation)

    # --- propagation -----------------------------------------------------
    def forward(self, X: Any, training: bool = False, *, loss_input: bool = False) -> np.ndarray:
        """Propagate ``X`` (already validated) through the layers.

        Returns the outputs after the output activation, shape (n, n_outputs),
        or with ``loss_input`` what the loss consumes: the logits when it
        absorbs the output activation. ``training`` switches dropout on. Each
        layer keeps what its ``backward`` needs.
        """
        h, last = X, len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == last and loss_input and self.fused:
                h = self.output_layer.forward_linear(h)
            else:
                h = layer.forward(h, training)
        return h

    def penalty(self) -> float:
        """Sum of the layers' regularisation terms."""
        return sum(layer.penalty() for layer in self.layers)

    def forward_backward(
        self, X: Any, y: np.ndarray, sample_weight: np.ndarray | None = None, training: bool = True
    ) -> tuple[float, np.ndarray]:
        """One forward and one backward pass on a batch (already validated).

        Fills every parameter's gradient (``parameters.grads``, each layer's
        ``grads``) and returns the loss, penalties included, and the loss input
        it was computed on (the logits, for the classification losses).

        The backward pass starts from ``dC/d(output)``. For the pairings softmax
        with ``CrossEntropy`` and sigmoid with ``BinaryCrossEntropy`` the loss
        takes the logits, and ``dC/dz = output - target`` arrives from the loss
        directly, so the output activation's own backward is skipped (``fused``).
        """
        output = self.forward(X, training, loss_input=True)
        loss = self.loss.forward(output, y, sample_weight) + self.penalty()
        grad = self.loss.backward()
        fused, last, first = self.fused, len(self.layers) - 1, self._first_trainable
        for i in range(last, first - 1, -1):
            layer, need = self.layers[i], i > first
            if i == last and fused:
                grad = layer.backward_linear(grad, need)  # type: ignore[attr-defined]
            else:
                grad = layer.backward(grad, need, overwrite=True)  # every grad here is a fresh array
        return loss, output

    def train_step(self, X: Any, y: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """``forward_backward`` then one optimizer update (skipped when the loss is not finite);
        returns the batch loss and the loss input it was computed on."""
        loss, output = self.forward_backward(X, y, sample_weight)
        if math.isfinite(loss):
            groups = self.parameters.groups(split=self.optimizer.decoupled_weight_decay)
            self.optimizer.step(groups.values, groups.grads, groups.decay)
        return loss, output

    # --- the user's side: see training and inference -----------------------
    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
        """Train by mini-batch gradient descent; see ``nnscratch.training.fit``."""
        return training.fit(self, X, y, **kwargs)

    def predict(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Outputs after the output activation, shape (n, n_outputs); see ``nnscratch.inference``."""
        return inference.predict(self, X, batch_size)

    def predict_proba(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (classification losses); see ``nnscratch.inference``."""
        return inference.predict_proba(self, X, batch_size)

    def predict_labels(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Integer labels (classification losses); see ``nnscratch.inference``."""
        return inference.predict_labels(self, X, batch_size)

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None, batch_size: int | None = None) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}``; see ``nnscratch.inference.evaluate``."""
        return inference.evaluate(self, X, y, sample_weight, batch_size)

    def save(self, path: Any, include_optimizer: bool = True, **kwargs: Any) -> Any:
        """Write a safetensors file; see ``nnscratch.io.save``."""
        return io.save(self, path, include_optimizer=include_optimizer, **kwargs)

    # --- state, config and presentation -----------------------------------
    def state_dict(self, include_optimizer: bool = True) -> dict[str, Any]:
        """``{"parameters": {name: array}, "optimizer": optimizer.state_dict() or None}``."""
        optimizer = self.optimizer.state_dict() if include_optimizer else None
        return {"parameters": self.parameters.state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set the parameters (and the optimizer's state, when given) from ``state_dict()``."""
        self.parameters.load_state_dict(state["parameters"])
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])

    def get_config(self) -> dict[str, Any]:
        """Architecture, loss, optimizer and settings, as plain JSON-able data."""
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": self.loss.get_config(),
            "optimizer": self.optimizer.get_config(),
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], dtype: str | None = None, weights_follow: bool = False) -> Network:
        """Rebuild an (untrained) network from ``get_config()`` output.

        ``weights_follow`` says the caller sets every weight next (``nnscratch.load``
        does); without it a layer built with a custom initializer is refused (see
        ``Dense.from_config``).
        """
        layers = []
        for i, c in enumerate(config["layers"]):
            try:
                layers.append(LAYERS.get(c["name"]).from_config(c, weights_follow=weights_follow))
            except ValueError as err:
                raise ValueError(f"layer {i} ({c.get('name')!r}): {err}") from None
        return cls(
            layers,
            loss=LOSSES.from_config(config["loss"]),
            optimizer=OPTIMIZERS.get(config["optimizer"]["name"]).from_config(config["optimizer"]),
            dtype=dtype or config["dtype"],
            seed=config["seed"],
        )

    @classmethod
    def from_sizes(
        cls,
        sizes: Sequence[int],
        activation: str = "relu",
        output_activation: str = "softmax",
        *,
        loss: str | Loss = "cross_entropy",
        optimizer: str | Optimizer = "adam",
        initializer: str | None = None,
        bias: bool = True,
        l2: float = 0.0,
        l1: float = 0.0,
        dropout: float = 0.0,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> Network:
        """Build ``Dense`` layers from widths, e.g. ``[784, 30, 10]``.

        Hidden layers use ``activation`` (with He initialisation for ReLU-like
        activations, Glorot otherwise, unless ``initializer`` is given), the last
        uses ``output_activation``; ``dropout > 0`` adds a Dropout after each
        hidden layer.

        Examples
        --------
        >>> Network.from_sizes([784, 30, 10], "sigmoid", seed=1).n_params
        23860
        """
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"sizes must list at least 2 positive integers. Received sizes={sizes!r}.")
        init = initializer or ("he_uniform" if activation in ("relu", "leaky_relu") else "glorot_uniform")
        layers: list[Layer] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            act, scheme = (output_activation, "glorot_uniform") if last else (activation, init)
            layers.append(Dense(n_in, n_out, act, bias=bias, initializer=scheme, l2=l2, l1=l1))
            if dropout and not last:
                layers.append(Dropout(dropout))
        return cls(layers, loss=loss, optimizer=optimizer, dtype=dtype, seed=seed)

    def copy(self, dtype: str | None = None) -> Network:
        """An independent deep copy (custom layers and activations included),
        optionally converted to another dtype; a dtype change resets the optimizer."""
        clone = copy.deepcopy(self)  # __setstate__ binds the copy's own flat buffer
        if dtype is not None and _float_dtype(dtype) != clone.dtype:
            clone.dtype = _float_dtype(dtype)
            for layer in clone.layers:
                if isinstance(layer, Dense):
                    layer.build(clone.rng, clone.dtype)  # keeps the values, casts them
            clone.parameters = Parameters(clone.layers, clone.dtype)
            clone.optimizer.reset()
        return clone

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts (``summary.summarize``)."""
        return summarize(self)

    def __repr__(self) -> str:
        return f"Network({self.layers!r}, loss={self.loss!r}, optimizer={self.optimizer!r})"


def _float_dtype(dtype: Any) -> np.dtype:
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64'. Received dtype={dtype!r}.")
    return np.dtype(dtype)
