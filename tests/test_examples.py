"""The classic examples reproduce the originals' numbers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.explain import explain

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def restore_global_rng():
    """The examples seed NumPy's legacy global generator on purpose; put it back."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def test_two_layer_output(capsys):
    out = example("two_layer").main()
    np.testing.assert_array_equal(np.round(out, 8), [[0.00966449], [0.00786506], [0.99358898], [0.99211957]])
    assert capsys.readouterr().out.startswith("Output after training:\n[[0.00966449]")


def _three_layer_original() -> list[float]:
    """The original program's loop, verbatim in spirit: the oracle for the example."""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
    y = np.array([[0, 1, 1, 0]]).T
    np.random.seed(1)
    syn0 = 2 * np.random.random((3, 4)) - 1
    syn1 = 2 * np.random.random((4, 1)) - 1
    errors = []
    for j in range(60000):
        l1 = 1 / (1 + np.exp(-(X @ syn0)))
        l2 = 1 / (1 + np.exp(-(l1 @ syn1)))
        l2_error = y - l2
        if j % 10000 == 0:
            errors.append(float(np.mean(np.abs(l2_error))))
        l2_delta = l2_error * l2 * (1 - l2)
        l1_delta = (l2_delta @ syn1.T) * l1 * (1 - l1)
        syn1 += l1.T @ l2_delta
        syn0 += X.T @ l1_delta
    return errors


def test_three_layer_errors_match_the_original_bit_for_bit(capsys):
    errors = example("three_layer").main()
    assert errors == _three_layer_original()
    # The original printed 12 significant digits with Python 2's str():
    published = [
        0.496410031903,
        0.00858452565325,
        0.00578945986251,
        0.00462917677677,
        0.00395876528027,
        0.00351012256786,
    ]
    for got, want in zip(errors, published, strict=True):
        assert f"{got:.12g}" == f"{want:.12g}"
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Error:" + repr(e) for e in errors]


def test_loss_curve(tmp_path, capsys):
    losses, predictions = example("loss_curve").main(out=str(tmp_path / "loss.png"))
    assert len(losses) == 1500
    assert all(b <= a for a, b in zip(losses[50:], losses[51:], strict=False)), "loss rose after iteration 50"
    y = np.array([0, 1, 1, 0])
    assert np.all(np.abs(predictions.ravel() - y) < 0.1)
    assert (tmp_path / "loss.png").stat().st_size > 10_000


# The original program's printed losses for H = 3 (computed with its own loop, on a CPU whose
# NumPy ran tanh and exp with AVX-512). From iteration 2000 on they depend on the CPU: a
# machine with AVX2 only (NumPy's X86_V3) gives 0.06895, 0.071218, ... 0.071316 (the same
# 20,000 passes near a saddle amplify the last bits of tanh and exp), for the original loop
# (``_original_moons_losses``) as for the example.
MOONS_H3 = [0.432387, 0.068947, 0.068888, 0.070752, 0.070748, 0.070751, 0.070754, 0.070756, 0.070757] + [0.070758] * 11


def _original_moons_losses(hidden: int = 3, passes: int = 20_000) -> list[float]:
    """The original program's loop (Denny Britz's tanh/softmax network on moons), written
    as it was: its loss every 1,000 passes, to six decimals, on this machine."""
    from sklearn.datasets import make_moons

    np.random.seed(0)
    X, y = make_moons(200, noise=0.20)
    n, epsilon, reg_lambda = len(X), 0.01, 0.01
    np.random.seed(0)
    W1, b1 = np.random.randn(2, hidden) / np.sqrt(2), np.zeros((1, hidden))
    W2, b2 = np.random.randn(hidden, 2) / np.sqrt(hidden), np.zeros((1, 2))
    losses = []
    for i in range(passes):
        a1 = np.tanh(X.dot(W1) + b1)
        exp_scores = np.exp(a1.dot(W2) + b2)
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
        delta3 = probs
        delta3[range(n), y] -= 1
        dW2, db2 = (a1.T).dot(delta3), np.sum(delta3, axis=0, keepdims=True)
        delta2 = delta3.dot(W2.T) * (1 - np.power(a1, 2))
        dW1, db1 = np.dot(X.T, delta2), np.sum(delta2, axis=0)
        dW2 += reg_lambda * W2
        dW1 += reg_lambda * W1
        W1, b1, W2, b2 = W1 - epsilon * dW1, b1 - epsilon * db1, W2 - epsilon * dW2, b2 - epsilon * db2
        if i % 1000 == 0:
            a1 = np.tanh(X.dot(W1) + b1)
            exp_scores = np.exp(a1.dot(W2) + b2)
            probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
            data_loss = np.sum(-np.log(probs[range(n), y]))
            data_loss += reg_lambda / 2 * (np.sum(np.square(W1)) + np.sum(np.square(W2)))
            losses.append(float(f"{data_loss / n:f}"))
    return losses


