"""Every bad input gets an error naming the argument, what was expected and
what was received, and leaves the network exactly as it was."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import nnscratch as nn


@pytest.fixture
def net():
    return nn.Network.from_sizes([3, 4, 2], seed=0)


GOOD_X = np.ones((5, 3))
GOOD_Y = np.array([0, 1, 0, 1, 1])

BAD_FIT = [
    ({"X": np.array([[1.0, np.nan, 0.0]] * 5)}, "X contains 5 NaN or infinite"),
    ({"X": np.array([[1.0, np.inf, 0.0]] * 5)}, "NaN or infinite"),
    ({"X": np.ones(5)}, r"X must be 2-D.*Received shape \(5,\).*reshape"),
    ({"X": np.ones((5, 3, 1))}, "X must be 2-D"),
    ({"X": np.ones((4, 3))}, "X and y have different lengths: X has 4 samples, y has 5"),
    ({"X": np.ones((5, 7))}, "X has 7 features but the first layer expects 3"),
    ({"X": np.ones((0, 3)), "y": np.array([], dtype=int)}, "X is empty"),
    ({"X": np.array([["a", "b", "c"]] * 5)}, "X must be numeric. Received dtype <U1"),
    ({"X": np.array([[1 + 1j, 0, 0]] * 5)}, "real numbers"),
    ({"y": np.array([0, 1, 2, 0, 1])}, r"labels from 0 to 2 but the output layer has 2 units.*\[0, 1\]"),
    ({"y": np.array([0, -1, 0, 1, 1])}, "labels from -1 to 1"),
    ({"y": np.array([0, 0.5, 0, 1, 1])}, "integer class labels"),
    ({"y": np.array([0, np.nan, 0, 1, 1])}, "y contains NaN"),
    ({"y": np.array(["a", "b", "a", "b", "a"])}, "y must be numeric"),
    ({"y": np.eye(2)[[0, 1, 0, 1, 1]]}, r"1-D integer class labels.*targets='onehot'"),
    ({"epochs": 0}, "epochs must be a positive integer. Received epochs=0"),
    ({"epochs": 2.5}, "epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer or None. Received batch_size=0"),
    ({"batch_size": -3}, "batch_size"),
    ({"validation_split": 1.5}, "validation_split must be a number in"),
    ({"sample_weight": np.ones(4)}, "sample_weight must be 5 numbers"),
    ({"sample_weight": -np.ones(5)}, "sample_weight must be finite, >= 0"),
    ({"validation_data": (np.ones((2, 4)), np.array([0, 1]))}, "X_val has 4 features"),
    ({"validation_data": np.ones(3)}, "validation_data must be a tuple"),
]


@pytest.mark.parametrize("override,match", BAD_FIT)
def test_bad_fit_inputs(net, override, match):
    kwargs = {"X": GOOD_X, "y": GOOD_Y, "epochs": 1, **override}
    before = net.parameters.snapshot()
    iterations = net.optimizer.iterations
    with pytest.raises(ValueError, match=match):
        net.fit(kwargs.pop("X"), kwargs.pop("y"), **kwargs)
    assert np.array_equal(before, net.parameters.snapshot())
    assert net.optimizer.iterations == iterations


def test_bad_predict_inputs(net):
    with pytest.raises(ValueError, match="X has 2 features but the first layer expects 3"):
        net.predict(np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        net.predict(np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="batch_size"):
        net.predict(np.ones((2, 3)), batch_size=0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_finds_every_non_finite_input(activation, bad):
    # predict proves X finite from the first pre-activation rather than from X
    # itself. That must hold even where the activation would hide it (sigmoid
    # and tanh turn inf into a finite 1), where a weight is exactly zero
    # (inf * 0 = NaN) and when the bad value sits in a later inference chunk.
    net = nn.Network.from_sizes([3, 4, 2], activation, seed=0)
    net.layers[0].params["W"][1, :] = 0.0
    X = np.random.default_rng(0).random((50, 3))
    for row, col in [(0, 0), (49, 1), (31, 2)]:
        bad_X = X.copy()
        bad_X[row, col] = bad
        with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
            net.predict(bad_X, batch_size=16)
        with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
            net.predict_proba(bad_X)


def test_predict_refuses_outputs_that_overflow_from_huge_but_finite_inputs():
    # 1e38 * 10 overflows float32, so the first pre-activation is not finite,
    # but X is: not a missing value, the caller's scaling problem. NumPy's overflow
    # warning still reaches the caller, under the caller's error state; and an
    # infinite output is never returned as a prediction (it used to be: a silent
    # wrong answer), but refused with the inputs' and weights' scale.
    net = nn.Network([nn.Dense(1, 2, "identity", weights=[[10.0, 0.5]])], loss="mse", optimizer="sgd")
    X = np.array([[1e38], [1.0]], dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="overflow"):
        with pytest.raises(nn.NonFiniteOutputError, match=r"1 of 2 rows.*inputs reach 1e\+38.*Scale the inputs"):
            net.predict(X)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(nn.NonFiniteOutputError):
            net.predict(X)
    assert np.array_equal(net.predict(X[1:]), np.array([[10.0, 0.5]], dtype=np.float32))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: nn.Dense(0, 3), "n_in must be a positive integer. Received n_in=0"),
        (lambda: nn.Dense(3, 2.5), "n_out must be a positive integer"),
        (lambda: nn.Dense(3, 2, "swish"), "Unknown activation 'swish'. Valid names: identity"),
        (lambda: nn.Dense(3, 2, initializer="bogus"), "Unknown initializer 'bogus'"),
        (lambda: nn.Dense(3, 2, weights=np.ones((2, 3))), r"weights must have shape \(3, 2\). Received shape \(2, 3\)"),
        (lambda: nn.Dense(3, 2, bias=False, biases=[1, 2]), "bias=False"),
        (lambda: nn.Dense(3, 2, l2=-1), "l2 must be a finite number >= 0"),
        (lambda: nn.Dropout(1.0), r"rate must lie in \[0, 1\)"),
        (lambda: nn.Network([nn.Dense(3, 4), nn.Dense(5, 2)]), "expects 5 inputs but the previous layer gives 4"),
        (lambda: nn.Network([nn.Dense(3, 2, "relu")], loss="cross_entropy"), "output activation must be 'softmax'"),
        (lambda: nn.Network([nn.Dense(3, 1, "softmax")]), "at least 2 output units"),
        (lambda: nn.Network([nn.Dense(3, 2)], loss="hinge"), "Unknown loss 'hinge'. Valid names: binary_cross_entropy"),
        (lambda: nn.Network([nn.Dense(3, 2)], optimizer="sgdd"), "Unknown optimizer"),
        (lambda: nn.Network([nn.Dense(3, 2)], dtype="float16"), "dtype must be 'float32' or 'float64'"),
        (lambda: nn.Network([]), "non-empty list of Layer"),
        (lambda: nn.Network([nn.Dense(3, 2), nn.Dropout(0.1)]), "last layer must be Dense"),
        (lambda: nn.Network.from_sizes([3]), "at least 2 positive integers"),
        (lambda: nn.CrossEntropy(targets="labels"), "targets must be 'index' or 'onehot'"),
        (lambda: nn.Quadratic(reduction="avg"), "reduction must be 'mean' or 'sum'"),
        (lambda: nn.EarlyStopping(patience=-1), "patience"),
    ],
)
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_regression_target_shape_mismatch():
    net = nn.Network.from_sizes([3, 2], output_activation="identity", loss="mse", seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(5, 2\).*Received shape \(5, 3\)"):
        net.fit(GOOD_X, np.ones((5, 3)))
    bce = nn.Network.from_sizes([3, 1], output_activation="sigmoid", loss="binary_cross_entropy", seed=0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        bce.fit(GOOD_X, np.array([0, 2, 0, 1, 1]))


# --- round two of bad input: silent wrong results and limits (issue 29) --------------------------
def test_outputs_that_overflow_are_an_error_naming_the_weights():
    """Finite but huge weights (1e38) used to give NaN probabilities and label 0; now an error
    that says the outputs are not finite, how large the weights are, and what to do."""
    net = nn.Network.from_sizes([2, 4, 2], "tanh", "softmax", seed=0)
    for layer in net.layers:
        layer.params["W"][...] = 1e38
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow warnings, under the caller's state
        with pytest.raises(nn.NonFiniteOutputError, match=r"NaN or infinite for 3 of 3 rows.*weights reach 1e\+38"):
            net.predict(np.ones((3, 2)))
        with pytest.raises(nn.NonFiniteOutputError):
            net.predict_labels(np.ones((3, 2)))


def test_values_too_large_for_the_networks_dtype_are_named_as_such():
    """1e200 is finite in float64 and infinite in a float32 network: say it overflows, not that
    the data holds NaN or infinite values it does not hold."""
    net = nn.Network.from_sizes([2, 4, 2], "tanh", "softmax", seed=0)
    X = np.array([[1.0, 2.0], [1e200, 3.0]])
    with pytest.raises(ValueError, match=r"1 value\(s\) too large for float32 .*1e\+200"):
        net.predict(X)
    with pytest.raises(ValueError, match="too large for float32"):
        net.fit(X, np.array([0, 1]), epochs=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [("a,b\n1,2\n1e200,3\n", r"too large for float32.*line 3, column 'a': 1e\+200"),
     ("a,b\n1," + "x" * 200_000 + "\n", "line 2: field larger than field limit"),
     ("a,a,b\n1,2,3\n", "names the column\\(s\\) 'a' more than once")],
)  # fmt: skip
def test_a_csv_at_the_limits_gets_one_sentence(tmp_path, capsys, text, message):
    from nnscratch.cli import main

    model = tmp_path / "m.safetensors"
    nn.Network.from_sizes([2, 4, 2], "tanh", "softmax", seed=0).save(model)
    table = tmp_path / "t.csv"
    table.write_text(text)
    assert main(["predict", str(model), str(table)]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_a_network_too_big_for_memory_says_how_big(tmp_path):
    """Issue 29, class 2: `--hidden 60000 60000` under a memory limit was an ArrayMemoryError
    traceback; now one sentence with the parameter count and the size, exit 1, no file."""
    import resource
    import subprocess
    import sys

    def limit() -> None:  # 4 GiB of address space: the 13.4 GiB network cannot be allocated
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    out = tmp_path / "big.safetensors"
    done = subprocess.run([sys.executable, "-m", "nnscratch", "train", "digits", "--hidden", "60000", "60000",
                           "--epochs", "1", "--out", str(out), "--no-plots"], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "64-60000-60000-10 does not fit in memory: its 3,604,560,010 parameters take 13.4 GiB" in done.stderr
    assert not out.exists()
