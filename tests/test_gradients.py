"""Backpropagation equals central differences for every activation x loss x
layer combination, in float64: with and without bias, with L2/L1, with
dropout held fixed, with sample weights and both reductions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import nnscratch as nn

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
# Each loss with the output activations it accepts.
LOSS_OUTPUTS = {
    "quadratic": ["identity", "sigmoid", "tanh", "softmax", "leaky_relu"],
    "mse": ["identity", "sigmoid", "tanh", "softmax", "relu"],
    "binary_cross_entropy": ["sigmoid", "identity"],
    "cross_entropy": ["softmax", "identity"],
}
CASES = [(h, loss, out) for h in HIDDEN for loss, outs in LOSS_OUTPUTS.items() for out in outs]


def _data(loss: str, n: int = 6, n_out: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, n_out)).astype(float)
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


@pytest.mark.parametrize("hidden,loss,output", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_activation_loss_layer_combinations(hidden, loss, output, bias):
    X, y = _data(loss)
    layers = [nn.Dense(4, 5, hidden, bias=bias), nn.Dense(5, 3, output, bias=bias)]
    net = nn.Network(layers, loss=loss, optimizer="sgd", dtype="float64", seed=3)
    result = nn.gradcheck(net, X, y)
    assert result.passed, str(result)
    assert result.max_relative_error < 1e-5


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", sorted(LOSS_OUTPUTS))
def test_regularisation_weights_and_reduction(loss, reduction):
    X, y = _data(loss, n=8)
    weights = np.random.default_rng(5).uniform(0.1, 3.0, size=8)
    out = LOSS_OUTPUTS[loss][0]
    loss_obj = nn.losses.LOSSES.get(loss)(reduction=reduction)
    layers = [nn.Dense(4, 6, "tanh", l2=0.3, l1=0.05), nn.Dense(6, 3, out, l2=0.1)]
    net = nn.Network(layers, loss=loss_obj, dtype="float64", seed=4)
    result = nn.gradcheck(net, X, y, sample_weight=weights)
    assert result.passed, str(result)


def test_onehot_targets_and_deeper_network_with_dropout():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(10, 4))
    y = nn.functional.one_hot(rng.integers(0, 3, size=10), 3, dtype="float64")
    layers = [
        nn.Dense(4, 8, "relu"),
        nn.Dropout(0.4),
        nn.Dense(8, 8, "sigmoid", bias=False),
        nn.Dropout(0.2),
        nn.Dense(8, 3, "softmax"),
    ]
    net = nn.Network(layers, loss=nn.CrossEntropy(targets="onehot"), dtype="float64", seed=9)
    result = nn.gradcheck(net, X, y, max_params=None)
    assert result.passed, str(result)
    assert result.n_checked == net.n_params


def test_gradcheck_catches_a_wrong_derivative():
    class BrokenTanh(nn.Tanh):
        def backward(self, grad_a, out=None):
            return grad_a * (1.0 - self.a)  # wrong: should be 1 - a**2

    X, y = _data("mse")
    net = nn.Network([nn.Dense(4, 5, BrokenTanh()), nn.Dense(5, 3)], loss="mse", dtype="float64", seed=0)
    result = nn.gradcheck(net, X, y)
    assert not result.passed
    assert "FAILED" in str(result)


def test_gradcheck_does_not_modify_the_network():
    X, y = _data("cross_entropy")
    net = nn.Network.from_sizes([4, 5, 3], "tanh", seed=1)
    before = net.parameters.snapshot()
    nn.gradcheck(net, X, y)
    assert np.array_equal(before, net.parameters.snapshot())
    assert net.dtype == np.float32


def test_sparse_combinations_cover_every_pair():
    # Guard against the parametrisation silently shrinking.
    pairs = {(h, loss) for h, loss, _ in CASES}
    assert pairs == set(itertools.product(HIDDEN, LOSS_OUTPUTS))
