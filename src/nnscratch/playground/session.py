"""One playground page's state: its settings, data, network and what it shows.

A ``Session`` is the real engine with a small dictionary of settings in front
of it (the page keeps the same dictionary in its URL). ``train_epoch`` is one
``Network.fit(epochs=1)``; ``frame`` is what the page draws after it: the
losses, the output over the input plane and every hidden neuron's output over
the same plane (each Dense layer's ``forward`` on a grid), and the weights.
``explain`` runs ``nnscratch.explain`` on one point; ``export`` gives the model
file and the Python that rebuilds it. Nothing here touches the file system
except a private temporary file while exporting.
"""

from __future__ import annotations

import base64
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import Dense, Dropout, Network
from .._validation import check_choice, check_number
from ..explain import explain
from ..optimizers import get_optimizer
from ..schedules import CosineDecay, ExponentialDecay, StepDecay, get_schedule
from . import datasets

__all__ = ["Session", "SettingsError", "DEFAULTS", "FEATURES", "data_for", "features"]

FEATURES = {
    "x1": lambda X: X[:, 0],
    "x2": lambda X: X[:, 1],
    "x1^2": lambda X: X[:, 0] ** 2,
    "x2^2": lambda X: X[:, 1] ** 2,
    "x1*x2": lambda X: X[:, 0] * X[:, 1],
    "sin(x1)": lambda X: np.sin(X[:, 0]),
    "sin(x2)": lambda X: np.sin(X[:, 1]),
}
# Feature values are divided by these so that each lies roughly in [-1, 1].
_FEATURE_SCALE = {"x1": 6.0, "x2": 6.0, "x1^2": 36.0, "x2^2": 36.0, "x1*x2": 36.0, "sin(x1)": 1.0, "sin(x2)": 1.0}
ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu", "identity")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine")
MAX_LAYERS, MAX_UNITS = 6, 8
GRID, OUTPUT_GRID = 40, 80  # pixels per side of a neuron's map and of the output's

DEFAULTS: dict[str, Any] = {
    "dataset": "circle", "noise": 0, "train_ratio": 50, "points": 500, "seed": 1,
    "features": ["x1", "x2"], "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "tanh"}],
    "learning_rate": 0.03, "optimizer": "sgd", "schedule": "constant", "batch_size": 10,
    "regularization": "none", "reg_rate": 0.0, "dropout": 0.0,
}  # fmt: skip


class SettingsError(ValueError):
    """A setting the playground refuses; the message names it, what came and what is allowed."""


def _number(settings: dict[str, Any], key: str, low: float, high: float, integer: bool = False) -> float:
    """``settings[key]`` checked by ``_validation.check_number``, in [low, high]; a SettingsError if not."""
    try:
        value = check_number(key, settings[key], low, high, high_open=False, whole=integer)
    except ValueError as err:
        raise SettingsError(str(err)) from None
    return int(value) if integer else value


def _choice(settings: dict[str, Any], key: str, allowed: Any) -> Any:
    """``settings[key]`` if it is one of ``allowed`` (``_validation.check_choice``); a SettingsError if not."""
    try:
        return check_choice(key, settings[key], tuple(allowed))
    except ValueError as err:
        raise SettingsError(str(err)) from None


