"""Taking a trained network elsewhere: ONNX files, and scikit-learn's MLP.

``export_onnx(net, path)`` writes a standard ONNX graph that any ONNX runtime
runs: for each ``Dense`` layer a ``MatMul`` (and an ``Add`` for the bias) and
its activation (``Sigmoid``, ``Tanh``, ``Relu``, ``LeakyRelu``, ``Softmax`` on
the last axis, or nothing for identity); ``Dropout`` is left out (it is off at
inference). The input standardisation the CLI stores with a model
(``scaler``: mean and scale) becomes ``Sub`` and ``Div`` nodes in front, and the
class names go into the file's metadata (``classes``, JSON). The graph uses
opset 13 (``Softmax`` with an ``axis`` as NumPy's ``softmax(z, axis=-1)``),
which every current runtime supports, and keeps the network's dtype (float32
or float64). The batch dimension is symbolic (``N``).

``to_sklearn(net)`` returns a fitted ``MLPClassifier`` or ``MLPRegressor``
holding the same weights, when scikit-learn's MLP can express the network (one
hidden activation among identity, logistic, tanh and relu, every layer with a
bias, a softmax or sigmoid output for classification or identity for
regression); from there skl2onnx, m2cgen or emlearn take over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .extras import require
from .io import write_atomically
from .layers import Dense, Dropout

__all__ = ["export_onnx", "to_sklearn", "OPSET"]

OPSET = 13
_ONNX_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "leaky_relu": "LeakyRelu",
                     "softmax": "Softmax", "identity": None}  # fmt: skip


def _dense_layers(net: Any) -> list[Dense]:
    layers = []
    for layer in net.layers:
        if isinstance(layer, Dropout):
            continue  # off at inference
        if not isinstance(layer, Dense):
            raise ValueError(f"only Dense and Dropout layers can be exported; this network has {layer!r}.")
        layers.append(layer)
    return layers


def export_onnx(net: Any, path: str | Path, *, scaler: dict[str, Any] | None = None,
                classes: list[Any] | None = None, name: str = "nnscratch") -> Path:  # fmt: skip
    """Write ``net`` as an ONNX model; returns the path.

    Parameters
    ----------
    net : Network
        Dense layers (Dropout is dropped), any activation nnscratch has.
    path : path-like
    scaler : dict, optional
        ``{"mean": [...], "scale": [...]}``: inputs are standardised first, as the
        CLI does before its network (``(x - mean) / scale``).
    classes : list, optional
        Class names, stored as JSON in the metadata entry ``classes``.
    name : str
        The graph's name.
    """
    onnx = require("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.dtype(net.dtype)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    layers = _dense_layers(net)
    nodes, initializers = [], []
    current = "input"
    if scaler is not None:
        mean = np.asarray(scaler["mean"], dtype=dtype)
        scale = np.asarray(scaler["scale"], dtype=dtype)
        if mean.shape != (layers[0].n_in,) or scale.shape != mean.shape:
            raise ValueError(f"scaler must hold {layers[0].n_in} means and scales; got {mean.shape} and {scale.shape}.")
        initializers += [numpy_helper.from_array(mean, "scaler_mean"), numpy_helper.from_array(scale, "scaler_scale")]
        nodes += [helper.make_node("Sub", [current, "scaler_mean"], ["centred"]),
                  helper.make_node("Div", ["centred", "scaler_scale"], ["standardised"])]  # fmt: skip
        current = "standardised"
    for i, layer in enumerate(layers):
        activation = layer.activation.get_config()
        kind = activation["name"]
        if kind not in _ONNX_ACTIVATIONS:
            raise ValueError(f"layer {i}: the activation {kind!r} has no ONNX export (custom activation).")
        initializers.append(numpy_helper.from_array(np.asarray(layer.params["W"], dtype=dtype), f"W{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"xw{i}"]))
        current = f"xw{i}"
        if layer.bias:
            initializers.append(numpy_helper.from_array(np.asarray(layer.params["b"], dtype=dtype), f"b{i}"))
            nodes.append(helper.make_node("Add", [current, f"b{i}"], [f"z{i}"]))
            current = f"z{i}"
        op = _ONNX_ACTIVATIONS[kind]
        if op is not None:
            attributes = {"Softmax": {"axis": -1}, "LeakyRelu": {"alpha": activation.get("alpha")}}.get(op, {})
            nodes.append(helper.make_node(op, [current], [f"a{i}"], **attributes))
            current = f"a{i}"
    nodes.append(helper.make_node("Identity", [current], ["output"]))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", elem, ["N", layers[0].n_in])],
        [helper.make_tensor_value_info("output", elem, ["N", layers[-1].n_out])],
        initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnscratch")
    model.ir_version = min(model.ir_version, 9)  # readable by runtimes a few years old
    metadata = {"classes": json.dumps(classes) if classes is not None else None,
                "standardised_inputs": json.dumps(scaler is not None)}  # fmt: skip
    for key, value in metadata.items():
        if value is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return write_atomically(path, model.SerializeToString())  # a crash never leaves half a file


_SKLEARN_HIDDEN = {"identity": "identity", "sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}


def to_sklearn(net: Any, classes: list[Any] | None = None) -> Any:
    """A fitted ``MLPClassifier`` (softmax or sigmoid output) or ``MLPRegressor`` (identity
    output) with ``net``'s weights; ``ValueError`` naming what scikit-learn's MLP cannot express."""
    require("sklearn", "sklearn")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    layers = _dense_layers(net)
    problems = []
    hidden = {layer.activation.get_config()["name"] for layer in layers[:-1]}
    if len(hidden) > 1:
        problems.append(f"the hidden layers use different activations {sorted(hidden)} (scikit-learn has one)")
    kind = next(iter(hidden), "identity")
    if kind not in _SKLEARN_HIDDEN:
        problems.append(f"the hidden activation {kind!r} is not among scikit-learn's (identity, logistic, tanh, relu)")
    if not all(layer.bias for layer in layers):
        problems.append("a layer has no bias (scikit-learn's layers always have one)")
    output = layers[-1].activation.get_config()["name"]
    n_out = layers[-1].n_out
    if output == "softmax" and n_out < 2:
        problems.append("a softmax over one output")
    if output not in ("softmax", "sigmoid", "identity"):
        problems.append(f"the output activation {output!r} (scikit-learn uses softmax, logistic or identity)")
    if output == "softmax" and n_out == 2:
        problems.append("a two-unit softmax (scikit-learn's binary MLP has one logistic output; retrain with 1 "
                        "sigmoid output)")  # fmt: skip
    if problems:
        raise ValueError("scikit-learn's MLP cannot express this network: " + "; ".join(problems) + ".")
    coefs = [np.array(layer.params["W"], dtype=np.float64) for layer in layers]
    intercepts = [np.array(layer.params["b"], dtype=np.float64) for layer in layers]
    if output == "identity":
        model = MLPRegressor(hidden_layer_sizes=tuple(layer.n_out for layer in layers[:-1]),
                             activation=_SKLEARN_HIDDEN[kind])  # fmt: skip
        model.out_activation_ = "identity"
    else:
        model = MLPClassifier(hidden_layer_sizes=tuple(layer.n_out for layer in layers[:-1]),
                              activation=_SKLEARN_HIDDEN[kind])  # fmt: skip
        model.out_activation_ = "softmax" if output == "softmax" else "logistic"
        labels = list(classes) if classes is not None else list(range(max(n_out, 2)))
        from sklearn.preprocessing import LabelBinarizer

        model.classes_ = np.array(labels)
        model._label_binarizer = LabelBinarizer().fit(labels)
        if output == "sigmoid" and n_out > 1:  # one sigmoid per label: multi-label
            model._label_binarizer = LabelBinarizer().fit(np.eye(n_out, dtype=int))
            model.classes_ = np.arange(n_out)
    model.coefs_, model.intercepts_ = coefs, intercepts
    model.n_features_in_ = layers[0].n_in
    model.n_layers_ = len(layers) + 1
    model.n_outputs_ = n_out
    model.n_iter_, model.t_ = 0, 0
    model.loss_curve_ = []
    return model
