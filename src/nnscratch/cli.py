"""The ``nnscratch`` command line.

Every command is a function ``cmd_NAME(args) -> int`` registered on an
argparse sub-parser; ``main(argv)`` returns the exit code, so tests can call it
directly. Bad arguments exit with code 2 and one line on stderr (argparse's
convention); other failures exit with 1 and a one-line ``error:`` message.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

DEMO_EPILOG = """examples:
  nnscratch demo
  nnscratch demo --epochs 50 --out models/digits.safetensors --quiet
"""


class CLIError(Exception):
    """A failure to report as one line and exit code 1."""


def _say(args: argparse.Namespace, *text: str) -> None:
    print(*text, file=sys.stdout)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train on scikit-learn's bundled 8x8 digits (no download) and save the model."""
    from sklearn.datasets import load_digits

    import nnscratch as nn
    from nnscratch.data import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)
    net = nn.Network.from_sizes([64, 128, 10], "relu", "softmax", optimizer=nn.Adam(1e-3), seed=args.seed)
    _say(args, f"Training {net.layers} on {len(X_train)} 8x8 digit images ({len(X_test)} held out)...")
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32, verbose=not args.quiet)
    seconds = time.perf_counter() - start
    scores = net.evaluate(X_test, y_test)
    net.save(args.out)
    note = " (interrupted: saved what was trained)" if history.stop_reason == "interrupted" else ""
    _say(
        args,
        f"Test accuracy: {scores['accuracy']:.2%} on {len(X_test)} images; "
        f"{net.n_params:,} parameters; trained in {seconds:.1f} s{note}.",
    )
    _say(args, f"Model saved to {Path(args.out).resolve()}")
    return 130 if history.stop_reason == "interrupted" else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="nnscratch",
        description="Neural networks from scratch in NumPy.",
        epilog="Run 'nnscratch COMMAND --help' for a command's options and examples.",
    )
    from nnscratch import __version__

    parser.add_argument("--version", action="version", version=f"nnscratch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = sub.add_parser(
        "demo",
        help="train on the bundled 8x8 digits and save the model (no download)",
        description=cmd_demo.__doc__,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--epochs", type=_positive_int, default=60, help="training epochs (default 60)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--out", default="nnscratch-demo.safetensors", help="model file to write")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
