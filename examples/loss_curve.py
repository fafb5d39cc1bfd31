"""A small neural network class with a loss plot: 3 -> 4 -> 1 sigmoid, no biases,
weights uniform in [0, 1), sum-of-squares loss ``sum (y - a)^2``, learning rate 1,
1,500 full-batch iterations. It saves the loss per iteration as a PNG.

Run: ``python examples/loss_curve.py [--out loss_curve.png]``
"""

from __future__ import annotations

import argparse

import numpy as np

import nnscratch as nn
from nnscratch.datasets import classic_table
from nnscratch.plots import plot_history


def main(out: str = "loss_curve.png", iterations: int = 1500, seed: int = 2) -> tuple[list[float], np.ndarray]:
    X, y = classic_table("xor")
    net = nn.Network(
        [
            nn.Dense(3, 4, "sigmoid", bias=False, initializer="uniform01"),
            nn.Dense(4, 1, "sigmoid", bias=False, initializer="uniform01"),
        ],
        loss=nn.MeanSquaredError(reduction="sum"),  # one output: sum over samples of (a - y)^2
        optimizer=nn.SGD(1.0),
        dtype="float64",
        seed=seed,
    )
    history = net.fit(X, y, epochs=iterations, batch_size=None, shuffle=False)
    plot_history(history, path=out, title="sum-of-squares loss (3-4-1 sigmoid, XOR table)", xlabel="iteration")
    predictions = net.predict(X)
    print(
        f"Loss: {history.history['loss'][0]:.4f} at the first iteration, {history.history['loss'][-1]:.6f} at the last"
    )
    print("Predictions:", np.round(predictions.ravel(), 4), "targets:", y.ravel())
    print(f"Loss plot saved to {out}")
    return history.history["loss"], predictions


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="loss_curve.png")
    main(parser.parse_args().out)
