"""Each activation's backward is the derivative of its forward."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.activations import ACTIVATIONS, Activation, LeakyReLU, ReLU, get_activation

NAMES = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(name):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 5))
    z[np.abs(z) < 1e-3] = 0.5  # keep away from the ReLU kink
    upstream = rng.normal(size=z.shape)
    act = get_activation(name)
    act.forward(z.copy())  # forward and backward may reuse their argument's memory
    analytic = act.backward(upstream.copy())
    numeric = np.zeros_like(z)
    eps = 1e-6
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        numeric[idx] = np.sum(upstream * (get_activation(name).forward(zp) - get_activation(name).forward(zm))) / (
            2 * eps
        )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_kinks_are_documented_values():
    relu = ReLU()
    relu.forward(np.array([[0.0, -1.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])
    leaky = LeakyReLU(0.1)
    leaky.forward(np.array([[0.0, -1.0, 2.0]]))
    np.testing.assert_allclose(leaky.backward(np.ones((1, 3))), [[0.1, 0.1, 1.0]])


def test_selectable_by_name_or_object():
    assert isinstance(get_activation("relu"), ReLU)
    obj = LeakyReLU(0.2)
    assert get_activation(obj) is obj
    assert get_activation("RELU").registry_name == "relu"
    assert isinstance(get_activation(None), Activation)
    assert set(NAMES) <= set(ACTIVATIONS.names())


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_activation("relux")
    message = str(info.value)
    assert "relux" in message
    for name in NAMES:
        assert name in message


def test_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="activation"):
        get_activation(3)
    with pytest.raises(ValueError, match="alpha"):
        LeakyReLU(-0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_dtype_is_kept(name, dtype):
    act = get_activation(name)
    z = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    assert act.forward(z).dtype == dtype
    assert act.backward(np.ones_like(z)).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_outputs_do_not_depend_on_reusing_memory(name):
    z = np.linspace(-2, 2, 12).reshape(3, 4)
    fresh = get_activation(name)
    expected_a = fresh.forward(z.copy()).copy()
    expected_g = fresh.backward(np.ones_like(z)).copy()
    act = get_activation(name)
    a = act.forward(z.copy())
    np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_array_equal(act.backward(np.ones_like(z)), expected_g)
