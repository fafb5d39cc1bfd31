"""The alternatives nnscratch is measured against, each timed per epoch.

Every function returns ``(run_epoch, predict)``: a callable that trains one
epoch and returns the seconds it took, and a function from images to labels.
All of them train on the same arrays with the same architecture, optimizer and
batch size; PyTorch is set up at its best on the CPU (same thread count, a
manual shuffled-index loop, ``fused=True`` Adam). The runner interleaves the
contenders epoch by epoch, so a slow spell of a noisy machine hits all alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _timed(run_epoch: Callable[[], None]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        run_epoch()
        return time.perf_counter() - start

    return timed


def torch_trainer(cfg: dict[str, Any], X: np.ndarray, y: np.ndarray, threads: int) -> tuple[Callable[[], float], Any]:
    """PyTorch CPU, manual shuffled-index mini-batch loop."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes, act = cfg["sizes"], cfg["activation"]
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if act == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    if cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], fused=True)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    Yt = torch.nn.functional.one_hot(yt, sizes[-1]).float()
    n, bs = X.shape[0], cfg["batch_size"]

    def epoch() -> None:
        perm = torch.randperm(n)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            out = model(Xt[idx])
            if cfg["loss"] == "quadratic":
                loss = 0.5 * ((torch.sigmoid(out) - Yt[idx]) ** 2).sum(dim=1).mean()
            else:
                loss = torch.nn.functional.cross_entropy(out, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def predict(data: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(data)).argmax(dim=1).numpy()

    return _timed(epoch), predict


def sklearn_trainer(cfg: dict[str, Any], X: np.ndarray, y: np.ndarray) -> tuple[Callable[[], float], Any]:
    """scikit-learn's MLPClassifier, one ``partial_fit`` (one epoch) at a time."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(cfg["sizes"][1:-1]),
        activation="relu" if cfg["activation"] == "relu" else "logistic",
        solver=cfg["optimizer"],
        learning_rate_init=cfg["lr"],
        batch_size=cfg["batch_size"],
        alpha=0.0,
        shuffle=True,
        random_state=0,
    )
    classes = np.arange(cfg["sizes"][-1])

    def epoch() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partial_fit's one-epoch ConvergenceWarning
            clf.partial_fit(X, y, classes=classes)

    return _timed(epoch), clf.predict


def naive_trainer(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[Callable[[], float], Any]:
    """Config B the classic way: per-sample backprop with column vectors, the
    gradients summed over each mini-batch of 10, then one SGD update."""
    sizes, eta, bs = [784, 30, 10], 3.0, 10
    weights = [rng.standard_normal((o, i)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.standard_normal((o, 1)) for o in sizes[1:]]
    targets = np.eye(10)[y][:, :, None]
    xs = X[:, :, None].astype(np.float64)

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    def epoch() -> None:
        order = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], bs):
            nabla_w = [np.zeros_like(w) for w in weights]
            nabla_b = [np.zeros_like(b) for b in biases]
            for i in order[start : start + bs]:
                activation, activations, zs = xs[i], [xs[i]], []
                for w, b in zip(weights, biases, strict=True):
                    z = w @ activation + b
                    zs.append(z)
                    activation = sigmoid(z)
                    activations.append(activation)
                delta = (activations[-1] - targets[i]) * activation * (1 - activation)
                nabla_b[-1] += delta
                nabla_w[-1] += delta @ activations[-2].T
                s = sigmoid(zs[-2])
                delta = (weights[-1].T @ delta) * s * (1 - s)
                nabla_b[-2] += delta
                nabla_w[-2] += delta @ activations[-3].T
            for j in range(2):
                weights[j] -= (eta / bs) * nabla_w[j]
                biases[j] -= (eta / bs) * nabla_b[j]

    def quiet_epoch() -> None:
        with np.errstate(over="ignore"):  # the classic sigmoid overflows harmlessly
            epoch()

    def predict(data: np.ndarray) -> np.ndarray:
        a = data.T.astype(np.float64)
        with np.errstate(over="ignore"):
            for w, b in zip(weights, biases, strict=True):
                a = sigmoid(w @ a + b)
        return a.argmax(axis=0)

    return _timed(quiet_epoch), predict
