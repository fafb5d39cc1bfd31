"""The Apache/nginx *common* and *combined* family, with the variants met in real logs.

One regular expression covers an extra trailing field, a session id between
the referrer and the user agent (the Web Bot Detection dataset), escaped
quotes inside quoted fields (``\\"``), ``-`` for missing fields, empty
requests, binary junk and very long or non-ASCII URLs. Time stamps keep their
time zone: ``time`` is seconds since the epoch, UTC.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from ..record import LogRecord, Malformed, request_record
from .base import LogFormat

__all__ = ["parse_line", "parse_clf_time", "FORMAT"]

# A quoted field with backslash escapes, in the "unrolled loop" form: runs of
# ordinary characters between escapes, much faster than one alternation per character.
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
LINE = re.compile(
    r"(\S+) (\S+)(?: (\S+|\"[^\"]*\"))? \[([^\]]+)\] "  # host, ident, [user,] [time]
    + _QUOTED  # "request"
    + r" (\d{3}|-) (\d+|-)"  # status, bytes
    + r"(?: "
    + _QUOTED
    + r"(?: ([^\s\"]+))? "
    + _QUOTED
    + r")?"  # "referrer" [session] "agent"
    + r"(.*)",  # anything after: an extra field, trailing spaces
    re.DOTALL,
)
TIME = re.compile(r"(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?: ([+-])(\d{2})(\d{2}))?")
MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}

_day_cache: dict[tuple[str, str, str, str], int] = {}
_time_cache: dict[str, float | None] = {}
_CACHE_LIMIT = 50_000  # entries; floods repeat time stamps and request lines


def _cached(cache: dict, key: str, compute: Any) -> Any:
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        value = cache[key] = compute(key)
    return value


_MISSING = object()


def parse_clf_time(text: str) -> float | None:
    """Seconds since the epoch (UTC) of a CLF time stamp, ``17/May/2015:10:05:03 +0000``; None if unreadable."""
    text = text.strip()
    if len(text) == 26 and text[2] == "/" and text[6] == "/" and text[11] == ":" and text[20] == " ":
        # The usual "dd/Mon/yyyy:HH:MM:SS +zzzz": read by position (no regex).
        day, mon, year, hh, mm, ss = text[0:2], text[3:6], text[7:11], text[12:14], text[15:17], text[18:20]
        sign, tzh, tzm = text[21], text[22:24], text[24:26]
        if not (day + year + hh + mm + ss + tzh + tzm).isdigit() or sign not in "+-":
            return None
    else:
        m = TIME.fullmatch(text)
        if m is None:
            return None
        day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    month = MONTHS.get(mon.capitalize())
    if month is None:
        return None
    key = (year, mon, day, (sign or "+") + (tzh or "00") + (tzm or "00"))
    base = _day_cache.get(key)
    if base is None:  # midnight of that day in UTC, minus the zone offset; cached, floods share days
        try:
            midnight = calendar.timegm((int(year), month, int(day), 0, 0, 0))
        except (ValueError, OverflowError):
            return None
        offset = (int(tzh or 0) * 3600 + int(tzm or 0) * 60) * (-1 if sign == "-" else 1)
        base = midnight - offset
        if len(_day_cache) > 10_000:
            _day_cache.clear()
        _day_cache[key] = base
    h, m_, s_ = int(hh), int(mm), int(ss)
    if h > 23 or m_ > 59 or s_ > 60 or not 1 <= int(day) <= 31:
        return None
    return float(base + h * 3600 + m_ * 60 + s_)


def _unescape(text: str) -> str:
    return text.replace('\\"', '"') if "\\" in text else text


def parse_line(line: str | bytes) -> LogRecord | Malformed:
    """Parse one access-log line; never raises.

    >>> r = parse_line('1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a?x=1 HTTP/1.1" 200 512 "-" "curl/7.1"')
    >>> r.method, r.target, r.status, r.agent, r.time
    ('GET', '/a?x=1', 200, 'curl/7.1', 1431857103.0)
    >>> parse_line("\\x16\\x03\\x01 junk").reason
    'not an access-log line'
    """
    try:
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.rstrip("\r\n")
        if not line.strip():
            return Malformed("empty line", line)
        m = LINE.fullmatch(line)
        if m is None:
            return Malformed("not an access-log line", line[:300])
        host, _, _, time_text, request, status, size, referrer, session, agent, _rest = m.groups()
        when = _cached(_time_cache, time_text, parse_clf_time)  # busy logs repeat each second
        if when is None:
            return Malformed("unreadable time stamp", line[:300])
        return request_record(
            host,
            when,
            _unescape(request),
            int(status) if status != "-" else 0,
            int(size) if size != "-" else 0,
            _unescape(referrer) if referrer is not None else "-",
            session or "-",
            _unescape(agent) if agent is not None else "-",
        )
    except Exception as err:  # noqa: BLE001 - the contract is "never raises"; report instead
        return Malformed(f"internal parser error: {type(err).__name__}", str(line)[:300])


def _sniff(line: str) -> bool:
    return LINE.fullmatch(line) is not None


FORMAT = LogFormat(
    "combined",
    "Apache/nginx common and combined logs and their variants (extra field, session id, escaped quotes)",
    lambda: parse_line,
    _sniff,
)
