"""One request, as every part of the wing sees it, whatever log format it came from.

``LogRecord`` is what a log format's parser makes of a line (``formats``), and
``client_of`` says whom it belongs to: the one definition of a client.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["LogRecord", "Malformed", "client_of", "split_request"]

REQUEST = re.compile(r"([A-Za-z][A-Za-z_-]{0,19}) (\S+)(?: (HTTP/\d(?:\.\d)?))?")


class LogRecord(NamedTuple):
    """One parsed request. ``method``/``target``/``version`` are empty when the
    request line is not ``METHOD target [HTTP/x.y]`` (``request_ok`` is False)."""

    host: str
    time: float
    request: str
    method: str
    target: str
    version: str
    request_ok: bool
    status: int
    size: int
    referrer: str
    session: str
    agent: str


def client_of(record: LogRecord) -> str:
    """The client a line belongs to: the session id where the log has one, else the address.

    The one definition: rules, features, client evidence, decisions and reports all key
    clients by it. ``"-"`` (neither) is nobody: never judged, never banned.
    """
    return record.session if record.session != "-" else record.host


class Malformed(NamedTuple):
    """A line that is not an access-log entry, and why."""

    reason: str
    line: str


_CACHE_LIMIT = 50_000  # entries; floods repeat request lines
_request_cache: dict[str, tuple[str, str, str, bool]] = {}


def split_request(request: str) -> tuple[str, str, str, bool]:
    """``(method, target, version, ok)`` of a request line (``ok``: it is ``METHOD target [HTTP/x.y]``),
    cached: floods repeat their request lines. Every format builds its records through it.

    >>> split_request("GET /a?b=1 HTTP/1.1"), split_request("\\x16\\x03")
    (('GET', '/a?b=1', 'HTTP/1.1', True), ('', '', '', False))
    """
    parts = _request_cache.get(request)
    if parts is None:
        if len(_request_cache) >= _CACHE_LIMIT:
            _request_cache.clear()
        m = REQUEST.fullmatch(request)
        parts = _request_cache[request] = (m.group(1), m.group(2), m.group(3) or "", True) if m else ("", "", "", False)
    return parts