def check_settings(given: dict[str, Any], csv_loaded: bool = False) -> dict[str, Any]:
    """Defaults filled in and every value checked; unknown keys are refused."""
    if not isinstance(given, dict):
        raise SettingsError(f"settings must be an object; received {type(given).__name__}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"unknown setting(s) {unknown}; known: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **given}
    _choice(s, "dataset", [*datasets.GENERATORS, "csv"] if csv_loaded else list(datasets.GENERATORS))
    s["noise"] = _number(s, "noise", 0, 50, integer=True)
    s["train_ratio"] = _number(s, "train_ratio", 10, 90, integer=True)
    s["points"] = _number(s, "points", 50, 2000, integer=True)
    s["seed"] = _number(s, "seed", 0, 2**31 - 1, integer=True)
    s["batch_size"] = _number(s, "batch_size", 1, 500, integer=True)
    s["learning_rate"] = _number(s, "learning_rate", 1e-6, 10)
    s["reg_rate"] = _number(s, "reg_rate", 0, 10)
    s["dropout"] = _number(s, "dropout", 0, 0.9)
    _choice(s, "optimizer", OPTIMIZERS)
    _choice(s, "schedule", SCHEDULES)
    _choice(s, "regularization", ("none", "l1", "l2"))
    feats = s["features"]
    if (
        not isinstance(feats, list)
        or not feats
        or any(f not in FEATURES for f in feats)
        or len(set(feats)) < len(feats)
    ):
        raise SettingsError(f"features must list one or more of {', '.join(FEATURES)} once each; received {feats!r}")
    s["features"] = [f for f in FEATURES if f in feats]  # a fixed order
    layers = s["layers"]
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise SettingsError(f"layers must be a list of at most {MAX_LAYERS} hidden layers; received {layers!r}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or set(layer) != {"units", "activation"}:
            raise SettingsError(f"layer {i + 1} must be {{units, activation}}; received {layer!r}")
        _number(layer, "units", 1, MAX_UNITS, integer=True)
        _choice(layer, "activation", ACTIVATIONS)
    s["layers"] = [{"units": int(layer["units"]), "activation": layer["activation"]} for layer in layers]
    return s


def features(X: np.ndarray, names: list[str]) -> np.ndarray:
    """The chosen input features of points ``X`` (n, 2), each scaled to about [-1, 1]."""
    return np.column_stack([FEATURES[f](X) / _FEATURE_SCALE[f] for f in names])


def data_for(settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)`` in the plane for generated data (the same
    split the page shows; the exported code calls this)."""
    s = check_settings(settings)
    X, y = datasets.generate(s["dataset"], s["points"], s["noise"] / 100, s["seed"])
    return _split(X, y, s["train_ratio"], s["seed"])


def _split(X: np.ndarray, y: np.ndarray, ratio: int, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed + 1).permutation(len(X))
    cut = max(1, min(len(X) - 1, round(len(X) * ratio / 100)))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def _quantize(values: np.ndarray, low: float, high: float) -> str:
    """Values clipped to [low, high] as bytes 0..255, base64 (the page's colour scale)."""
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0
    return base64.b64encode(np.rint(scaled).astype(np.uint8).tobytes()).decode()


def _plane_grid(size: int) -> np.ndarray:
    ticks = np.linspace(-datasets.RANGE, datasets.RANGE, size)
    xx, yy = np.meshgrid(ticks, ticks[::-1])  # the first row is the top of the picture
    return np.column_stack([xx.ravel(), yy.ravel()])


class Session:
    """The engine behind one page."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.csv: tuple[np.ndarray, np.ndarray, str, list[str]] | None = None
        self.settings = check_settings(settings or {})
        self._load_data()
        self.reset()

    # --- settings, data and network --------------------------------------
    @property
    def problem(self) -> str:
        if self.settings["dataset"] == "csv" and self.csv is not None:
            return self.csv[2]
        return "regression" if self.settings["dataset"] in datasets.REGRESSION else "classification"

    @property
    def classes(self) -> list[str]:
        if self.problem == "regression":
            return []
        if self.settings["dataset"] == "csv" and self.csv is not None:
            return self.csv[3]
        return ["0", "1"]

    def configure(self, given: dict[str, Any]) -> None:
        """Apply new settings: the learning rate and regularisation rate change live;
        anything else regenerates the data and/or rebuilds the network."""
        new = check_settings(given, csv_loaded=self.csv is not None)
        old, self.settings = self.settings, new
        data_keys = ("dataset", "noise", "train_ratio", "points", "seed")
        if any(old[k] != new[k] for k in data_keys):
            self._load_data()
        live = ("learning_rate", "reg_rate")
        if any(old[k] != new[k] for k in data_keys) or any(
            old[k] != new[k] for k in DEFAULTS if k not in live + data_keys
        ):
            self.reset()
            return
        if old["learning_rate"] != new["learning_rate"]:
            self.network.optimizer.schedule = get_schedule(self._schedule())
        for layer in self.network.layers:
            if isinstance(layer, Dense):
                layer.l1 = new["reg_rate"] if new["regularization"] == "l1" else 0.0
                layer.l2 = new["reg_rate"] if new["regularization"] == "l2" else 0.0

    def load_csv(self, text: str) -> None:
        """Use the user's points (``x1,x2,target`` rows); raises ``datasets.DataError``."""
        self.csv = datasets.read_csv(text)
        self.settings = {**self.settings, "dataset": "csv"}
        self._load_data()
        self.reset()

    def _load_data(self) -> None:
        s = self.settings
        if s["dataset"] == "csv" and self.csv is not None:
            X, y = self.csv[0], self.csv[1]
        else:
            X, y = datasets.generate(s["dataset"], s["points"], s["noise"] / 100, s["seed"])
        self.X_train, self.y_train, self.X_test, self.y_test = _split(X, y, s["train_ratio"], s["seed"])

    def _schedule(self) -> Any:
        s, steps = self.settings, max(1, math.ceil(len(self.X_train) / self.settings["batch_size"]))
        lr = s["learning_rate"]
        return {"constant": lambda: lr, "step": lambda: StepDecay(lr, step_size=100 * steps, gamma=0.5),
                "exponential": lambda: ExponentialDecay(lr, decay_rate=0.5, decay_steps=200 * steps),
                "cosine": lambda: CosineDecay(lr, decay_steps=500 * steps)}[s["schedule"]]()  # fmt: skip

    def build_network(self) -> Network:
        """A fresh network for the current settings (the same seed gives the same weights)."""
        s = self.settings
        l1 = s["reg_rate"] if s["regularization"] == "l1" else 0.0
        l2 = s["reg_rate"] if s["regularization"] == "l2" else 0.0
        width, layers = len(s["features"]), []
        for spec in s["layers"]:
            layers.append(Dense(width, spec["units"], spec["activation"], l1=l1, l2=l2))
            if s["dropout"]:
                layers.append(Dropout(s["dropout"]))
            width = spec["units"]
        k = len(self.classes)
        if self.problem == "regression":
            layers.append(Dense(width, 1, "identity", l1=l1, l2=l2))
            loss = "mse"
        elif k == 2:
            layers.append(Dense(width, 1, "sigmoid", l1=l1, l2=l2))
            loss = "binary_cross_entropy"
        else:
            layers.append(Dense(width, k, "softmax", l1=l1, l2=l2))
            loss = "cross_entropy"
        name = s["optimizer"]
        optimizer = get_optimizer("sgd", learning_rate=self._schedule(), momentum=0.9) if name == "momentum" else \
            get_optimizer(name, learning_rate=self._schedule())  # fmt: skip
        return Network(layers, loss=loss, optimizer=optimizer, dtype="float64", seed=s["seed"])

    def reset(self) -> None:
        """New weights, epoch 0, empty loss curves."""
        self.network = self.build_network()
        self.epoch = 0
        self.curve: list[tuple[float, float]] = []
        self.curve.append(self.losses())

    # --- training and what the page draws ----------------------------------
    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return features(X, self.settings["features"])

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.problem == "regression" or len(self.classes) == 2:
            return y.reshape(-1, 1).astype(float)
        return y

    def losses(self) -> tuple[float, float]:
        """Train and test loss (test: nan when there is no test data)."""
        train = self.network.evaluate(self._inputs(self.X_train), self._targets(self.y_train))["loss"]
        test = self.network.evaluate(self._inputs(self.X_test), self._targets(self.y_test))["loss"] \
            if len(self.X_test) else float("nan")  # fmt: skip
        return float(train), float(test)

    def train_epoch(self) -> None:
        """One epoch of ``Network.fit``, then the losses for the curve."""
        self.network.fit(self._inputs(self.X_train), self._targets(self.y_train), epochs=1,
                         batch_size=min(self.settings["batch_size"], len(self.X_train)))  # fmt: skip
        self.epoch += 1
        self.curve.append(self.losses())
        del self.curve[:-1000]  # the chart shows the last 1,000 epochs

    def data_message(self) -> dict[str, Any]:
        """The points, the classes and each input feature's picture (sent when they change)."""
        grid = _plane_grid(GRID)
        return {
            "type": "data", "problem": self.problem, "classes": self.classes, "settings": self.settings,
            "train": {"x": self.X_train.round(4).tolist(), "y": self.y_train.tolist()},
            "test": {"x": self.X_test.round(4).tolist(), "y": self.y_test.tolist()},
            "features": {f: _quantize(features(grid, [f])[:, 0], -1, 1) for f in FEATURES},
            "grid": GRID, "output_grid": OUTPUT_GRID, "range": datasets.RANGE,
        }  # fmt: skip

    def frame(self) -> dict[str, Any]:
        """Losses, the output over the plane, every hidden neuron's map and the weights."""
        net = self.network
        neurons: list[list[str]] = []
        h = self._inputs(_plane_grid(GRID))
        for layer in net.layers[:-1]:
            h = layer.forward(h)  # inference: Dropout passes h through
            if isinstance(layer, Dense):
                neurons.append([_quantize(h[:, j], -1, 1) for j in range(h.shape[1])])
        out = net.predict(self._inputs(_plane_grid(OUTPUT_GRID)))
        if self.problem == "regression":
            surface = {"kind": "value", "values": _quantize(out[:, 0], -1, 1)}
        elif out.shape[1] == 1:
            surface = {"kind": "binary", "values": _quantize(out[:, 0], 0, 1)}
        else:
            labels = base64.b64encode(out.argmax(axis=1).astype(np.uint8).tobytes()).decode()
            surface = {"kind": "classes", "labels": labels, "values": _quantize(out.max(axis=1), 0, 1)}
        dense = [layer for layer in net.layers if isinstance(layer, Dense)]
        return {
            "type": "frame", "epoch": self.epoch, "neurons": neurons, "surface": surface,
            "curve": [None if math.isnan(v) else v for v in self.curve[-1]],
            "weights": [layer.params["W"].round(5).tolist() for layer in dense],
            "biases": [layer.params["b"].round(5).tolist() for layer in dense],
        }  # fmt: skip

    # --- explain and export ------------------------------------------------
    def explain(self, x1: float, x2: float) -> dict[str, Any]:
        """One backpropagation step (plain gradient descent at the page's learning rate)
        on the training point nearest to (x1, x2), every number from ``nnscratch.explain``;
        the network itself is not changed."""
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (x1, x2)):
            raise SettingsError(f"explain needs two finite numbers; received {x1!r}, {x2!r}")
        i = int(np.argmin(((self.X_train - [x1, x2]) ** 2).sum(axis=1)))
        point, target = self.X_train[i], self._targets(self.y_train[i : i + 1])[0]
        net = self.network
        if any(isinstance(layer, Dropout) for layer in net.layers):  # dropout is off in a worked step
            clone = net.copy()
            net = Network([layer for layer in clone.layers if isinstance(layer, Dense)], loss=clone.loss,
                          dtype=clone.dtype)  # fmt: skip
        step = explain(net, self._inputs(point[None, :])[0], target, self.settings["learning_rate"])  # on a copy

        def arr(a: Any) -> Any:
            return None if a is None else np.asarray(a).tolist()

        return {
            "type": "explain", "point": point.tolist(), "target": arr(target), "x": arr(step.x),
            "learning_rate": step.learning_rate, "loss": step.loss, "cost": step.cost,
            "cost_updated": step.cost_updated, "output_updated": arr(step.output_updated),
            "layers": [{k: arr(getattr(s, k)) for k in ("z", "a", "dC_da", "dC_dz", "dC_dW", "dC_db", "W", "b",
                                                        "W_updated", "b_updated")} | {"activation": s.activation}
                       for s in step.layers],
        }  # fmt: skip

    def export(self) -> dict[str, Any]:
        """The model file (base64 of what ``nnscratch.load`` reads) and the Python that rebuilds it."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "playground.safetensors"
            self.network.save(path, extra={"playground": self.settings, "classes": self.classes})
            blob = path.read_bytes()
        return {"type": "export", "model": base64.b64encode(blob).decode(), "code": self.code()}

    def code(self) -> str:
        """A short script that builds and trains the same network on the same data."""
        s, net = self.settings, self.network
        layers = ",\n    ".join(_layer_code(layer) for layer in net.layers)
        data = "generated" if s["dataset"] != "csv" else "csv"
        lines = [
            "import nnscratch as nn",
            "from nnscratch.playground.session import data_for, features",
            "",
            f"settings = {s!r}",
        ]
        if data == "csv":
            lines += ["# Your CSV: put its rows, scaled as the page scaled them, in X_train / y_train."]
        lines += [
            "X_train, y_train, X_test, y_test = data_for(settings)",
            'F_train = features(X_train, settings["features"])',
            f"net = nn.Network([\n    {layers},\n], loss={net.loss.registry_name!r},\n"
            f'    optimizer={_optimizer_code(net.optimizer)}, dtype="float64", seed={s["seed"]})',
            f"net.fit(F_train, {'y_train' if len(self.classes) > 2 else 'y_train.reshape(-1, 1)'}, "
            f"epochs={max(self.epoch, 1)}, batch_size={min(s['batch_size'], len(self.X_train))})",
            'print(net.evaluate(features(X_test, settings["features"]), '
            f"{'y_test' if len(self.classes) > 2 else 'y_test.reshape(-1, 1)'}))",
        ]
        return "\n".join(lines) + "\n"


def _optimizer_code(optimizer: Any) -> str:
    config = optimizer.get_config()
    schedule = config.pop("learning_rate")
    name = schedule.pop("name")
    rate = repr(schedule["initial"]) if name == "constant" else \
        f"nn.{type(optimizer.schedule).__name__}({', '.join(f'{k}={v!r}' for k, v in schedule.items())})"  # fmt: skip
    args = "".join(f", {k}={v!r}" for k, v in config.items() if k != "name")
    return f"nn.{type(optimizer).__name__}({rate}{args})"


def _layer_code(layer: Any) -> str:
    if isinstance(layer, Dropout):
        return f"nn.Dropout({layer.rate})"
    extra = "".join(f", {k}={getattr(layer, k)}" for k in ("l1", "l2") if getattr(layer, k))
    return f'nn.Dense({layer.n_in}, {layer.n_out}, "{layer.activation.registry_name}"{extra})'
