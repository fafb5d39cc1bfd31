"""The classic two-layer network: no hidden layer, one sigmoid unit, no bias.

The output should learn to copy the first input column. Ten thousand
full-batch steps of ``W += X^T ((y - a) * a * (1 - a))``, which is gradient
descent on the quadratic cost ``sum 0.5 (a - y)^2`` with learning rate 1.

Run: ``python examples/two_layer.py``
"""

from __future__ import annotations

import numpy as np

import nnscratch as nn
from nnscratch.datasets import classic_table


def main(iterations: int = 10_000) -> np.ndarray:
    X, y = classic_table("first")  # y = [0, 0, 1, 1] as a column
    # The original drew its weights from NumPy's legacy global generator; so do
    # we, then hand them to the layer (nnscratch itself never touches global state).
    np.random.seed(1)
    weights = 2 * np.random.random((3, 1)) - 1
    net = nn.Network(
        [nn.Dense(3, 1, "sigmoid", bias=False, weights=weights)],
        loss=nn.Quadratic(reduction="sum"),
        optimizer=nn.SGD(1.0),
        dtype="float64",
    )
    net.fit(X, y, epochs=iterations - 1, batch_size=None, shuffle=False)
    output = net.predict(X)  # the forward pass of the last iteration...
    net.fit(X, y, epochs=1, batch_size=None, shuffle=False)  # ...and its update
    print("Output after training:")
    print(output)
    return output


if __name__ == "__main__":
    main()
