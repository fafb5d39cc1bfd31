"""The ``nnscratch`` command line (also ``python -m nnscratch``).

Every command is a function ``cmd_NAME(args) -> int``; ``main(argv)`` returns
the exit code, so tests call it directly. Exit codes: 0 success, 1 a failure
reported as one ``error:`` line (missing file, shape mismatch, bad data,
divergence), 2 bad arguments (one line), 130 interrupted (Ctrl-C; ``train``
still saves what it trained).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .args import positive_float, positive_int, seed

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives exactly one clear line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; "(default: X)" added only where the help does not
    already say its default and there is one worth saying (not None, not off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default is argparse.SUPPRESS
                or action.option_strings == []
                or action.dest == "help"):  # fmt: skip
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".strip()


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command."""
    from nnscratch import __version__

    from .commands import cmd_demo, cmd_evaluate, cmd_explain, cmd_export, cmd_info, cmd_playground, cmd_predict
    from .train import add_train_parser

    parser = _Parser(
        prog="nnscratch",
        description="Neural networks from scratch in NumPy.",
        epilog="Run 'nnscratch COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"nnscratch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="train on the bundled 8x8 digits and save the model (no download)",
                          description=cmd_demo.__doc__, formatter_class=_Formatter, epilog="""examples:
  nnscratch demo
  nnscratch demo --epochs 100 --out models/digits.safetensors --quiet
""")  # fmt: skip
    demo.add_argument("--epochs", type=positive_int, default=60, help="training epochs")
    demo.add_argument("--seed", type=seed, default=0, help="random seed")
    demo.add_argument("--out", default="nnscratch-demo.safetensors", help="model file to write")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)

    add_train_parser(sub, _Formatter)

    ev = sub.add_parser("evaluate", help="score a saved model on labelled data", description=cmd_evaluate.__doc__,
                        formatter_class=_Formatter, epilog="""examples:
  nnscratch evaluate models/digits.safetensors digits
  nnscratch evaluate models/data.safetensors test.csv --label target
""")  # fmt: skip
    ev.add_argument("model", help="a model file written by 'nnscratch train'")
    ev.add_argument("data", help="dataset name or labelled CSV")
    ev.add_argument("--label", default="-1", help="CSV label column, by name or index")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="labels and probabilities for the rows of a CSV",
                        description=cmd_predict.__doc__, formatter_class=_Formatter, epilog="""examples:
  nnscratch predict models/data.safetensors new_rows.csv
  nnscratch predict models/data.safetensors new_rows.csv -o predictions.csv
  nnscratch predict models/data.safetensors labelled.csv --drop-column target
""")  # fmt: skip
    pr.add_argument("model")
    pr.add_argument("input", help="CSV of inputs, one row per sample")
    pr.add_argument("-o", "--output", help="write the predictions here instead of standard output")
    pr.add_argument("--force", action="store_true", help="replace an existing -o that is not a predictions file")
    pr.add_argument("--drop-column", help="a column of the CSV to ignore (e.g. its label), by name or index")
    pr.set_defaults(func=cmd_predict)

    info = sub.add_parser(
        "info",
        help="a saved model's summary",
        description=cmd_info.__doc__,
        formatter_class=_Formatter,
        epilog="examples:\n  nnscratch info models/digits.safetensors\n",
    )
    info.add_argument("model")
    info.set_defaults(func=cmd_info)

    export = sub.add_parser(
        "export",
        help="write a model as ONNX",
        description=cmd_export.__doc__,
        formatter_class=_Formatter,
        epilog="examples:\n  nnscratch export models/digits.safetensors -o digits.onnx\n",
    )
    export.add_argument("model")
    export.add_argument("-o", "--output", help="the ONNX file (default: the model's name with .onnx)")
    export.add_argument("--force", action="store_true", help="replace an existing -o that is not an ONNX model "
                        "nnscratch wrote")  # fmt: skip
    export.set_defaults(func=cmd_export)

    ex = sub.add_parser("explain", help="one backpropagation step, every number shown",
                        description=cmd_explain.__doc__, formatter_class=_Formatter, epilog="""examples:
  nnscratch explain chain
  nnscratch explain 2-3-2 --lr 0.5
  nnscratch explain models/xor.safetensors --input 0 1 --target 1
""")  # fmt: skip
    ex.add_argument("model", help="a model file, or a worked example: chain, 2-3-2")
    ex.add_argument("--input", type=float, nargs="+", help="one sample's inputs")
    ex.add_argument("--target", type=float, nargs="+", help="its target (class index, or values)")
    ex.add_argument("--lr", type=positive_float, default=0.1, help="learning rate of the step")
    ex.set_defaults(func=cmd_explain)

    play = sub.add_parser("playground", help="watch a network learn in your browser (needs the playground extra)",
                          description=cmd_playground.__doc__, formatter_class=_Formatter, epilog="""examples:
  nnscratch playground
  nnscratch playground --port 8000 --no-browser
""")  # fmt: skip
    play.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but loopback is announced")
    play.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    play.add_argument("--no-browser", action="store_true", help="print the address only, do not open a browser")
    play.add_argument("--max-rate", type=positive_float, default=20.0, help="page updates per second at most")
    play.set_defaults(func=cmd_playground)

    from ..weblogs.cli import add_logs_parser

    add_logs_parser(sub, _Parser, _Formatter)
    return parser


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit raises nothing more."""

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    import sqlite3

    from ..datasets import CSVError, DataFileError, DataNotFoundError
    from ..extras import MissingExtraError
    from ..io import ModelFileError
    from .args import CommandError
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MissingExtraError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (CommandError, DataError, CSVError, ModelFileError, DataFileError, DataNotFoundError,
            FileNotFoundError) as err:  # fmt: skip
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # a bad value that only the engine could judge
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # outputs that overflowed, a training run that diverged
        print(f"error: {err}", file=sys.stderr)
        return 1
    except sqlite3.Error as err:  # a state file the tool opened and cannot use now (disk full, locked)
        print(f"error: SQLite: {err} (the watcher's state file: see --state)", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as cat does
        _silence_stdout()
        return 141
    except OSError as err:  # one line naming the path and the reason, for every command
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except MemoryError as err:  # data or a network too big for this machine, for any command
        print(f"error: not enough memory ({err or 'an allocation failed'}): the data or the network is too big for "
              "this machine; use a smaller one.", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
