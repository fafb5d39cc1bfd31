"""One request, as every part of the wing sees it, whatever log format it came from.

``LogRecord`` is what a log format's parser makes of a line (``formats``), and
``client_of`` says whom it belongs to: the one definition of a client.
``by_ipv6_prefix`` makes a parser name IPv6 clients by their network, as
CrowdSec does: one person's device may take a new address of its /64 for every
connection, so the address alone would split a client into many.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["LogRecord", "Malformed", "client_of", "request_record", "split_request", "shared", "ipv6_network",
           "by_ipv6_prefix"]  # fmt: skip

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


def ipv6_network(host: str, prefix: int) -> str:
    """``host`` as its ``/prefix`` network when it is an IPv6 address, else as it is.

    >>> ipv6_network("2001:db8:5:6:a:b:c:d", 64), ipv6_network("203.0.113.7", 64)
    ('2001:db8:5:6::/64', '203.0.113.7')
    >>> ipv6_network("::ffff:203.0.113.7", 64)  # an IPv4 client seen through an IPv6 socket
    '203.0.113.7'
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host  # not an address: left as the log has it
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, prefix), strict=False))


def by_ipv6_prefix(parse: Callable[[Any], Any], prefix: int | None) -> Callable[[Any], Any]:
    """A line parser whose records name IPv6 clients by their ``/prefix`` network
    (``ipv6_network``); ``parse`` itself when ``prefix`` is None."""
    if prefix is None:
        return parse
    networks: dict[str, str] = {}

    def parse_by_network(line: Any) -> Any:
        item = parse(line)
        if isinstance(item, LogRecord) and ":" in item.host:
            network = networks.get(item.host)
            if network is None:
                if len(networks) >= 100_000:
                    networks.clear()
                network = networks[item.host] = ipv6_network(item.host, prefix)
            item = item._replace(host=network)
        return item

    return parse_by_network


class Malformed(NamedTuple):
    """A line that is not an access-log entry, and why."""

    reason: str
    line: str


_CACHE_LIMIT = 50_000  # entries; floods repeat request lines
_request_cache: dict[str, tuple[str, str, str, bool]] = {}
_shared: dict[str, str] = {}


def shared(text: str) -> str:
    """``text``, or the equal string seen before: one object for each request line, referrer
    and user agent that a log repeats (a cache of at most ``_CACHE_LIMIT`` strings, started
    afresh when full). A stream holds the lines of ``SLACK`` seconds back for time order;
    without it each held line would keep its own copy of the same user agent."""
    kept = _shared.get(text)
    if kept is None:
        if len(_shared) >= _CACHE_LIMIT:
            _shared.clear()
        kept = _shared[text] = text
    return kept


def request_record(host: str, time: float, request: str, status: int, size: int, referrer: str, session: str,
                   agent: str) -> LogRecord:  # fmt: skip
    """The record of one request, as every format builds it: the request line split
    (``split_request``), and its repeated strings shared (``shared``)."""
    method, target, version, ok = split_request(request)
    return LogRecord(host, time, shared(request), method, target, version, ok, status, size, shared(referrer), session,
                     shared(agent))  # fmt: skip


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
