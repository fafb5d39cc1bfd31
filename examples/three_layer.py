"""The classic three-layer network: 3 -> 4 -> 1 sigmoid, no biases, learning XOR
of the first two inputs (the third input is a constant 1).

Sixty thousand full-batch steps of backpropagation on the quadratic cost with
learning rate 1; every 10,000 iterations it prints the mean absolute error of
that iteration's forward pass (before its update), at full precision.

Run: ``python examples/three_layer.py``
"""

from __future__ import annotations

import numpy as np

import nnscratch as nn
from nnscratch.datasets import classic_table


def main(iterations: int = 60_000, every: int = 10_000) -> list[float]:
    X, y = classic_table("xor")  # y = [0, 1, 1, 0] as a column
    np.random.seed(1)  # the original's legacy global generator, drawn in its order
    syn0 = 2 * np.random.random((3, 4)) - 1
    syn1 = 2 * np.random.random((4, 1)) - 1
    net = nn.Network(
        [nn.Dense(3, 4, "sigmoid", bias=False, weights=syn0), nn.Dense(4, 1, "sigmoid", bias=False, weights=syn1)],
        loss=nn.Quadratic(reduction="sum"),
        optimizer=nn.SGD(1.0),
        dtype="float64",
    )
    errors = []
    for _ in range(0, iterations, every):
        error = float(np.mean(np.abs(y - net.predict(X))))
        errors.append(error)
        print("Error:" + repr(error))
        net.fit(X, y, epochs=every, batch_size=None, shuffle=False)
    return errors


if __name__ == "__main__":
    main()
