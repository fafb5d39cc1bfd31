"""Golden values for the first steps of every optimizer and schedule.

Each case starts from p = [1, -2] with the constant gradient g = [0.5, -1]
and takes two steps; the expected numbers are worked out by hand below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.optimizers import get_optimizer

G = np.array([0.5, -1.0])
R = math.sqrt


def two_steps(opt, key="W"):
    p = np.array([1.0, -2.0])
    out = []
    for _ in range(2):
        opt.step({key: p}, {key: G.copy()})
        out.append(p.copy())
    return out


GOLDEN = {
    # p -= 0.1 g
    "sgd": (nn.SGD(0.1), [[0.95, -1.9], [0.9, -1.8]]),
    # v1 = -0.1 g = [-0.05, 0.1];  v2 = 0.9 v1 - 0.1 g = [-0.095, 0.19]
    "momentum": (nn.SGD(0.1, momentum=0.9), [[0.95, -1.9], [0.855, -1.71]]),
    # p += 0.9 v - 0.1 g:  step1 [-0.095, 0.19];  step2 0.9*[-0.095, 0.19] + [-0.05, 0.1] = [-0.1355, 0.271]
    "nesterov": (nn.SGD(0.1, momentum=0.9, nesterov=True), [[0.905, -1.81], [0.7695, -1.539]]),
    # G1 = g^2 = [0.25, 1] -> step 0.1 g/|g| = 0.1;  G2 = [0.5, 2] -> step 0.1 * g / sqrt(2 g^2) = 0.1/sqrt2
    "adagrad": (nn.AdaGrad(0.1), [[0.9, -1.9], [0.9 - 0.1 / R(2), -1.9 + 0.1 / R(2)]]),
    # E1 = 0.1 g^2 = [0.025, 0.1] -> step 0.01 g / sqrt(E1) = 0.01/sqrt(0.1) sign(g)
    # E2 = 0.9 E1 + 0.1 g^2 = 0.19 g^2 -> step 0.01/sqrt(0.19)
    "rmsprop": (
        nn.RMSProp(0.01, rho=0.9),
        [
            [1 - 0.01 / R(0.1), -2 + 0.01 / R(0.1)],
            [1 - 0.01 / R(0.1) - 0.01 / R(0.19), -2 + 0.01 / R(0.1) + 0.01 / R(0.19)],
        ],
    ),
    # Constant g: m_hat = g and v_hat = g^2 at every step, so each step is lr * sign(g).
    "adam": (nn.Adam(0.1), [[0.9, -1.9], [0.8, -1.8]]),
    # Decay first, p *= 1 - lr*wd = 0.99, then the Adam step: 0.99 - 0.1 = 0.89; 0.89*0.99 - 0.1 = 0.7811
    "adamw": (nn.AdamW(0.1, weight_decay=0.1), [[0.89, -1.88], [0.7811, -1.7612]]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_first_two_steps(name):
    opt, expected = GOLDEN[name]
    opt.reset()
    got = two_steps(opt)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


def test_adamw_separates_biases_in_a_network():
    net = nn.Network.from_sizes([3, 4, 2], optimizer=nn.AdamW(0.1), seed=0)
    net.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=1)
    assert set(net.optimizer.state) == {"W", "b"}
    assert net.optimizer.state["b"]["m"].size == 6
    groups = net.parameters.groups(split=True)
    assert groups.decay == {"W": True, "b": False}  # the network decides, not the optimizer


def test_adamw_does_not_decay_biases():
    opt, p = nn.AdamW(0.1, weight_decay=0.1), np.array([1.0, -2.0])
    got = []
    for _ in range(2):
        opt.step({"b": p}, {"b": G.copy()}, decay={"b": False})
        got.append(p.copy())
    np.testing.assert_allclose(got, [[0.9, -1.9], [0.8, -1.8]], atol=1e-7)


def test_adam_matches_textbook_formula_with_varying_gradients():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(5, 3))
    p = rng.normal(size=3)
    ref, m, v = p.copy(), np.zeros(3), np.zeros(3)
    opt = nn.Adam(0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    for t, g in enumerate(grads, start=1):
        opt.step({"W": p}, {"W": g})
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        ref -= 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-6)
    np.testing.assert_allclose(p, ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_updates_keep_dtype(name, dtype):
    p = np.ones(4, dtype=dtype)
    get_optimizer(name).step({"W": p}, {"W": np.full(4, 0.3, dtype=dtype)})
    assert p.dtype == dtype


def test_schedules():
    assert nn.Constant(0.1)(100) == 0.1
    step = nn.StepDecay(1.0, step_size=2, gamma=0.5)
    assert [step(t) for t in range(1, 6)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    exp = nn.ExponentialDecay(1.0, decay_rate=0.5, decay_steps=1)
    assert [exp(t) for t in (1, 2, 3)] == [1.0, 0.5, 0.25]
    inv = nn.InverseScaling(1.0, power=0.5)
    assert inv(4) == 0.5
    cos = nn.CosineDecay(1.0, decay_steps=4, minimum=0.0)
    np.testing.assert_allclose([cos(t) for t in (1, 3, 5, 9)], [1.0, 0.5, 0.0, 0.0], atol=1e-15)


def test_schedule_drives_the_optimizer():
    opt = nn.SGD(nn.StepDecay(0.1, step_size=1, gamma=0.5))
    p = np.zeros(1)
    for _ in range(3):
        opt.step({"W": p}, {"W": np.ones(1)})
    np.testing.assert_allclose(p, [-(0.1 + 0.05 + 0.025)])
    assert opt.learning_rate == pytest.approx(0.0125)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: nn.SGD(0), "learning_rate"),
        (lambda: nn.SGD(-1.0), "learning_rate"),
        (lambda: nn.SGD(float("nan")), "learning_rate"),
        (lambda: nn.SGD(0.1, momentum=1.5), "momentum"),
        (lambda: nn.SGD(0.1, nesterov=True), "nesterov"),
        (lambda: nn.Adam(0.1, beta1=1.0), "beta1"),
        (lambda: nn.StepDecay(0.1, step_size=0), "step_size"),
        (lambda: get_optimizer("adamm"), "adamw"),
    ],
)
def test_bad_settings_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_state_is_owned_by_the_optimizer():
    net = nn.Network.from_sizes([3, 4, 2], seed=0)
    net.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=1)
    assert set(net.optimizer.state) == {"params"}
    assert net.optimizer.state["params"]["m"].size == net.n_params
    for layer in net.layers:
        assert not [k for k in vars(layer) if "optim" in k or k in ("m", "v")]
