"""The optional accelerator: every fused optimizer update gives what the NumPy
reference gives, in float32 and float64, step by step and over a whole fit."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import kernels


def _numba_or_fail() -> None:
    if not kernels.available():
        if os.environ.get("CI"):
            pytest.fail("numba is not installed; the test extra installs nnscratch[fast]")
        pytest.skip('numba is not installed (pip install "nnscratch[fast]")')


@pytest.fixture(autouse=True)
def restore_choice():
    yield
    kernels.use_kernels(None)


OPTIMIZERS = {
    "adam": lambda: nn.Adam(0.01, beta1=0.8, beta2=0.95),
    "adamw": lambda: nn.AdamW(0.01, weight_decay=0.1),
    "rmsprop": lambda: nn.RMSProp(0.01),
    "adagrad": lambda: nn.AdaGrad(0.1),
    "momentum": lambda: nn.SGD(0.1, momentum=0.9),
    "nesterov": lambda: nn.SGD(0.1, momentum=0.9, nesterov=True),
    "sgd": lambda: nn.SGD(0.1),
}


def _run(make, dtype, on: bool) -> tuple[np.ndarray, dict]:
    kernels.use_kernels(on)
    rng = np.random.default_rng(0)
    p, opt = rng.normal(size=(40, 25)).astype(dtype), make()  # 2-D: the kernels take any contiguous shape
    for _ in range(25):
        opt.step({"W": p, "b": p[0]}, {"W": rng.normal(size=p.shape).astype(dtype), "b": np.ones(25, dtype)},
                 {"W": True, "b": False})  # fmt: skip
    return p, opt.state_dict()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_updates_match_the_numpy_reference(name, dtype):
    _numba_or_fail()
    p_ref, state_ref = _run(OPTIMIZERS[name], dtype, on=False)
    p_fast, state_fast = _run(OPTIMIZERS[name], dtype, on=True)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(p_fast, p_ref, rtol=tol, atol=tol)
    for group, slots in state_ref["state"].items():
        for slot, value in slots.items():
            np.testing.assert_allclose(state_fast["state"][group][slot], value, rtol=tol, atol=tol)


def _fit_without_and_with(make_network, n_features: int) -> list[np.ndarray]:
    """The weights after the same fit on the NumPy path and with the kernels."""
    _numba_or_fail()
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, n_features)).astype(np.float32), rng.integers(0, 3, 300)
    weights = []
    for on in (False, True):
        kernels.use_kernels(on)
        assert (kernels.fused() is not None) == on
        net = make_network()
        net.fit(X, y, epochs=3, batch_size=16)
        weights.append(net.parameters.values.copy())
    return weights


def test_a_whole_fit_agrees_and_the_switch_works(monkeypatch):
    weights = _fit_without_and_with(lambda: nn.Network.from_sizes([10, 32, 3], optimizer=nn.Adam(0.01), seed=0), 10)
    np.testing.assert_array_equal(weights[1], weights[0])
    kernels.use_kernels(None)
    monkeypatch.setenv("NNSCRATCH_KERNELS", "numpy")
    assert kernels.fused() is None


def test_asking_for_the_kernels_without_numba_names_the_extra(monkeypatch):
    monkeypatch.setattr(kernels, "_compiled", lambda: None)
    with pytest.raises(ModuleNotFoundError, match=r"nnscratch\[fast\]"):
        kernels.use_kernels(True)
    assert kernels.fused() is None and not kernels.available()


@pytest.mark.parametrize("on", [False, True])
def test_an_overflowing_update_is_reported_as_numpy_would(on):
    if on:
        _numba_or_fail()
    kernels.use_kernels(on)
    opt = nn.SGD(3e38, momentum=0.9, nesterov=True)  # -0.9 * 3e38 - 3e38 overflows float32
    p, g = np.ones(8, np.float32), np.ones(8, np.float32)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        opt.step({"W": p}, {"W": g})
    with np.errstate(over="warn"), pytest.warns(RuntimeWarning, match="overflow"):
        opt.step({"W": np.ones(8, np.float32)}, {"W": g})


@pytest.mark.parametrize("on", [False, True])
def test_a_step_that_overflows_in_the_update_is_undone(on):
    # The update itself (not the forward pass) overflows: the fit must stop and hand
    # back the weights from before that step, finite, with either path.
    if on:
        _numba_or_fail()
    kernels.use_kernels(on)
    net = nn.Network.from_sizes([4, 8, 3], optimizer=nn.SGD(3e38, momentum=0.9, nesterov=True), seed=0,
                                dtype="float32")  # fmt: skip
    X, y = np.random.default_rng(0).normal(size=(64, 4)), np.arange(64) % 3
    before = net.parameters.snapshot()
    with pytest.raises(nn.TrainingDivergedError, match="overflow"):
        net.fit(X, y, epochs=2, batch_size=8)
    assert net.parameters.all_finite()
    np.testing.assert_array_equal(net.parameters.values, before)


def _activation_passes(name: str, dtype, on: bool) -> list[np.ndarray]:
    """An activation's forward on ``z + b`` and its backward three ways: the fused passes
    that ``Dense`` runs when the kernels offer them, else the textbook methods."""
    kernels.use_kernels(on)
    rng = np.random.default_rng(3)
    z = rng.normal(scale=3, size=(33, 17)).astype(dtype)
    z[0, :3] = [np.nan, 0.0, -0.0]  # NaN propagates; the kink at 0
    b = rng.normal(size=17).astype(dtype)
    g = rng.normal(size=(33, 17)).astype(dtype)
    act = nn.activations.get_activation(name)
    fused = kernels.activation_pass(act, z, b)
    assert (fused is not None) == (on and bool(FUSED_PASSES[name]))
    if fused is None:
        a = act.forward(z + b).copy()
        fresh, again = act.backward(g), act.backward(g)  # no out=: g untouched, the same answer twice
        in_place = act.backward(g.copy(), out=g.copy())
        return [a, fresh, again, in_place]
    a = fused.forward(z.copy(), b).copy()
    fresh, again = fused.backward(g, a), fused.backward(g, a)
    in_place = fused.backward(g.copy(), a, out=g.copy())
    return [a, fresh, again, in_place]


@pytest.fixture
def used(monkeypatch):
    """The names of the compiled kernels called while the test runs."""
    names: list[str] = []
    compiled = kernels._compiled()

    class Spy:
        def __getattr__(self, name):
            names.append(name)
            return getattr(compiled, name)

    monkeypatch.setattr(kernels, "_compiled", lambda: Spy() if compiled is not None else None)
    return names


FUSED_PASSES = {"relu": ["bias_relu", "relu_backward"],
                "sigmoid": ["one_over_one_plus", "sigmoid_backward", "sigmoid_exponent"],
                "tanh": ["tanh_backward"], "leaky_relu": [], "identity": []}  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(FUSED_PASSES))
def test_fused_activation_passes_are_bit_identical_to_numpy(name, dtype, used):
    # Only exactly rounded arithmetic is fused (+ - * /), so the accelerated
    # bias + activation and activation backward give NumPy's bits, NaN included.
    # (exp and tanh stay NumPy's: numba's differ in the last bit.)
    _numba_or_fail()
    reference = _activation_passes(name, dtype, on=False)
    assert used == []
    fast = _activation_passes(name, dtype, on=True)
    assert sorted(set(used)) == FUSED_PASSES[name]
    for want, got in zip(reference, fast, strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == dtype


def test_a_fit_with_every_fused_pass_gives_numpys_weights_bit_for_bit():
    def network():
        return nn.Network([nn.Dense(12, 16, "relu"), nn.Dense(16, 8, "tanh"), nn.Dense(8, 3, "softmax")],
                          optimizer=nn.Adam(0.01), seed=0, dtype="float32")  # fmt: skip

    weights = _fit_without_and_with(network, 12)
    np.testing.assert_array_equal(weights[1], weights[0])


def _dense_passes(activation: str, on: bool) -> list[np.ndarray]:
    kernels.use_kernels(on)
    rng = np.random.default_rng(4)
    layer = nn.Dense(9, 14, activation)
    layer.build(rng, np.dtype(np.float32))
    x, g = rng.normal(size=(21, 9)).astype(np.float32), rng.normal(size=(21, 14)).astype(np.float32)
    a = layer.forward(x).copy()
    grad_x = layer.backward(g)
    grad_w = layer.grads["W"].copy()
    overwritten = layer.backward(g.copy(), overwrite=True)
    return [a, grad_x, grad_w, overwritten, layer.grads["b"].copy()]


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_dense_runs_the_fused_pass_or_the_textbook_one_with_the_same_bits(activation, used):
    # Dense's one fused branch: with the kernels it takes the fused passes for the
    # built-in ReLU, sigmoid and tanh, and nothing for the others; the bits match.
    _numba_or_fail()
    reference = _dense_passes(activation, on=False)
    fast = _dense_passes(activation, on=True)
    assert sorted(set(used)) == FUSED_PASSES[activation]
    for want, got in zip(reference, fast, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_subclass_of_a_built_in_activation_keeps_its_own_maths(used):
    _numba_or_fail()
    kernels.use_kernels(True)

    class Doubled(nn.activations.ReLU):
        def forward(self, z, out=None):
            return super().forward(z, out) * 2

    z = np.ones((2, 3), np.float32)
    assert kernels.activation_pass(Doubled(), z, np.zeros(3, np.float32)) is None
    assert kernels.activation_pass(nn.activations.ReLU(), z, None) is None  # no bias: nothing to fuse
    assert used == []


def test_the_fused_backward_refuses_a_gradient_of_another_shape():
    _numba_or_fail()
    kernels.use_kernels(True)
    z, b = np.ones((4, 3), np.float32), np.zeros(3, np.float32)
    fused = kernels.activation_pass(nn.activations.ReLU(), z, b)
    a = fused.forward(z, b)
    with pytest.raises(ValueError, match=r"shape \(4, 3\)\. Received shape \(1, 3\)"):
        fused.backward(np.ones((1, 3), np.float32), a)
