"""Log formats: one registry, one entry per format, detection from a file's first lines.

Adding a format is one file that defines ``FORMAT`` (a ``LogFormat``) and one
line in ``FORMATS`` below; every command that reads logs then accepts it with
``--format NAME`` and detects it by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import combined, jsonlines, w3c
from .base import LineParser, LogFormat

__all__ = ["FORMATS", "LogFormat", "LineParser", "get_format", "detect", "DETECT_LINES"]

FORMATS: dict[str, LogFormat] = {
    combined.FORMAT.name: combined.FORMAT,  # Apache/nginx common and combined, the Web Bot variant
    jsonlines.FORMAT.name: jsonlines.FORMAT,  # JSON lines: nginx escape=json, Caddy, Traefik
    w3c.FORMAT.name: w3c.FORMAT,  # W3C extended (IIS)
}
DETECT_LINES = 20  # a file's first non-empty lines that detection looks at
_SYSLOG = re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [^:\s]+(?:\[\d+\])?: (.*)")


def _names() -> str:
    return ", ".join(f"{name} ({f.description})" for name, f in FORMATS.items())


def get_format(name: str) -> LogFormat:
    """The registered format called ``name``, or a ``ValueError`` naming them all."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown log format {name!r}; the formats are: {_names()}.") from None


def detect(lines: Sequence[str | bytes], source: str = "the log") -> LogFormat:
    """The format most of ``lines`` (a file's first lines) look like; ``combined`` for a file
    with no line to look at. A ``ValueError`` naming the formats when none fits."""
    text = [(line.decode("utf-8", "replace") if isinstance(line, bytes) else line).strip() for line in lines]
    text = [line for line in text if line][:DETECT_LINES]
    if not text:
        return FORMATS["combined"]
    votes = {name: sum(map(f.sniff, text)) for name, f in FORMATS.items()}
    best = max(votes, key=votes.__getitem__)  # ties: the first registered
    if votes[best] == 0:
        raise ValueError(f"{source}: its first lines fit none of the log formats (e.g. {text[0][:120]!r}). "
                         f"{_hint(text)}The formats are: {_names()}. Name one with --format NAME.")  # fmt: skip
    return FORMATS[best]


def _hint(text: Sequence[str]) -> str:
    """What the lines look like instead, when that is known: UTF-16 text, or syslog lines
    carrying an access log."""
    if text[0].startswith(("\ufeff", "\ufffd\ufffd")) or text[0].count("\x00") > len(text[0]) // 4:
        return "They look like UTF-16 text: convert the file to UTF-8 first (iconv -f UTF-16 -t UTF-8). "
    inner = [m.group(1) for m in map(_SYSLOG.fullmatch, text) if m]
    for name, f in FORMATS.items():
        if inner and sum(map(f.sniff, inner)) >= len(inner) / 2:
            return (f"They look like syslog lines carrying {name} lines after a prefix such as "
                    f"{text[0][: len(text[0]) - len(inner[0])]!r}: strip the prefix first (e.g. sed -E "
                    "'s/^[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [^ ]+ [^:]+: //'). ")  # fmt: skip
    return ""
