"""The W3C extended log format, as IIS writes it.

A file starts with directives (``#Software:``, ``#Version:``, ``#Date:``,
``#Fields:``); ``#Fields:`` names the space-separated columns of the lines
that follow, and may change when the server restarts. The columns read here:
``date`` and ``time`` (UTC), ``c-ip``, ``cs-method``, ``cs-uri-stem``,
``cs-uri-query``, ``cs-version``, ``sc-status``, ``sc-bytes``,
``cs(User-Agent)`` and ``cs(Referer)`` (IIS writes their spaces as ``+``); ``-``
is an empty value. Lines before any ``#Fields:`` (a log followed from its
end) are read with IIS's default columns. Directive lines are counted as
skipped, with their own reason.
"""

from __future__ import annotations

import calendar
import re

from ..record import LogRecord, Malformed, request_record
from .base import LineParser, LogFormat

__all__ = ["W3CParser", "IIS_DEFAULT_FIELDS", "FORMAT"]

IIS_DEFAULT_FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
                      "cs(Referer) sc-status sc-substatus sc-win32-status time-taken").split()  # fmt: skip
_DATA = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \S")
_DIRECTIVE = re.compile(r"#(?:Software|Version|Date|Fields|Start-Date|End-Date|Remark):")


def _seconds(date: str, clock: str) -> float | None:
    try:
        year, month, day = (int(x) for x in date.split("-"))
        hh, mm, ss = clock.split(":")
        h, m, s = int(hh), int(mm), float(ss)
        if not (1 <= month <= 12 and 1 <= day <= 31 and h <= 23 and m <= 59 and s < 61):
            return None
        return calendar.timegm((year, month, day, h, m, 0)) + s
    except (ValueError, OverflowError):
        return None


class W3CParser:
    """Parses the lines of one W3C file, following its ``#Fields:`` directives."""

    def __init__(self) -> None:
        self.fields = {name: i for i, name in enumerate(IIS_DEFAULT_FIELDS)}

    def __repr__(self) -> str:
        return f"W3CParser(fields={list(self.fields)})"

    def __call__(self, line: str | bytes) -> LogRecord | Malformed:
        try:
            text = (line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line).rstrip("\r\n")
            if not text.strip():
                return Malformed("empty line", text)
            if text.startswith("#"):
                if text.startswith("#Fields:"):
                    self.fields = {name: i for i, name in enumerate(text[len("#Fields:") :].split())}
                return Malformed("W3C directive (#Fields:, #Software: and the like)", text[:300])
            return self._record(text)
        except Exception as err:  # noqa: BLE001 - the contract is "never raises"; report instead
            return Malformed(f"internal parser error: {type(err).__name__}", str(line)[:300])

    def _record(self, text: str) -> LogRecord | Malformed:
        values, fields = text.split(" "), self.fields

        def get(name: str) -> str:
            i = fields.get(name)
            return values[i] if i is not None and i < len(values) and values[i] != "-" else ""

        if len(values) != len(fields):
            return Malformed(f"W3C line with {len(values)} fields where #Fields: names {len(fields)}", text[:300])
        when = _seconds(get("date"), get("time"))
        if when is None:
            return Malformed("unreadable time stamp", text[:300])
        method, stem = get("cs-method"), get("cs-uri-stem")
        if not method or not stem:
            return Malformed("W3C line without cs-method and cs-uri-stem", text[:300])
        target = stem + ("?" + get("cs-uri-query") if get("cs-uri-query") else "")
        request = f"{method} {target} {get('cs-version')}".strip()
        status, size = get("sc-status"), get("sc-bytes")
        return request_record(get("c-ip") or "-", when, request, int(status) if status.isdigit() else 0,
                              int(size) if size.isdigit() else 0,
                              get("cs(Referer)").replace("+", " ") or "-", "-",
                              get("cs(User-Agent)").replace("+", " ") or "-")  # fmt: skip


def _parser() -> LineParser:
    return W3CParser()


def _sniff(line: str) -> bool:
    return bool(_DIRECTIVE.match(line) or _DATA.match(line))


FORMAT = LogFormat("w3c", "W3C extended log format (IIS), columns from its #Fields: directive", _parser, _sniff)
