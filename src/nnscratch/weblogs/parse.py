"""Parsing web-server access logs, line by line, in bounded memory.

One regular expression covers the Apache/nginx *common* and *combined*
formats and the variants met in real logs: an extra trailing field, a session
id between the referrer and the user agent (the Web Bot Detection dataset),
escaped quotes inside quoted fields (``\\"``), ``-`` for missing fields, empty
requests, binary junk and very long or non-ASCII URLs. Time stamps keep their
time zone: ``time`` is seconds since the epoch, UTC.

``parse_line`` never raises: it returns a ``LogRecord`` or a ``Malformed``
with the reason. ``read_lines`` streams files (plain or gzip) or standard input,
and ``ParseStats`` counts what was skipped, with a few examples of each.
"""

from __future__ import annotations

import calendar
import re
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

__all__ = [
    "LogRecord", "Malformed", "UnreadableLog", "client_of", "parse_line", "read_lines", "ParseStats", "parse_stream",
    "in_time_order", "TimeOrder", "SLACK",
]  # fmt: skip

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
REQUEST = re.compile(r"([A-Za-z][A-Za-z_-]{0,19}) (\S+)(?: (HTTP/\d(?:\.\d)?))?")
TIME = re.compile(r"(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?: ([+-])(\d{2})(\d{2}))?")
MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}


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


_day_cache: dict[tuple[str, str, str, str], int] = {}
_request_cache: dict[str, tuple[str, str, str, bool]] = {}
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


def _split_request(request: str) -> tuple[str, str, str, bool]:
    m = REQUEST.fullmatch(request)
    return (m.group(1), m.group(2), m.group(3) or "", True) if m else ("", "", "", False)


def _parse_time(text: str) -> float | None:
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
        when = _cached(_time_cache, time_text, _parse_time)  # busy logs repeat each second
        if when is None:
            return Malformed("unreadable time stamp", line[:300])
        request = _unescape(request)
        method, target, version, ok = _cached(_request_cache, request, _split_request)
        return LogRecord(
            host,
            when,
            request,
            method,
            target,
            version,
            ok,
            int(status) if status != "-" else 0,
            int(size) if size != "-" else 0,
            _unescape(referrer) if referrer is not None else "-",
            session or "-",
            _unescape(agent) if agent is not None else "-",
        )
    except Exception as err:  # noqa: BLE001 - the contract is "never raises"; report instead
        return Malformed(f"internal parser error: {type(err).__name__}", str(line)[:300])


