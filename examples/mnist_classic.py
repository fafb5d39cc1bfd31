"""MNIST, the book's network: 784 -> 30 -> 10 sigmoid, quadratic cost averaged
over each mini-batch, standard-normal weights and biases, mini-batch SGD with
batch 10 and learning rate 3.0 for 30 epochs on the 50,000 training images,
printing ``Epoch k: correct / 10000`` on the test images after each epoch.

Run: ``python examples/mnist_classic.py`` (MNIST is found through
``NNSCRATCH_DATA`` or downloaded; see ``nnscratch.datasets.load_mnist``), or
``--hidden 16 16`` for two hidden layers, ``--hidden`` with nothing after it for
no hidden layer.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import nnscratch as nn
from nnscratch.datasets import load_mnist


class PrintTestScore(nn.Callback):
    """After each epoch: how many test images the network classifies correctly."""

    def __init__(self, X_test: np.ndarray, y_test: np.ndarray) -> None:
        self.X_test, self.y_test = X_test, y_test
        self.scores: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        correct = int(np.sum(self.network.predict(self.X_test).argmax(axis=1) == self.y_test))
        self.scores.append(correct)
        print(f"Epoch {epoch}: {correct} / {len(self.y_test)}")


def main(hidden: tuple[int, ...] = (30,), epochs: int = 30, seed: int = 0) -> list[int]:
    (X, y), _, (X_test, y_test) = load_mnist()
    sizes = [784, *hidden, 10]
    layers = [
        nn.Dense(n_in, n_out, "sigmoid", initializer="normal", bias_initializer="normal")
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    net = nn.Network(layers, loss=nn.Quadratic(reduction="mean"), optimizer=nn.SGD(3.0), seed=seed)
    score = PrintTestScore(X_test, y_test)
    net.fit(X, nn.functional.one_hot(y, 10), epochs=epochs, batch_size=10, callbacks=[score])
    return score.scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="*", default=[30], help="hidden layer sizes (default 30)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(tuple(args.hidden), args.epochs, args.seed)
