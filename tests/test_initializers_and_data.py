"""Initializer statistics and determinism; progress bar; seeded splits."""

from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.data import batch_indices, train_test_split
from nnscratch.initializers import INITIALIZERS, get_initializer

SHAPE = (400, 600)  # fan_in 400, fan_out 600
EXPECTED_STD = {
    "uniform": np.sqrt(1 / 3),
    "normal": 1.0,
    "scaled_normal": 1 / np.sqrt(400),
    "glorot_uniform": np.sqrt(2 / 1000),
    "glorot_normal": np.sqrt(2 / 1000),
    "xavier_uniform": np.sqrt(2 / 1000),
    "he_uniform": np.sqrt(2 / 400),
    "he_normal": np.sqrt(2 / 400),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STD))
def test_initializer_statistics(name):
    w = get_initializer(name)(np.random.default_rng(0), SHAPE, np.float64)
    assert w.shape == SHAPE
    assert abs(w.mean()) < 0.01 * EXPECTED_STD[name] * 10
    assert w.std() == pytest.approx(EXPECTED_STD[name], rel=0.02)


def test_uniform_ranges_and_zeros():
    rng = np.random.default_rng(0)
    u = get_initializer("uniform")(rng, (1000,), np.float32)
    assert u.dtype == np.float32 and u.min() >= -1 and u.max() < 1 and u.min() < -0.99
    u01 = get_initializer("uniform01")(rng, (1000,), np.float64)
    assert u01.min() >= 0 and u01.max() < 1
    assert not get_initializer("zeros")(rng, (3, 2), np.float64).any()
    limit = np.sqrt(6 / 1000)
    g = get_initializer("glorot_uniform")(rng, SHAPE, np.float64)
    assert g.max() <= limit and g.min() >= -limit


@pytest.mark.parametrize("name", INITIALIZERS.names())
def test_initializers_are_deterministic_given_a_generator(name):
    init = get_initializer(name)
    a = init(np.random.default_rng(5), (3, 4), np.float64)
    b = init(np.random.default_rng(5), (3, 4), np.float64)
    assert np.array_equal(a, b)


def test_custom_initializer_callable():
    layer = nn.Dense(2, 3, initializer=lambda rng, shape, dtype: np.full(shape, 0.5, dtype))
    nn.Network([layer], loss="mse")
    assert (layer.params["W"] == 0.5).all()


def test_progress_bar_when_verbose(blobs, capsys):
    X, y = blobs
    net = nn.Network.from_sizes([4, 3], seed=0)
    net.fit(X, y, epochs=2, batch_size=20, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "6/6" in err and "loss=" in err
    net.fit(X, y, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""


def test_train_test_split_is_seeded_and_stratified():
    X = np.arange(100).reshape(50, 2)
    y = np.array([0] * 40 + [1] * 10)
    a = train_test_split(X, y, test_size=0.2, seed=1, stratify=y)
    b = train_test_split(X, y, test_size=0.2, seed=1, stratify=y)
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(u, v)
    X_train, X_test, y_train, y_test = a
    assert len(y_test) == 10 and (y_test == 1).sum() == 2
    assert sorted(np.concatenate([X_train[:, 0], X_test[:, 0]]).tolist()) == list(range(0, 100, 2))
    plain = train_test_split(X, test_size=0.3, seed=0)
    assert len(plain[1]) == 15
    with pytest.raises(ValueError, match="same length"):
        train_test_split(X, y[:3])
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(X, test_size=2.0)


def test_batch_indices_cover_every_row_once():
    rows = np.concatenate(list(batch_indices(23, 5, np.random.default_rng(0))))
    assert sorted(rows.tolist()) == list(range(23))
    slices = list(batch_indices(23, 5))
    assert slices[-1] == slice(20, 23)


def test_stratified_split_stratifies_labels_only():
    from nnscratch.data import stratified_split

    X = np.arange(40).reshape(20, 2)
    y = np.array([0] * 15 + [1] * 5)
    _, _, _, y_val = stratified_split(X, y, 0.4, seed=3)
    assert sorted(y_val.tolist()) == [0] * 6 + [1] * 2
    targets = np.linspace(0, 1, 20)  # regression targets: a plain split
    _, X_val, _, t_val = stratified_split(X, targets, 0.25, seed=3)
    assert len(t_val) == 5 and np.array_equal(X_val[:, 0] // 2, np.round(t_val * 19))
