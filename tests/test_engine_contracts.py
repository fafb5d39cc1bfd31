"""The engine's contracts with its callers: no hidden mutation, repeatable
backward passes, parameters as one public object, losses that own
classification, optimizer state that survives a file."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.activations import ACTIVATIONS, get_activation

ACTIVATION_NAMES = sorted(ACTIVATIONS.names())


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activations_leave_their_arguments_alone_without_out(name):
    rng = np.random.default_rng(0)
    z, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    z0, g0 = z.copy(), g.copy()
    act = get_activation(name)
    a = act.forward(z)
    first = act.backward(g)
    second = act.backward(g)
    assert np.array_equal(z, z0) and np.array_equal(g, g0)
    assert a is not z and first is not g
    np.testing.assert_array_equal(first, second)  # backward twice: the same answer


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activations_work_in_place_when_asked_and_agree(name):
    rng = np.random.default_rng(1)
    z, g = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    plain = get_activation(name)
    a_ref, g_ref = plain.forward(z), plain.backward(g)
    inplace = get_activation(name)
    zz, gg = z.copy(), g.copy()
    a = inplace.forward(zz, out=zz)
    grad = inplace.backward(gg, out=gg)
    assert a is zz and grad is gg
    np.testing.assert_allclose(a, a_ref, rtol=1e-15)
    np.testing.assert_allclose(grad, g_ref, rtol=1e-15)


@pytest.mark.parametrize("loss", ["quadratic", "mse", "binary_cross_entropy", "cross_entropy"])
def test_loss_backward_twice_gives_the_same_gradient(loss):
    rng = np.random.default_rng(2)
    out = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, 6) if loss == "cross_entropy" else (rng.random((6, 3)) > 0.5).astype(float)
    fn = nn.losses.get_loss(loss)
    out0 = out.copy()
    fn.forward(out, y)
    first, second = fn.backward(), fn.backward()
    np.testing.assert_array_equal(first, second)
    assert first is not second and np.array_equal(out, out0)


def test_dense_backward_is_repeatable_and_keeps_its_argument():
    layer = nn.Dense(4, 3, "sigmoid")
    layer.build(np.random.default_rng(0), np.dtype("float64"))
    x, g = np.random.default_rng(3).normal(size=(5, 4)), np.ones((5, 3))
    layer.forward(x)
    first = layer.backward(g)
    grads = layer.grads["W"].copy()
    second = layer.backward(g)
    assert np.array_equal(g, np.ones((5, 3)))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(grads, layer.grads["W"])


def test_forward_backward_is_repeatable():
    net = nn.Network.from_sizes([3, 5, 2], "tanh", dtype="float64", seed=0)
    X, y = np.random.default_rng(4).normal(size=(7, 3)), np.array([0, 1, 1, 0, 1, 0, 1])
    loss1, _ = net.forward_backward(X, y)
    g1 = net.parameters.grads.copy()
    loss2, _ = net.forward_backward(X, y)
    assert loss1 == loss2
    np.testing.assert_array_equal(g1, net.parameters.grads)


def test_parameters_are_one_public_object():
    net = nn.Network.from_sizes([3, 4, 2], seed=0)
    p = net.parameters
    assert p.names == ["layers.0.W", "layers.1.W", "layers.0.b", "layers.1.b"]
    assert p.size == net.n_params == 3 * 4 + 4 * 2 + 4 + 2
    assert np.shares_memory(p["layers.1.W"], p.values) and p["layers.1.W"] is net.layers[1].params["W"]
    snap = p.snapshot()
    p.values += 1.0
    assert not np.array_equal(p.values, snap)
    p.restore(snap)
    np.testing.assert_array_equal(p.values, snap)
    state = p.state_dict()
    other = nn.Network.from_sizes([3, 4, 2], seed=1)
    other.parameters.load_state_dict(state)
    np.testing.assert_array_equal(other.parameters.values, p.values)
    with pytest.raises(KeyError, match="layers.0.W"):
        other.parameters.load_state_dict({"layers.0.b": state["layers.0.b"]})
    with pytest.raises(ValueError, match="Expected 26 parameters"):
        p.restore(np.zeros(3))
    assert repr(p) == "Parameters(26 values in 4 arrays, float32)"


def test_copies_and_pickles_rebind_one_flat_buffer_and_store_each_weight_once():
    net = nn.Network.from_sizes([20, 30, 2], seed=0)
    for clone in (net.copy(), pickle.loads(pickle.dumps(net))):
        assert np.shares_memory(clone.layers[0].params["W"], clone.parameters.values)
        assert not np.shares_memory(clone.parameters.values, net.parameters.values)
        np.testing.assert_array_equal(clone.parameters.values, net.parameters.values)
    assert len(pickle.dumps(net)) < 1.5 * net.parameters.values.nbytes + 20_000


def test_losses_own_classification():
    ce, bce = nn.CrossEntropy(), nn.BinaryCrossEntropy()
    z = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    np.testing.assert_allclose(ce.probabilities(z).sum(axis=1), 1.0)
    np.testing.assert_array_equal(ce.labels(z), [0, 1])
    assert ce.count_correct(z, np.array([0, 2])) == 1
    assert ce.count_predictions(np.array([0, 2])) == 2
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731 - the inverse of sigmoid
    single = logit(np.array([[0.2], [0.7], [0.5]]))
    np.testing.assert_allclose(bce.probabilities(single), [[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    np.testing.assert_array_equal(bce.labels(single), [0, 1, 0])
    multi = logit(np.array([[0.5, 0.4]]))
    np.testing.assert_array_equal(bce.labels(multi), [[1, 0]])
    y = bce.check_targets([[1, 0]], 1, 2, np.dtype("float32"))
    assert bce.count_correct(multi, y) == 1 and bce.count_predictions(y) == 2
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        bce.check_targets([[2, 0]], 1, 2, np.dtype("float32"))
    with pytest.raises(ValueError, match="labels from 0 to 3"):
        ce.check_targets([0, 3], 2, 3, np.dtype("float32"))


def test_optimizer_state_dict_round_trips_and_training_resumes_identically():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    a = nn.Network.from_sizes([3, 6, 2], optimizer=nn.AdamW(0.01), seed=0)
    a.fit(X, y, epochs=2, batch_size=8, shuffle=False)
    b = nn.Network.from_sizes([3, 6, 2], optimizer=nn.AdamW(0.01), seed=9)
    b.load_state_dict(a.state_dict())
    assert b.optimizer.iterations == a.optimizer.iterations == 10
    a.fit(X, y, epochs=1, batch_size=8, shuffle=False)
    b.fit(X, y, epochs=1, batch_size=8, shuffle=False)
    np.testing.assert_array_equal(a.parameters.values, b.parameters.values)
    with pytest.raises(ValueError, match="lacks"):
        nn.Adam().load_state_dict({"iterations": 1, "state": {"params": {"m": np.zeros(2)}}})


def test_adam_moments_are_the_papers():
    opt = nn.Adam(0.1, beta1=0.9, beta2=0.99)
    p, g = np.zeros(2), np.array([1.0, -2.0])
    opt.step({"p": p}, {"p": g})
    state = opt.state_dict()["state"]["p"]
    np.testing.assert_allclose(state["m"], 0.1 * g)
    np.testing.assert_allclose(state["v"], 0.01 * g * g)


def test_a_format_1_file_with_rescaled_adam_moments_is_converted(tmp_path):
    from safetensors.numpy import load_file, save_file

    net = nn.Network.from_sizes([3, 4, 2], optimizer=nn.Adam(0.01, beta1=0.8, beta2=0.9), seed=0)
    net.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=2, batch_size=2)
    path = tmp_path / "m.safetensors"
    net.save(path)
    tensors, meta = load_file(path), nn.io.read_metadata(path)
    # Format 1 kept m / (1 - beta1) and v / (1 - beta2), and had no checksum.
    tensors["optimizer.params.m"] = tensors["optimizer.params.m"] / np.float32(0.2)
    tensors["optimizer.params.v"] = tensors["optimizer.params.v"] / np.float32(0.1)
    old = {"format": "nnscratch", "format_version": "1", "config": json.dumps(meta["config"]),
           "optimizer_state": json.dumps(meta["optimizer_state"]), "extra": "{}"}  # fmt: skip
    save_file(tensors, path, metadata=old)
    loaded = nn.load(path).optimizer.state_dict()["state"]["params"]
    original = net.optimizer.state_dict()["state"]["params"]
    np.testing.assert_allclose(loaded["m"], original["m"], rtol=1e-6)
    np.testing.assert_allclose(loaded["v"], original["v"], rtol=1e-6)
