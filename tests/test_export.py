"""ONNX export checked by ONNX Runtime, and the bridge to scikit-learn's MLP."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.cli import main

onnx = pytest.importorskip("onnx")  # the test extra installs both; these lines only name what they need
ort = pytest.importorskip("onnxruntime")


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_every_activation_matches_onnx_runtime(activation, bias, output, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 7)).astype(np.float32)
    layers = [nn.Dense(7, 9, activation, bias=bias), nn.Dropout(0.3), nn.Dense(9, 6, activation, bias=bias),
              nn.Dense(6, 4, output)]  # fmt: skip
    loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}[output]
    net = nn.Network(layers, loss=loss, seed=1)
    path = nn.export_onnx(net, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    assert np.abs(run_onnx(path, X) - net.predict(X)).max() < 1e-5
    assert not [n for n in onnx.load(str(path)).graph.node if n.op_type == "Dropout"]


def test_float64_networks_stay_float64(tmp_path):
    net = nn.Network.from_sizes([5, 8, 3], "tanh", dtype="float64", seed=0)
    X = np.random.default_rng(1).normal(size=(10, 5))
    out = run_onnx(nn.export_onnx(net, tmp_path / "m.onnx"), X)
    assert out.dtype == np.float64 and np.abs(out - net.predict(X)).max() < 1e-12


def test_cli_export_folds_in_standardisation_and_class_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * [1, 10, 100] + [0, 50, -20]
    kind = np.where(X[:, 0] + X[:, 1] / 10 > 5, "spam", "ham")
    data = tmp_path / "mail.csv"
    data.write_text("f1,f2,f3,kind\n" + "\n".join(f"{a},{b},{c},{k}" for (a, b, c), k in zip(X, kind, strict=True)))
    model = tmp_path / "mail.safetensors"
    assert main(["train", str(data), "--label", "kind", "--epochs", "30", "--quiet", "--no-plots",
                 "--out", str(model)]) == 0  # fmt: skip
    assert main(["export", str(model), "-o", str(tmp_path / "mail.onnx")]) == 0
    assert "inputs standardised inside" in capsys.readouterr().out
    exported = onnx.load(str(tmp_path / "mail.onnx"))
    assert json.loads({p.key: p.value for p in exported.metadata_props}["classes"]) == ["ham", "spam"]
    raw = X.astype(np.float32)  # raw inputs: the file standardises them as training did
    net, meta = nn.load(model), nn.io.read_metadata(model)["extra"]
    expected = net.predict(((X - meta["scaler"]["mean"]) / meta["scaler"]["scale"]).astype(np.float32))
    assert np.abs(run_onnx(tmp_path / "mail.onnx", raw) - expected).max() < 1e-5


def test_digits_and_mnist_models_match(tmp_path, mnist):
    from nnscratch.datasets import load_digits

    X, y = load_digits()
    digits = nn.Network.from_sizes([64, 32, 10], "relu", seed=0)
    digits.fit(X, y, epochs=3)
    assert np.abs(run_onnx(nn.export_onnx(digits, tmp_path / "d.onnx"), X) - digits.predict(X)).max() < 1e-5
    (X_train, y_train), _, (X_test, _) = mnist
    net = nn.Network.from_sizes([784, 64, 10], "sigmoid", seed=0)
    net.fit(X_train[:5000], y_train[:5000], epochs=1, batch_size=64)
    diff = np.abs(run_onnx(nn.export_onnx(net, tmp_path / "mnist.onnx"), X_test) - net.predict(X_test)).max()
    assert diff < 1e-5, diff


def test_to_sklearn_gives_identical_predictions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    multi = nn.Network.from_sizes([4, 8, 8, 3], "tanh", seed=0)
    multi.fit(X, y, epochs=20)
    clf = nn.to_sklearn(multi, classes=["a", "b", "c"])
    np.testing.assert_allclose(clf.predict_proba(X), multi.predict(X), atol=1e-6)
    assert list(clf.predict(X[:5])) == [["a", "b", "c"][k] for k in multi.predict(X[:5]).argmax(axis=1)]
    binary = nn.Network([nn.Dense(4, 6, "relu"), nn.Dense(6, 1, "sigmoid")], loss="binary_cross_entropy", seed=0)
    binary.fit(X, (y > 0).astype(int), epochs=20)
    np.testing.assert_allclose(nn.to_sklearn(binary).predict_proba(X)[:, 1], binary.predict(X)[:, 0], atol=1e-6)
    reg = nn.Network([nn.Dense(4, 5, "sigmoid"), nn.Dense(5, 2, "identity")], loss="mse", seed=0)
    np.testing.assert_allclose(nn.to_sklearn(reg).predict(X), reg.predict(X), atol=1e-6)


def test_to_sklearn_names_what_it_cannot_express():
    mixed = nn.Network([nn.Dense(3, 4, "tanh"), nn.Dense(4, 4, "relu", bias=False), nn.Dense(4, 2, "softmax")])
    with pytest.raises(ValueError, match="different activations.*no bias.*two-unit softmax"):
        nn.to_sklearn(mixed)
    leaky = nn.Network([nn.Dense(3, 4, "leaky_relu"), nn.Dense(4, 3, "softmax")])
    with pytest.raises(ValueError, match="'leaky_relu' is not among scikit-learn's"):
        nn.to_sklearn(leaky)
