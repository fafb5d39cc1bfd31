"""Argument types and checks shared by every sub-command (``nnscratch train``,
``nnscratch logs ...``): a leaf module, so the command modules never import
the CLI package that imports them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CommandError", "positive_int", "positive_float", "non_negative_float", "fraction", "seed", "check_writable",
           "written_by_us", "jobs_count"]  # fmt: skip


class CommandError(Exception):
    """A failure to report as one line, with exit code 1."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (what NumPy's generators take)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 4294967295, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 4294967295, got {value}")
    return value


def _number(text: str, expected: str, ok: Callable[[float], bool]) -> float:
    """``text`` as a float that passes ``ok``; else an argparse error saying what was expected."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a penalty such as --l2)."""
    return _number(text, "a finite number >= 0", lambda v: 0 <= v < float("inf"))


def fraction(text: str) -> float:
    """A number in [0, 1) (a rate such as --dropout or --momentum, a share such as --test-size)."""
    return _number(text, "a number from 0 up to (not including) 1", lambda v: 0 <= v < 1)


def positive_float(text: str) -> float:
    return _number(text, "a positive number", lambda v: 0 < v < float("inf"))


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def duration(text: str) -> float:
    """Seconds of a duration: a positive number of seconds, or one with a unit as fail2ban and
    CrowdSec write them (``90s``, ``10m``, ``1h``, ``2d``, ``1w``)."""
    unit = text[-1:].lower()
    number, scale = (text[:-1], DURATION_UNITS[unit]) if unit in DURATION_UNITS else (text, 1.0)
    try:
        value = float(number) * scale
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration such as 600, 90s, 10m, 1h, 2d or 1w, got {text!r}")
    return value


def check_writable(
    out: str | os.PathLike[str], option: str, *, model: bool | str = False, inputs: Sequence[Any] = (),
    force: bool = False, example: str | None = None, ours: Callable[[Path], bool] | None = None,
) -> None:  # fmt: skip
    """Refuse an output file before the work that produces it: a folder, a place where no file
    can be created, one of the command's own ``inputs`` (always), and, unless ``force``, an
    existing file that is not ours: for a ``model`` output one that is not an nnscratch model
    (``model="onnx"``: not an ONNX model nnscratch wrote), for another output one that ``ours``
    (see ``written_by_us``) does not recognise as this command's own. ``example``: a file name
    the message for a folder suggests. Raises OSError (one line from ``main``)."""
    import errno
    import tempfile

    out = Path(out)
    if out.is_dir():
        name = example or ("model.safetensors" if model else "output.txt")
        raise IsADirectoryError(errno.EISDIR, f"{option} is a folder; give a file name such as {out / name}",
                                str(out))  # fmt: skip
    for source in inputs:
        if source not in (None, "-") and Path(source).exists() and out.exists() and out.samefile(source):
            raise FileExistsError(errno.EEXIST, f"{option} is also an input of this command: writing it would "
                                  f"destroy that input; choose another {option}", str(out))  # fmt: skip
    if model:
        ours = _is_onnx if model == "onnx" else _is_model
    kind = {"onnx": "an ONNX model nnscratch wrote", True: "an nnscratch model"}.get(model, "a file this command wrote")
    if ours is not None and not force and out.is_file() and out.stat().st_size > 0 and not ours(out):
        raise FileExistsError(errno.EEXIST, f"exists and is not {kind}: {option} would replace it; "
                              f"choose another {option}, or pass --force to replace it", str(out))  # fmt: skip
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".nnscratch-write-test-"):
            pass
    except OSError as err:
        raise OSError(err.errno, f"cannot write {option} here ({err.strerror or err}); choose another {option}",
                      str(out)) from None  # fmt: skip


def written_by_us(*starts: str, lines: Callable[[str], bool] | None = None) -> Callable[[Path], bool]:
    """A test for ``check_writable(ours=...)``: the file begins with one of ``starts`` (the
    header this command writes), or, with ``lines``, every line of it passes ``lines``."""

    def ours(path: Path) -> bool:
        with open(path, "rb") as f:
            raw = f.read(1 << 16)
        head = raw.decode("utf-8", errors="replace").splitlines()
        if lines is None:
            return bool(head) and head[0].startswith(starts)
        return all(lines(line) for line in (head[:-1] if len(raw) == 1 << 16 else head))  # the last may be cut

    return ours


def _is_onnx(path: Any) -> bool:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False).producer_name == "nnscratch"
    except Exception:  # noqa: BLE001 - anything that does not read as an ONNX model of ours is not ours
        return False


def _is_model(path: Any) -> bool:
    from .. import io

    try:
        io.read_metadata(path)
    except Exception:  # noqa: BLE001 - anything that does not read as our model is not ours
        return False
    return True


def jobs_count(text: str) -> int:
    """``--jobs``: a positive number of workers, or -1 for every core."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1 (all cores), got {value}")
    return value
