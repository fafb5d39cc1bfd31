"""``evaluate``, ``predict``, ``info``, ``explain`` and ``demo``."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import load_csv
from ..io import load_bundle, write_atomically
from .args import CommandError, check_writable, written_by_us
from .data import apply_preprocessing, labelled_data, match_columns, parse_label
from .train import held_out_report


def _load_model(path: str, command: str | None = None) -> tuple[Any, dict[str, Any]]:
    """A saved network and its metadata; ``command`` (e.g. ``"evaluate"``) refuses a web-log
    model, whose inputs are log lines, and names the command that takes it."""
    net, meta, _ = load_bundle(path)
    if command is not None and meta["extra"].get("kind") == "nnscratch.weblogs":
        raise CommandError(f"{path} is a web-log model: its input is log lines, not a table of numbers. Use "
                           f"'nnscratch logs {'evaluate' if command == 'evaluate' else 'classify'} {path} LOG ...' "
                           "instead.")  # fmt: skip
    return net, meta["extra"]


def _check_width(net: Any, X: np.ndarray, source: str) -> None:
    if X.shape[1] != net.n_inputs:
        raise CommandError(
            f"the model expects {net.n_inputs} input features but {source} has {X.shape[1]}. "
            "Use the data (or columns) the model was trained on."
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a saved model on labelled data: a dataset's held-out part or a CSV."""
    net, meta = _load_model(args.model, "evaluate")
    X, y = labelled_data(args.data, meta, parse_label(args.label))
    _check_width(net, X, args.data)
    task = meta.get("task", "classification" if net.is_classifier else "regression")
    scores = held_out_report(net, X, y, task)
    for name, value in scores.items():
        print(f"{name}: {value:.4%}" if name == "accuracy" else f"{name}: {value:.6g}")
    print(f"samples: {len(X):,}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict labels and class probabilities for the rows of a CSV file."""
    if args.output:  # never over the model or the data, nor over a file that is not a predictions file
        check_writable(args.output, "-o", inputs=[args.model, args.input], force=args.force,
                       ours=written_by_us("label,prob_", "prediction"))  # fmt: skip
    net, meta = _load_model(args.model, "predict")
    X, _, names = load_csv(args.input, label=parse_label(args.drop_column) if args.drop_column is not None else None)
    X = apply_preprocessing(match_columns(X, names, meta, args.input), meta)
    _check_width(net, X, args.input)
    out = net.predict(X)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    classes = meta.get("classes")
    if meta.get("task", "classification") == "classification" and classes:
        writer.writerow(["label", *[f"prob_{c}" for c in classes]])
        for row in out:
            writer.writerow([classes[int(row.argmax())], *[f"{p:.6g}" for p in row]])
    else:
        writer.writerow([f"prediction_{j}" if out.shape[1] > 1 else "prediction" for j in range(out.shape[1])])
        writer.writerows([[f"{v:.6g}" for v in row] for row in out])
    if args.output:
        write_atomically(args.output, buffer.getvalue().encode())
        print(f"Wrote {len(out):,} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a saved model as ONNX (or hand it to scikit-learn's MLP), with its input
    standardisation and class names, for any ONNX runtime."""
    from ..export import export_onnx
    from ..extras import require

    require("onnx", "onnx")  # before anything is read or written
    net, meta = _load_model(args.model)
    if meta.get("kind") == "nnscratch.weblogs":
        raise CommandError(f"{args.model} is a web-log model: its input is log lines, not numbers; only plain "
                           "networks (nnscratch train) export to ONNX.")  # fmt: skip
    out = Path(args.output or Path(args.model).with_suffix(".onnx"))
    check_writable(out, "-o", model="onnx", inputs=[args.model], force=args.force)
    path = export_onnx(net, out, scaler=meta.get("scaler"), classes=meta.get("classes"),
                       name=str(meta.get("dataset", "nnscratch")))  # fmt: skip
    print(f"Wrote {path} (ONNX opset 13, input 'input' of shape (N, {net.n_inputs}), output 'output'"
          + (", inputs standardised inside" if meta.get("scaler") else "") + ")")  # fmt: skip
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Show a saved model's architecture and what it was trained on."""
    net, meta = _load_model(args.model)
    print(net.summary())
    for key in ("dataset", "task", "classes", "epochs_trained", "stop_reason", "held_out"):
        if key in meta:
            value = meta[key]
            if key == "classes" and value and len(value) > 12:
                value = [*value[:12], "..."]
            print(f"{key}: {value}")
    return 0


EXAMPLES = {
    # name: (layers as (n_in, n_out, activation, W (in, out), b), x, y)
    "chain": ([(1, 1, "sigmoid", [[1.58]], [-0.14]), (1, 1, "sigmoid", [[2.45]], [-0.11])], [0.8], [1.0]),
    "2-3-2": (
        [
            (2, 3, "sigmoid", [[-0.11499179, -0.65801895, -0.15686814], [0.454649, 0.56618695, -0.87499479]],
             [0.54001045, 0.75958375, 0.01870296]),
            (3, 2, "sigmoid", [[0.01071228, -0.87455946], [-0.49139708, -0.08351883], [-0.81775586, -0.77534763]],
             [-0.32783478, 0.06061246]),
        ],
        [0.8, 0.2],
        [0.0, 1.0],
    ),
}  # fmt: skip


def cmd_explain(args: argparse.Namespace) -> int:
    """One backpropagation step with every intermediate shown: on a saved model
    (give --input and --target) or a named worked example (chain, 2-3-2)."""
    from .. import Dense, Network, Quadratic
    from ..explain import explain

    if args.model in EXAMPLES:
        specs, x, y = EXAMPLES[args.model]
        layers = [Dense(i, o, a, weights=w, biases=b) for i, o, a, w, b in specs]
        net = Network(layers, loss=Quadratic(), optimizer="sgd", dtype="float64")
    else:
        net, _ = _load_model(args.model)
        if args.input is None or args.target is None:
            raise CommandError("explaining a model file needs --input X1 X2 ... and --target Y.")
        x, y = args.input, args.target if len(args.target) > 1 else args.target[0]
        if net.is_classifier and not isinstance(y, list):
            y = int(y)
    if args.input is not None and args.model in EXAMPLES:
        x = args.input
    print(explain(net, x, y, args.lr))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train on scikit-learn's bundled 8x8 digits (no download) and save the model."""
    import nnscratch as nn
    from nnscratch.data import train_test_split
    from nnscratch.datasets import load_digits

    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)
    net = nn.Network.from_sizes([64, 128, 10], "relu", "softmax", optimizer=nn.Adam(1e-3), seed=args.seed)
    print(f"Training {net.layers} on {len(X_train)} 8x8 digit images ({len(X_test)} held out)...")
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32, verbose=not args.quiet)
    seconds = time.perf_counter() - start
    scores = net.evaluate(X_test, y_test)
    nn.io.save(net, args.out, extra={"dataset": "digits", "task": "classification", "classes": list(range(10)),
                                     "image_shape": [8, 8], "scaler": None})  # fmt: skip
    interrupted = history.stop_reason == "interrupted"
    note = " (interrupted: saved what was trained)" if interrupted else ""
    print(
        f"Test accuracy: {scores['accuracy']:.2%} on {len(X_test)} images; "
        f"{net.n_params:,} parameters; trained in {seconds:.1f} s{note}."
    )
    print(f"Model saved to {Path(args.out).resolve()}")
    return 130 if interrupted else 0


def cmd_playground(args: argparse.Namespace) -> int:
    """Watch a network on the real engine learn 2-D data live in your browser (127.0.0.1, a free port)."""
    from ..playground.server import serve

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be 0 to 65535; received {args.port}")
    serve(args.host, args.port, open_browser=not args.no_browser, max_rate=min(args.max_rate, 60.0))
    return 0
