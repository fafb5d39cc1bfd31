"""Argument types and checks shared by every sub-command (``nnscratch train``,
``nnscratch logs ...``): a leaf module, so the command modules never import
the CLI package that imports them."""

from __future__ import annotations

import argparse
import os

__all__ = ["positive_int", "positive_float", "check_writable", "jobs_count"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def check_writable(out: str | os.PathLike[str], option: str) -> None:
    """Refuse an output file that cannot be written, before the work that produces it: a
    folder, or a place where no file can be created. Raises OSError (one line from ``main``)."""
    import errno
    import tempfile
    from pathlib import Path

    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{option} is a folder; give a file name such as "
                                f"{out / 'model.safetensors'}", str(out))  # fmt: skip
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".nnscratch-write-test-"):
            pass
    except OSError as err:
        raise OSError(err.errno, f"cannot write {option} here ({err.strerror or err}); choose another {option}",
                      str(out)) from None  # fmt: skip


def jobs_count(text: str) -> int:
    """``--jobs``: a positive number of workers, or -1 for every core."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1 (all cores), got {value}")
    return value
