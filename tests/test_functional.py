"""The stable maths: correct values, extreme inputs without warnings, dtypes kept."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnscratch import functional as F

EXTREME = [-1e4, -800.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0, 1e4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [F.sigmoid, F.log_sigmoid, F.softplus, F.tanh, F.softmax, F.log_softmax, F.logsumexp])
def test_extreme_inputs_are_finite_without_warnings(fn, dtype):
    x = np.array([EXTREME, EXTREME[::-1]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = fn(x)
    assert np.all(np.isfinite(out))
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_the_textbook_formula_bit_for_bit(dtype):
    x = np.linspace(-80, 80, 1601, dtype=dtype)
    assert np.array_equal(F.sigmoid(x), 1 / (1 + np.exp(-x)))
    assert F.sigmoid(x.copy()).dtype == dtype


def test_sigmoid_limits_and_symmetry():
    assert F.sigmoid(np.array([1e4]))[0] == 1.0
    assert 0.0 < F.sigmoid(np.array([-1e4]))[0] < 1e-300
    assert 0.0 < F.sigmoid(np.array([-1e4], dtype=np.float32))[0] < 1e-37
    x = np.linspace(-20, 20, 81)
    np.testing.assert_allclose(F.sigmoid(x) + F.sigmoid(-x), 1.0, rtol=1e-15)


def test_log_sigmoid_and_softplus():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(F.log_sigmoid(x), -np.log1p(np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.softplus(x), np.log1p(np.exp(x)), rtol=1e-12)
    assert F.log_sigmoid(np.array([-1e4]))[0] == -1e4  # exact asymptote, not -inf


def test_softmax_rows_sum_to_one_and_shift_invariant():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7))
    p = F.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(F.softmax(z + 1000.0), p, rtol=1e-12)
    np.testing.assert_allclose(np.exp(F.log_softmax(z)), p, rtol=1e-12)
    np.testing.assert_allclose(F.logsumexp(z), np.log(np.exp(z).sum(axis=1)), rtol=1e-12)
    np.testing.assert_allclose(F.logsumexp(z, keepdims=True).shape, (5, 1))


def test_one_hot():
    out = F.one_hot(np.array([1, 0, 2]), 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="1-D"):
        F.one_hot(np.array([[1]]), 3)
