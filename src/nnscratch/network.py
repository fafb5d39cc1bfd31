"""The ``Network``: a stack of layers, a loss and an optimizer.

Forward propagation feeds each layer's output to the next. Backpropagation
starts from the loss gradient and walks the layers in reverse; each layer turns
``dC/d(output)`` into its parameter gradients and ``dC/d(input)``. When the
loss absorbs the output activation (cross-entropy with softmax, binary
cross-entropy with sigmoid) the last layer hands the loss its logits and the
backward pass starts from the fused gradient instead.

All parameters live in one flat buffer per network (weights first, then
biases); each layer's ``params`` are views into it. The optimizer therefore
updates every parameter with a few vectorised calls, and saving, restoring or
copying the weights is a single array copy. Assign to parameters in place
(``layer.params["W"][...] = new``) so the views stay connected.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import all_finite, check_finite, check_positive_int, check_targets, check_X
from .activations import Identity
from .layers import Dense, Layer, _is_sparse
from .losses import BinaryCrossEntropy, CrossEntropy, Loss, get_loss
from .optimizers import Optimizer, get_optimizer

__all__ = ["Network"]

_CHUNK = 8192  # rows per inference chunk: bounded memory, BLAS-friendly sizes


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
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'. Received dtype={dtype!r}.")
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer)
        self._check_shapes()
        self._check_loss()
        sequence = np.random.SeedSequence(seed)
        self.seed = int(sequence.entropy)  # recorded even when drawn at random
        init_seq, shuffle_seq, dropout_seq = sequence.spawn(3)
        self.rng = np.random.default_rng(shuffle_seq)
        init_rng, dropout_rng = np.random.default_rng(init_seq), np.random.default_rng(dropout_seq)
        for layer in self.layers:
            layer.build(dropout_rng if not isinstance(layer, Dense) else init_rng, self.dtype)
        self._bind_flat_buffers()
        # Fixed per architecture, so worked out once rather than every step:
        # layers at or before the first one with parameters need no input gradient.
        self._first_trainable = next(i for i, layer in enumerate(self.layers) if layer.params)
        self._param_layers = [layer for layer in self.layers if layer.params]
        self.stop_training = False
        self.history: Any = None

    # --- structure -------------------------------------------------------
    def _check_shapes(self) -> None:
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

    def _check_loss(self) -> None:
        act = self.output_layer.activation
        fused = self.loss.fused_activation
        if fused is not None and not (act.registry_name == fused or isinstance(act, Identity)):
            raise ValueError(
                f"{type(self.loss).__name__} works from logits, so the output activation must be "
                f"{fused!r} or 'identity'. Received {act!r}."
            )
        if isinstance(self.loss, CrossEntropy) and self.n_outputs < 2:
            raise ValueError(
                "CrossEntropy needs at least 2 output units. For two classes use 2 softmax units, "
                "or 1 sigmoid unit with loss='binary_cross_entropy'."
            )

    def _bind_flat_buffers(self) -> None:
        keys = [(layer, key) for key in ("W", "b") for layer in self.layers if key in layer.params]
        sizes = [layer.params[key].size for layer, key in keys]
        self._flat = np.empty(sum(sizes), dtype=self.dtype)
        self._flat_grad = np.zeros(sum(sizes), dtype=self.dtype)
        offset, n_weights = 0, 0
        for (layer, key), size in zip(keys, sizes, strict=True):
            shape = layer.params[key].shape
            view = self._flat[offset : offset + size].reshape(shape)
            view[...] = layer.params[key]
            layer.params[key] = view
            layer.grads[key] = self._flat_grad[offset : offset + size].reshape(shape)
            offset += size
            n_weights += size if key == "W" else 0
        if self.optimizer.separate_biases:
            self._opt_params = {"W": self._flat[:n_weights], "b": self._flat[n_weights:]}
            self._opt_grads = {"W": self._flat_grad[:n_weights], "b": self._flat_grad[n_weights:]}
        else:
            self._opt_params = {"params": self._flat}
            self._opt_grads = {"params": self._flat_grad}

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
        return int(self._flat.size)

    @property
    def is_classifier(self) -> bool:
        return self.loss.is_classifier

    @property
    def _fused(self) -> bool:
        return self.output_layer.activation.registry_name == self.loss.fused_activation

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling copies each layer's parameter views as independent arrays;
        # bind them to one flat buffer again so training can continue.
        self.__dict__.update(state)
        self._bind_flat_buffers()

    def get_flat_weights(self) -> np.ndarray:
        """A copy of every parameter, as one flat array."""
        return self._flat.copy()

    def set_flat_weights(self, flat: np.ndarray) -> None:
        """Overwrite every parameter from a flat array made by ``get_flat_weights``."""
        if flat.shape != self._flat.shape:
            raise ValueError(f"Expected {self._flat.size} parameters. Received shape {flat.shape}.")
        np.copyto(self._flat, flat)

    # --- propagation -----------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Outputs after the output activation, shape (n, n_outputs). No input checks."""
        h = X
        for layer in self.layers:
            h = layer.forward(h, training)
        return h

    def _loss_input(self, X: np.ndarray, training: bool) -> np.ndarray:
        """What the loss consumes: logits when it absorbs the output activation."""
        h = X
        for layer in self.layers[:-1]:
            h = layer.forward(h, training)
        out = self.output_layer
        return out.forward_linear(h) if self._fused else out.forward(h, training)

    def penalty(self) -> float:
        """Sum of the layers' regularisation terms."""
        return sum(layer.penalty() for layer in self._param_layers)

    def backward(self, output: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Loss of ``output`` (from the last training forward) against ``y``;
        fills every layer's ``grads``. Returns the loss including penalties."""
        loss = self.loss.forward(output, y, sample_weight) + self.penalty()
        grad = self.loss.backward()
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            layer, need = self.layers[i], i > self._first_trainable
            if i == last and self._fused:
                grad = layer.backward_linear(grad, need)  # type: ignore[attr-defined]
            else:
                grad = layer.backward(grad, need)
            if not need:
                break
        return loss

    def train_step(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """One forward, backward and optimizer update on a batch (already validated).

        Returns the batch loss and the loss input (logits or outputs) it was computed on.
        """
        output = self._loss_input(X, training=True)
        loss = self.backward(output, y, sample_weight)
        if math.isfinite(loss):
            self.optimizer.step(self._opt_params, self._opt_grads)
        return loss, output

    # --- user API --------------------------------------------------------
    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
        """Train by mini-batch gradient descent; see ``nnscratch.training.fit``."""
        from .training import fit

        return fit(self, X, y, **kwargs)

    def _chunks(self, X: Any, batch_size: int | None) -> Any:
        size = check_positive_int("batch_size", batch_size, allow_none=True) or _CHUNK
        for start in range(0, X.shape[0], size):
            yield start, X[start : start + size]

    def predict(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Outputs after the output activation, shape (n, n_outputs)."""
        first = self.layers[0]
        # A NaN or inf anywhere in a row of X makes every value of that row's
        # first pre-activation x @ W + b NaN or inf. So for dense input,
        # checking z (n x width) proves X finite at a fraction of the cost of
        # reading all of X (n x n_inputs); only a non-finite z sends us to X.
        deferred = isinstance(first, Dense) and not _is_sparse(X)
        X = check_X(X, self.n_inputs, self.dtype, finite=not deferred)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        for start, chunk in self._chunks(X, batch_size):
            if deferred:
                with np.errstate(over="ignore", invalid="ignore"):  # a non-finite z is examined next
                    z = first.forward_linear(chunk)
                if not all_finite(z):
                    check_finite(X)  # NaN or inf in X: a ValueError that counts them
                    z = first.forward_linear(chunk)  # X is finite but z overflowed: warn as NumPy would
                h = first.activation.forward(z)
                for layer in self.layers[1:]:
                    h = layer.forward(h)
            else:
                h = self.forward(chunk)
            out[start : start + chunk.shape[0]] = h
        return out

    def _require_classifier(self, what: str) -> None:
        if not self.is_classifier:
            raise ValueError(
                f"{what} needs a classification loss (cross_entropy or binary_cross_entropy); this network "
                f"uses {self.loss!r}. Use predict() for its raw outputs."
            )

    def predict_proba(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities: softmax rows (n, k); for one sigmoid unit, (n, 2)
        columns ``[1 - p, p]``; for several sigmoid units, one probability each."""
        self._require_classifier("predict_proba")
        out = self.predict(X, batch_size)
        if isinstance(self.output_layer.activation, Identity):  # the outputs are logits
            from . import functional as F

            out = F.softmax(out) if isinstance(self.loss, CrossEntropy) else F.sigmoid(out)
        if isinstance(self.loss, BinaryCrossEntropy) and self.n_outputs == 1:
            return np.hstack([1.0 - out, out])
        return out

    def predict_labels(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Integer labels: argmax for softmax, ``p >= 0.5`` for sigmoid units."""
        proba = self.predict_proba(X, batch_size)
        if isinstance(self.loss, CrossEntropy) or self.n_outputs == 1:
            return np.argmax(proba, axis=1)
        return (proba >= 0.5).astype(np.intp)

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None, batch_size: int | None = None) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` (accuracy for classifiers only).

        The loss includes the regularisation penalty, as in training.
        """
        from ._validation import check_sample_weight

        X = check_X(X, self.n_inputs, self.dtype)
        y = check_targets(y, X.shape[0], self.n_outputs, self.loss, self.dtype)
        w = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        per_sample = np.empty(X.shape[0], dtype=np.float64)
        correct = 0.0
        for start, chunk in self._chunks(X, batch_size):
            stop = start + chunk.shape[0]
            out = self._loss_input(chunk, training=False)
            per_sample[start:stop] = self.loss.per_sample(out, y[start:stop])
            correct += self.count_correct(out, y[start:stop])
        metrics = {"loss": self.loss.reduce(per_sample, w) + self.penalty()}
        if self.is_classifier:
            metrics["accuracy"] = correct / (
                y.size if y.ndim == 2 and not isinstance(self.loss, CrossEntropy) else X.shape[0]
            )
        return metrics

    def count_correct(self, loss_input: np.ndarray, y: np.ndarray) -> float:
        """Correct predictions in a batch, from what the loss consumed (classifiers)."""
        if isinstance(self.loss, CrossEntropy):
            labels = y if y.ndim == 1 else np.argmax(y, axis=1)
            return float(np.count_nonzero(np.argmax(loss_input, axis=1) == labels))
        if isinstance(self.loss, BinaryCrossEntropy):
            threshold = 0.0 if self._fused or isinstance(self.output_layer.activation, Identity) else 0.5
            return float(np.count_nonzero((loss_input > threshold) == (y >= 0.5)))
        return 0.0

    # --- presentation ----------------------------------------------------
    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        for i, layer in enumerate(self.layers):
            n = sum(p.size for p in layer.params.values())
            rows.append((str(i), repr(layer), f"(None, {layer.n_out})", f"{n:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)

        def fmt(row: tuple[str, ...]) -> str:
            cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  ".join(cells)

        body = [fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line]
        body.append(f"Total params: {self.n_params:,} ({self.dtype.name})")
        body.append(f"Loss: {self.loss!r}   Optimizer: {self.optimizer!r}")
        return "\n".join(body)

    def __repr__(self) -> str:
        return f"Network({self.layers!r}, loss={self.loss!r}, optimizer={self.optimizer!r})"

    # --- construction shortcuts and persistence ---------------------------
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
            act = output_activation if last else activation
            layers.append(
                Dense(n_in, n_out, act, bias=bias, initializer=init if not last else "glorot_uniform", l2=l2, l1=l1)
            )
            if dropout and not last:
                from .layers import Dropout

                layers.append(Dropout(dropout))
        return cls(layers, loss=loss, optimizer=optimizer, dtype=dtype, seed=seed)

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

        A layer built with a custom (callable) initializer cannot record it in a
        config: rebuilding it is refused, since its weights would silently be
        zeros, unless ``weights_follow`` says the caller sets every weight next
        (``nnscratch.load`` does).
        """
        from .layers import LAYERS

        custom = [i for i, c in enumerate(config["layers"]) if "initializer" in c and c["initializer"] is None]
        if custom and not weights_follow:
            raise ValueError(f"layer(s) {custom} were built with a custom initializer, which a config cannot "
                             "record; rebuild them with that initializer, or load saved weights with "
                             "nnscratch.load.")  # fmt: skip
        from .losses import LOSSES
        from .optimizers import OPTIMIZERS

        layers = [LAYERS.get(c["name"]).from_config(c) for c in config["layers"]]
        return cls(
            layers,
            loss=LOSSES.from_config(config["loss"]),
            optimizer=OPTIMIZERS.get(config["optimizer"]["name"]).from_config(config["optimizer"]),
            dtype=dtype or config["dtype"],
            seed=config["seed"],
        )

    def copy(self, dtype: str | None = None) -> Network:
        """An independent deep copy (custom layers and activations included),
        optionally converted to another dtype; a dtype change resets the optimizer."""
        clone = copy.deepcopy(self)
        if dtype is not None and np.dtype(dtype) != clone.dtype:
            clone.dtype = np.dtype(dtype)
            if clone.dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype must be 'float32' or 'float64'. Received dtype={dtype!r}.")
            for layer in clone.layers:
                if isinstance(layer, Dense):
                    layer.build(clone.rng, clone.dtype)  # keeps the values, casts them
            clone.optimizer.reset()
        clone._bind_flat_buffers()  # deepcopy made the views independent arrays
        return clone

    def to_sklearn(self, classes: list[Any] | None = None) -> Any:
        """A fitted scikit-learn ``MLPClassifier``/``MLPRegressor`` with these weights; see
        ``nnscratch.export.to_sklearn`` (needs the sklearn extra)."""
        from .export import to_sklearn

        return to_sklearn(self, classes)

    def save(self, path: Any, include_optimizer: bool = True) -> None:
        """Write a safetensors file; see ``nnscratch.io.save``."""
        from .io import save

        save(self, path, include_optimizer=include_optimizer)