@dataclass
class ParseStats:
    """Counts of parsed and skipped lines, with up to ``keep`` examples per reason."""

    parsed: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    keep: int = 3
    unreadable: list[UnreadableLog] = field(default_factory=list)

    def add(self, item: LogRecord | Malformed) -> None:
        if isinstance(item, LogRecord):
            self.parsed += 1
            return
        self.skipped[item.reason] += 1
        examples = self.examples.setdefault(item.reason, [])
        if len(examples) < self.keep:
            examples.append(item.line[:160])

    def merge(self, other: ParseStats) -> None:
        """Add another reading's counts, examples and unreadable logs to these."""
        self.parsed += other.parsed
        self.skipped.update(other.skipped)
        for reason, examples in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine += examples[: self.keep - len(mine)]
        self.unreadable += other.unreadable

    def check_readable(self) -> None:
        """Refuse to go on from logs that were cut short: an ``OSError`` naming the first."""
        if self.unreadable:
            first = self.unreadable[0]
            raise OSError(5, f"{first.reason} after line {first.lines:,}", first.path)

    @property
    def total(self) -> int:
        return self.parsed + sum(self.skipped.values())

    def summary(self) -> str:
        lines = [f"{self.parsed:,} of {self.total:,} lines parsed; {sum(self.skipped.values()):,} skipped"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  {count:,} {reason}, e.g. {self.examples[reason][0]!r}")
        lines += [f"  unreadable: {problem}" for problem in self.unreadable]
        return "\n".join(lines)


def _open(path: str | Path) -> tuple[IO[bytes], bool]:
    """A binary reader for a path or ``-`` (standard input), and whether it holds gzip
    (detected by its magic bytes, for files and standard input alike)."""
    if str(path) == "-":
        stdin = sys.stdin.buffer
        return stdin, (stdin.peek(2)[:2] if hasattr(stdin, "peek") else b"") == b"\x1f\x8b"
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, not a log file (give the files inside it)", str(path))
    handle = path.open("rb", buffering=1 << 20)
    return handle, handle.peek(2)[:2] == b"\x1f\x8b"


def _gunzip_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a gzip stream (several members allowed), decompressed piece by piece
    so that a stream cut short still gives every line before the cut; then ``EOFError``."""
    decompressor = zlib.decompressobj(wbits=31)
    rest = b""
    while True:
        block = handle.read(1 << 16)
        if not block:
            break
        data = decompressor.decompress(block)
        while decompressor.eof and decompressor.unused_data:  # the next member of a multi-member file
            tail = decompressor.unused_data
            decompressor = zlib.decompressobj(wbits=31)
            data += decompressor.decompress(tail)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from (line + b"\n" for line in lines)
    if rest:
        yield rest
    if not decompressor.eof:
        raise EOFError("the stream ended before the end-of-stream marker")


class UnreadableLog(NamedTuple):
    """A log that stopped before its end (a truncated or corrupt gzip stream)."""

    path: str
    lines: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason} after line {self.lines:,}; the lines before it were used"


def read_lines(
    paths: Iterable[str | Path], problems: list[UnreadableLog] | None = None
) -> Iterator[tuple[str, int, bytes]]:  # fmt: skip
    """``(source, line_number, raw_line)`` for every line of every file, streamed
    (gzip detected by content; ``-`` is standard input). Memory stays bounded.

    A gzip stream that ends early or is corrupt stops its file: the lines read
    so far are yielded, and the problem is appended to ``problems`` (raised as
    ``EOFError`` when ``problems`` is None) so that the caller can report it.
    """
    for path in paths:
        handle, gzipped = _open(path)
        number = 0
        try:
            lines = _gunzip_lines(handle) if gzipped else handle
            try:
                for number, raw in enumerate(lines, start=1):  # noqa: B007 - number is reported below
                    yield str(path), number, raw
            except (EOFError, zlib.error) as err:
                problem = UnreadableLog(str(path), number, f"the gzip stream is cut short or corrupt ({err})")
                if problems is None:
                    raise EOFError(str(problem)) from None
                problems.append(problem)
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()


def parse_stream(paths: Iterable[str | Path], stats: ParseStats | None = None) -> Iterator[tuple[str, int, LogRecord]]:
    """Parsed records with their source and line number; malformed lines are
    counted in ``stats`` and skipped, logs cut short are listed in ``stats.unreadable``."""
    stats = stats if stats is not None else ParseStats()
    for source, number, raw in read_lines(paths, stats.unreadable):
        item = parse_line(raw)
        stats.add(item)
        if isinstance(item, LogRecord):
            yield source, number, item


SLACK = 300.0  # seconds of log time held back to put lines in time order (a request is logged when it ends)


class TimeOrder:
    """Puts items in time order, holding back at most ``slack`` seconds of log time.

    Access logs are only approximately in time order (a request is logged when
    it ends). Every consumer of time windows (training, ``evaluate``,
    ``classify``, the live watcher) reads lines through this one class, so they
    all see the same order and compute the same windows. ``push`` items, take
    what ``ready()`` gives; ``ready(end=True)`` flushes the rest. An item more
    than ``slack`` behind the newest one seen comes out with the next batch
    (its window is then approximate, the same way for every consumer). Items
    with the same time come out in the order of ``tiebreak(item)`` (time stamps
    have whole seconds, so the order does not depend on how the file
    interleaved them), then in the order pushed.
    """

    def __init__(self, time_of: Any, slack: float = SLACK, tiebreak: Any = None) -> None:
        self.time_of, self.slack, self.tiebreak = time_of, float(slack), tiebreak
        self.heap: list[tuple[float, Any, int, Any]] = []
        self.newest = float("-inf")
        self.pushed = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, item: Any) -> None:
        import heapq

        when = self.time_of(item)
        self.newest = max(self.newest, when)
        heapq.heappush(self.heap, (when, self.tiebreak(item) if self.tiebreak else 0, self.pushed, item))
        self.pushed += 1

    def release(self, items: Iterable[Any]) -> list[Any]:
        """Push each item and take what it lets go, one item at a time: what comes out
        depends on the items alone, never on how a caller cut them into calls."""
        import heapq

        heap, push, pop, tiebreak, slack = self.heap, heapq.heappush, heapq.heappop, self.tiebreak, self.slack
        out = []
        for item in items:
            when = self.time_of(item)
            if when > self.newest:
                self.newest = when
            push(heap, (when, tiebreak(item) if tiebreak else 0, self.pushed, item))
            self.pushed += 1
            limit = self.newest - slack
            while heap and heap[0][0] < limit:
                out.append(pop(heap)[3])
        return out

    def ready(self, end: bool = False) -> list[Any]:
        """The items that can go now, in order (all of them with ``end``; then it starts afresh)."""
        import heapq

        out = []
        while self.heap and (end or self.heap[0][0] < self.newest - self.slack):
            out.append(heapq.heappop(self.heap)[3])
        if end:
            self.newest = float("-inf")
        return out


def in_time_order(
    items: Iterable[Any], time_of: Any, slack: float = SLACK, tiebreak: Any = None
) -> Iterator[Any]:  # fmt: skip
    """``items`` re-ordered by ``TimeOrder`` (see there), as a generator."""
    order = TimeOrder(time_of, slack, tiebreak)
    for item in items:
        yield from order.release((item,))
    yield from order.ready(end=True)
