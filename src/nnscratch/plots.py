"""Plots of training and of what a network learned.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, so no
display and no global figure state: safe on a headless server), returns it,
and saves it when given ``path``. matplotlib is imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .extras import require

__all__ = [
    "plot_history",
    "plot_decision_boundary",
    "plot_decision_boundaries",
    "plot_confusion_matrix",
    "plot_first_layer_weights",
    "plot_mistakes",
]

PathLike = str | os.PathLike[str] | None


def _figure(width: float, height: float) -> Any:
    require("matplotlib", "plots")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _finish(fig: Any, path: PathLike) -> Any:
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def plot_history(
    history: Any, path: PathLike = None, title: str | None = None, log_loss: bool = False, xlabel: str = "epoch"
) -> Any:
    """Loss (and accuracy, when logged) per epoch, training and validation.

    ``history`` is a ``History``, its ``.history`` dict, or a plain list of
    losses; ``xlabel="iteration"`` suits full-batch training.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        logs = {"loss": list(logs)}
    metrics = [m for m in ("loss", "accuracy") if m in logs]
    fig = _figure(5.5 * len(metrics), 4)  # says which extra installs matplotlib when it is missing
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        epochs = np.arange(1, len(logs[metric]) + 1)
        ax.plot(epochs, logs[metric], label=f"training {metric}", color="tab:blue")
        if f"val_{metric}" in logs:
            ax.plot(epochs, logs[f"val_{metric}"], label=f"validation {metric}", color="tab:orange")
        ax.legend()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric} (on the training data)" if f"val_{metric}" not in logs else metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric == "loss" and log_loss:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _label_function(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(model, "predict_labels"):
        return model.predict_labels
    if hasattr(model, "predict"):
        return model.predict
    if callable(model):
        return model
    raise TypeError(f"Expected a network, an estimator with predict(), or a function. Received {model!r}.")


def _draw_boundary(ax: Any, model: Any, X: np.ndarray, y: np.ndarray, resolution: int, title: str | None) -> None:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"Decision boundaries need 2-D inputs. Received X of shape {X.shape}.")
    pad = 0.5
    (x0, y0), (x1, y1) = X.min(axis=0) - pad, X.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32 if X.dtype == np.float32 else np.float64)
    zz = np.asarray(_label_function(model)(grid)).reshape(xx.shape)
    y = np.asarray(y)
    n_classes = int(max(zz.max(), y.max() if y.size else 0)) + 1
    ax.contourf(xx, yy, zz, alpha=0.35, cmap="coolwarm", levels=np.arange(n_classes + 1) - 0.5,
                vmin=0, vmax=max(n_classes - 1, 1))  # fmt: skip
    points = ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", linewidths=0.5, s=18,
                        vmin=0, vmax=max(n_classes - 1, 1))  # fmt: skip
    handles, _ = points.legend_elements()  # one marker per class present, in its colour
    present = np.unique(y).astype(int).tolist()
    ax.legend(handles, [f"class {c}" for c in present], title="true class (points)\npredicted (shading)",
              fontsize=7, title_fontsize=7, loc="best")  # fmt: skip
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)


def plot_decision_boundary(
    model: Any, X: np.ndarray, y: np.ndarray, path: PathLike = None, title: str | None = None, resolution: int = 250
) -> Any:
    """Predicted class over the plane, with the data points on top (2-D inputs)."""
    fig = _figure(5.5, 4.5)
    _draw_boundary(fig.add_subplot(), model, X, y, resolution, title)
    return _finish(fig, path)


def plot_decision_boundaries(
    models: Mapping[str, Any], X: np.ndarray, y: np.ndarray, path: PathLike = None, ncols: int = 4,
    title: str | None = None, resolution: int = 150,
) -> Any:  # fmt: skip
    """A grid of decision boundaries, one panel per model (e.g. per hidden size)."""
    n = len(models)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = _figure(3.6 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, model) in zip(axes, models.items(), strict=False):
        _draw_boundary(ax, model, X, y, resolution, name)
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_confusion_matrix(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None, path: PathLike = None,
    normalize: bool = False, title: str | None = None,
) -> Any:  # fmt: skip
    """Counts (or row fractions) of true class against predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.asarray(labels) if labels is not None else np.unique(np.concatenate([y_true, y_pred]))
    index = {c: i for i, c in enumerate(classes.tolist())}
    matrix = np.zeros((len(classes), len(classes)))
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        matrix[index[t], index[p]] += 1
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(classes)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=45 if len(classes) > 10 else 0)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(classes) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            color = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
    ax.set_title(title or ("confusion matrix (row fractions)" if normalize else "confusion matrix"))
    return _finish(fig, path)


def plot_first_layer_weights(
    network: Any, image_shape: tuple[int, int] | None = None, path: PathLike = None, max_units: int = 64,
    title: str | None = None,
) -> Any:  # fmt: skip
    """Each first-layer unit's incoming weights drawn as an image (28x28 for MNIST)."""
    W = np.asarray(network.layers[0].params["W"])
    n_in = W.shape[0]
    if image_shape is None:
        side = int(round(np.sqrt(n_in)))
        if side * side != n_in:
            raise ValueError(f"{n_in} inputs are not a square image; pass image_shape=(rows, cols).")
        image_shape = (side, side)
    if image_shape[0] * image_shape[1] != n_in:
        raise ValueError(f"image_shape {image_shape} does not hold the first layer's {n_in} inputs.")
    units = min(W.shape[1], max_units)
    ncols = int(np.ceil(np.sqrt(units)))
    nrows = -(-units // ncols)
    fig = _figure(1.3 * ncols, 1.3 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= units:
            ax.set_visible(False)
            continue
        w = W[:, k].reshape(image_shape)
        limit = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {k}", fontsize=7)
    shown = f"{units} of {W.shape[1]} units" if units < W.shape[1] else f"all {units} units"
    fig.suptitle(title or f"first-layer weights, {shown} (red positive, blue negative)")
    return _finish(fig, path)


def plot_mistakes(
    X: np.ndarray, y_true: np.ndarray, proba: np.ndarray, image_shape: tuple[int, int] = (28, 28), n: int = 16,
    classes: Sequence[Any] | None = None, path: PathLike = None, title: str | None = None,
) -> Any:  # fmt: skip
    """The ``n`` wrong predictions made with the highest confidence, as images."""
    proba = np.asarray(proba)
    predicted = proba.argmax(axis=1)
    names = list(classes) if classes is not None else list(range(proba.shape[1]))
    wrong = np.flatnonzero(predicted != np.asarray(y_true))
    order = wrong[np.argsort(-proba[wrong, predicted[wrong]])][:n]
    ncols = min(8, max(len(order), 1))
    nrows = max(1, -(-len(order) // ncols))
    fig = _figure(1.6 * ncols, 1.9 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    for ax, i in zip(axes, order, strict=False):
        ax.set_visible(True)
        ax.imshow(np.asarray(X[i]).reshape(image_shape), cmap="gray_r")
        ax.set_title(f"true {names[y_true[i]]}\npred {names[predicted[i]]} ({proba[i, predicted[i]]:.1%})", fontsize=8)
    fig.suptitle(title or f"most confident mistakes ({len(wrong)} wrong in all)")
    return _finish(fig, path)