def test_moons(tmp_path, capsys):
    results = example("moons").main(str(tmp_path), hidden_sizes=(1, 3, 50))
    losses = [float(f"{v:f}") for v in results["losses_h3"]]
    original = _original_moons_losses()
    assert losses == original  # number for number with the original program, run here
    assert losses[:2] == MOONS_H3[:2]  # and with its printed losses where no CPU moves them
    out = capsys.readouterr().out
    assert "Loss after iteration 0: 0.432387" in out and f"Loss after iteration 19000: {original[-1]:f}" in out
    assert results[3] >= 0.97 and results[50] >= 0.97
    assert 0.8 <= results["logistic regression"] < results[3]
    for name in ("moons_logistic_regression.png", "moons_hidden_3.png", "moons_hidden_sizes.png"):
        assert (tmp_path / name).stat().st_size > 20_000


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_worked_step_chain_rule(capsys):
    values, updated = example("worked_step").main()
    assert values["z_l1"] == 1.124
    assert values["a_l1"] == 0.7547299213576082
    assert values["a_l2"] == 0.850571226530534
    # The chain rule written out by hand, in plain Python floats:
    x, w1, b1, w2, b2, y, lr = 0.8, 1.58, -0.14, 2.45, -0.11, 1.0, 0.1
    a1 = _sigmoid(x * w1 + b1)
    a2 = _sigmoid(a1 * w2 + b2)
    d2 = (a2 - y) * a2 * (1 - a2)  # dC/db_l2
    d1 = d2 * w2 * a1 * (1 - a1)  # dC/db_l1, through w2 before its update
    expected = {
        "dc_db_l2": d2, "dc_dw_l2": d2 * a1, "dc_da_l1": d2 * w2,
        "updated_b_l2": b2 - lr * d2, "updated_w_l2": w2 - lr * d2 * a1,
        "dc_db_l1": d1, "dc_dw_l1": d1 * x, "updated_b_l1": b1 - lr * d1, "updated_w_l1": w1 - lr * d1 * x,
        "original_cost": 0.5 * (a2 - y) ** 2,
    }  # fmt: skip
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, rel=1e-14), name
    a2_new = _sigmoid(
        _sigmoid(x * expected["updated_w_l1"] + expected["updated_b_l1"]) * expected["updated_w_l2"]
        + expected["updated_b_l2"]
    )
    assert values["updated_a_l2"] == pytest.approx(a2_new, rel=1e-14)
    assert values["updated_cost"] == pytest.approx(0.5 * (a2_new - y) ** 2, rel=1e-12)
    out = capsys.readouterr().out
    names = [line.split(" = ")[0] for line in out.splitlines() if " = " in line and not line.endswith("=")]
    assert names[:16] == list(values)
    # Part 2, checked against the same algebra in matrix form (column vectors, (out, in) weights):
    W1 = np.array([[-0.11499179, 0.454649], [-0.65801895, 0.56618695], [-0.15686814, -0.87499479]])
    b1v = np.array([0.54001045, 0.75958375, 0.01870296])
    W2 = np.array([[0.01071228, -0.49139708, -0.81775586], [-0.87455946, -0.08351883, -0.77534763]])
    b2v = np.array([-0.32783478, 0.06061246])
    xv, yv = np.array([0.8, 0.2]), np.array([0.0, 1.0])
    h = 1 / (1 + np.exp(-(W1 @ xv + b1v)))
    o = 1 / (1 + np.exp(-(W2 @ h + b2v)))
    delta2 = (o - yv) * o * (1 - o)
    delta1 = (W2.T @ delta2) * h * (1 - h)
    np.testing.assert_allclose(updated["W2"], W2 - 0.1 * np.outer(delta2, h), rtol=1e-14)
    np.testing.assert_allclose(updated["b2"], b2v - 0.1 * delta2, rtol=1e-14)
    np.testing.assert_allclose(updated["W1"], W1 - 0.1 * np.outer(delta1, xv), rtol=1e-13)
    np.testing.assert_allclose(updated["b1"], b1v - 0.1 * delta1, rtol=1e-13)


def test_explain_matches_backprop_on_any_small_network():
    net = nn.Network(
        [nn.Dense(4, 5, "tanh"), nn.Dense(5, 3, "relu"), nn.Dense(3, 3, "softmax")],
        loss="cross_entropy",
        dtype="float64",
        seed=3,
    )
    x, y = np.array([0.3, -1.2, 0.5, 2.0]), 2
    before = net.parameters.snapshot()
    step = explain(net, x, y, learning_rate=0.5)
    assert np.array_equal(net.parameters.snapshot(), before), "explain must not change the network by default"
    # Same gradients as Network.forward_backward on that one sample:
    net.forward_backward(x.reshape(1, -1), np.array([y]))
    for layer, s in zip(net.layers, step.layers, strict=True):
        np.testing.assert_allclose(s.dC_dW, layer.grads["W"], rtol=1e-12)
        np.testing.assert_allclose(s.dC_db, layer.grads["b"], rtol=1e-12)
        np.testing.assert_allclose(s.W_updated, s.W - 0.5 * s.dC_dW)
    assert step.layers[-1].dC_da is None  # fused softmax + cross-entropy
    assert step.cost_updated < step.cost
    text = str(step)
    assert "dC/dW" in text and "layer 2 (softmax)" in text and "5x3" in text
    net_applied = net.copy()
    explain(net_applied, x, y, 0.5, apply=True)
    np.testing.assert_allclose(net_applied.layers[0].params["W"], step.layers[0].W_updated)


def test_explain_rejects_dropout_and_bad_rates():
    net = nn.Network([nn.Dense(2, 3), nn.Dropout(0.5), nn.Dense(3, 2, "softmax")])
    with pytest.raises(ValueError, match="Dense layers only"):
        explain(net, [1, 2], 0, 0.1)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        explain(nn.Network([nn.Dense(2, 2, "softmax")]), [1, 2], 0, 0)


@pytest.mark.slow
def test_mnist_classic_reaches_94_percent(mnist, capsys, monkeypatch):
    scores = example("mnist_classic").main(hidden=(30,), epochs=30)
    assert len(scores) == 30
    assert max(scores[-5:]) >= 9400, scores
    assert capsys.readouterr().out.splitlines()[-1].startswith("Epoch 29: ")
