"""The chain rule by hand: one backpropagation step with every number shown.

Part 1: input -> 1 sigmoid neuron -> 1 sigmoid neuron, input 0.8, w1 = 1.58,
b1 = -0.14, w2 = 2.45, b2 = -0.11, target 1, cost 0.5 (a - y)^2, learning
rate 0.1. Layer 1's gradients use layer 2's weight from before its update.

Part 2: the same step on a 2 -> 3 -> 2 sigmoid network, weights given (and
printed) as (out, in) matrices, as the original wrote them.

Both are read off ``nnscratch.explain``, which records every intermediate.

Run: ``python examples/worked_step.py``
"""

from __future__ import annotations

import numpy as np

import nnscratch as nn
from nnscratch.explain import explain


def chain() -> dict[str, float]:
    net = nn.Network(
        [
            nn.Dense(1, 1, "sigmoid", weights=[[1.58]], biases=[-0.14]),
            nn.Dense(1, 1, "sigmoid", weights=[[2.45]], biases=[-0.11]),
        ],
        loss=nn.Quadratic(),
        optimizer="sgd",
        dtype="float64",
    )
    step = explain(net, [0.8], [1.0], learning_rate=0.1)
    l1, l2 = step.layers
    values = {
        "z_l1": l1.z, "a_l1": l1.a, "z_l2": l2.z, "a_l2": l2.a,
        "dc_db_l2": l2.dC_db, "dc_dw_l2": l2.dC_dW, "dc_da_l1": l2.dC_da_in,
        "updated_b_l2": l2.b_updated, "updated_w_l2": l2.W_updated,
        "dc_db_l1": l1.dC_db, "dc_dw_l1": l1.dC_dW,
        "updated_b_l1": l1.b_updated, "updated_w_l1": l1.W_updated,
        "updated_a_l2": step.output_updated,
        "original_cost": step.cost, "updated_cost": step.cost_updated,
    }  # fmt: skip
    values = {name: float(np.asarray(v).ravel()[0]) for name, v in values.items()}
    for name, value in values.items():
        print(f"{name} = {value!r}")
    return values


def two_three_two() -> dict[str, np.ndarray]:
    # (out, in) as the original wrote them; nnscratch's W is (in, out), so transpose.
    W1 = np.array([[-0.11499179, 0.454649], [-0.65801895, 0.56618695], [-0.15686814, -0.87499479]])
    b1 = np.array([0.54001045, 0.75958375, 0.01870296])
    W2 = np.array([[0.01071228, -0.49139708, -0.81775586], [-0.87455946, -0.08351883, -0.77534763]])
    b2 = np.array([-0.32783478, 0.06061246])
    net = nn.Network(
        [nn.Dense(2, 3, "sigmoid", weights=W1.T, biases=b1), nn.Dense(3, 2, "sigmoid", weights=W2.T, biases=b2)],
        loss=nn.Quadratic(),
        optimizer="sgd",
        dtype="float64",
    )
    step = explain(net, [0.8, 0.2], [0.0, 1.0], learning_rate=0.1)
    updated = {
        "W1": step.layers[0].W_updated.T, "b1": step.layers[0].b_updated,
        "W2": step.layers[1].W_updated.T, "b2": step.layers[1].b_updated,
    }  # fmt: skip
    for name, value in updated.items():
        print(f"{name} =\n{np.array2string(value, precision=17, separator=', ')}")
    return updated


def main() -> tuple[dict[str, float], dict[str, np.ndarray]]:
    print("Part 1: input -> sigmoid -> sigmoid")
    values = chain()
    print("\nPart 2: 2 -> 3 -> 2 sigmoid network, one step (weights as (out, in))")
    return values, two_three_two()


if __name__ == "__main__":
    main()
