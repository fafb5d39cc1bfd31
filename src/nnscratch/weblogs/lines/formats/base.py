"""What a log format is: a name, a sentence, a parser per file and a test of one line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..record import LogRecord, Malformed

__all__ = ["LogFormat", "LineParser"]

LineParser = Callable[[str | bytes], LogRecord | Malformed]


@dataclass(frozen=True)
class LogFormat:
    """One entry of the format registry (``formats.FORMATS``).

    ``parser()`` returns a fresh parser for one file (a format with header lines,
    such as W3C's ``#Fields:``, keeps what they said); the parser never raises,
    returning a ``Malformed`` with the reason instead. ``sniff(line)`` says whether a
    line looks like this format: detection asks it of a file's first lines.
    """

    name: str
    description: str
    parser: Callable[[], LineParser]
    sniff: Callable[[str], bool]
