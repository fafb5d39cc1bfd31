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


def test_a_whole_fit_agrees_and_the_switch_works(monkeypatch):
    _numba_or_fail()
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 10)).astype(np.float32), rng.integers(0, 3, 300)
    weights = []
    for on in (False, True):
        kernels.use_kernels(on)
        assert (kernels.fused() is not None) == on
        net = nn.Network.from_sizes([10, 32, 3], optimizer=nn.Adam(0.01), seed=0)
        net.fit(X, y, epochs=3, batch_size=16)
        weights.append(net.parameters.values.copy())
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-5, atol=1e-6)
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
