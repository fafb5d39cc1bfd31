"""Reading logs, line by line, in bounded memory: files, gzip, standard input, stats.

``read_lines`` streams files (plain or gzip, detected by content) or standard
input; ``parse_stream`` turns their lines into records with the format each
file has (named, or detected from its first lines: ``formats``); and
``ParseStats`` counts what was skipped, with a few examples of each.
"""

from __future__ import annotations

import bz2
import lzma
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import IO, NamedTuple

from .formats import DETECT_LINES, FORMATS, LineParser, LogFormat, detect, get_format
from .record import LogRecord, Malformed, by_ipv6_prefix

__all__ = [
    "compression_of", "UnreadableLog", "ParseStats", "LogPath", "read_lines", "read_range", "file_parser",
    "parse_stream", "read_text",
]  # fmt: skip


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

    def check_parsed(self, least: float = 0.1, lines: int = 20) -> None:
        """Refuse to call it a result when almost nothing parsed (under ``least`` of at least
        ``lines`` lines): a ``ValueError`` that says what the lines look like and which
        formats are read. Zero results are not success."""
        if self.total >= lines and self.parsed < least * self.total:
            reason, _ = self.skipped.most_common(1)[0]
            example, names = self.examples[reason][0][:120], ", ".join(FORMATS)
            raise ValueError(f"only {self.parsed:,} of {self.total:,} lines are access-log lines; the rest look "
                             f"like {example!r} ({reason}). The formats read are {names}: name the right one "
                             "with --format NAME, or check the files.")  # fmt: skip

    @property
    def total(self) -> int:
        return self.parsed + sum(self.skipped.values())

    def summary(self) -> str:
        lines = [f"{self.parsed:,} of {self.total:,} lines parsed; {sum(self.skipped.values()):,} skipped"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  {count:,} {reason}, e.g. {self.examples[reason][0]!r}")
        lines += [f"  unreadable: {problem}" for problem in self.unreadable]
        return "\n".join(lines)


# Compressed logs are recognised by their first bytes, for files and standard input alike.
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
_DECOMPRESSORS = {"gzip": lambda: zlib.decompressobj(wbits=31), "bzip2": bz2.BZ2Decompressor,
                  "xz": lzma.LZMADecompressor}  # fmt: skip
_CORRUPT = (EOFError, zlib.error, OSError, lzma.LZMAError)  # what a cut-short or corrupt stream raises


def _open(path: str | Path) -> tuple[IO[bytes], str | None]:
    """A binary reader for a path or ``-`` (standard input), and its compression (``gzip``,
    ``bzip2``, ``xz``, detected by the magic bytes; None: plain text)."""
    if str(path) == "-":
        handle = sys.stdin.buffer
        head = handle.peek(6)[:6] if hasattr(handle, "peek") else b""
    else:
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory, not a log file (give the files inside it)", str(path))
        handle = path.open("rb", buffering=1 << 20)
        head = handle.peek(6)[:6]
    return handle, next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def read_text(path: str | Path, what: str) -> str:
    """The text of a small file the user names (``what``: "label file", "manifest"):
    a folder, a missing file and bytes that are not UTF-8 are each a ValueError of one
    sentence that names the file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a {what}: give the file inside it.")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the {what} ({err.strerror or err}).") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: byte 0x{raw[err.start]:02x} is not UTF-8; a {what} is UTF-8 "
                         "text (is this the right file?).") from None  # fmt: skip


def compression_of(path: str | Path) -> str | None:
    """The compression of a log file (``gzip``, ``bzip2``, ``xz``) by its first bytes; None: plain."""
    handle, compression = _open(path)
    handle.close()
    return compression


def _decompressed_lines(handle: IO[bytes], kind: str) -> Iterator[bytes]:
    """The lines of a compressed stream (several members allowed), decompressed piece by
    piece so that a stream cut short still gives every line before the cut; then ``EOFError``."""
    decompressor = _DECOMPRESSORS[kind]()
    rest = b""
    while True:
        block = handle.read(1 << 16)
        if not block:
            break
        data = decompressor.decompress(block)
        while decompressor.eof and decompressor.unused_data:  # the next member of a multi-member file
            tail = decompressor.unused_data
            decompressor = _DECOMPRESSORS[kind]()
            data += decompressor.decompress(tail)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from (line + b"\n" for line in lines)
    if rest:
        yield rest
    if not decompressor.eof:
        raise EOFError("the stream ended before the end-of-stream marker")


class UnreadableLog(NamedTuple):
    """A log that stopped before its end (a truncated or corrupt compressed stream)."""

    path: str
    lines: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason} after line {self.lines:,}; the lines before it were used"


def read_lines(
    paths: Iterable[str | Path], problems: list[UnreadableLog] | None = None
) -> Iterator[tuple[str, int, bytes]]:  # fmt: skip
    """``(source, line_number, raw_line)`` for every line of every file, streamed
    (gzip, bzip2 and xz detected by content; ``-`` is standard input). Memory stays bounded.

    A compressed stream that ends early or is corrupt stops its file: the lines read
    so far are yielded, and the problem is appended to ``problems`` (raised as
    ``EOFError`` when ``problems`` is None) so that the caller can report it.
    """
    for path in paths:
        handle, compression = _open(path)
        number = 0
        try:
            lines = _decompressed_lines(handle, compression) if compression else handle
            try:
                for number, raw in enumerate(lines, start=1):  # noqa: B007 - number is reported below
                    yield str(path), number, raw
            except _CORRUPT as err:
                problem = UnreadableLog(str(path), number, f"the {compression} stream is cut short or corrupt ({err})")
                if problems is None:
                    raise EOFError(str(problem)) from None
                problems.append(problem)
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()


class LogPath(str):
    """A log's path (a ``str``, usable wherever a path is) with how to read it: the name of
    its format (``formats.FORMATS``; None: detect it from the file's first lines), and the
    prefix length by which its IPv6 clients are named (``record.by_ipv6_prefix``; None:
    each address is a client)."""

    log_format: str | None
    ipv6_prefix: int | None

    def __new__(cls, path: str | Path, log_format: str | None = None, ipv6_prefix: int | None = None) -> LogPath:
        if log_format not in (None, "auto"):
            get_format(log_format)  # an unknown name is refused here, with the names
        if ipv6_prefix is not None and not (isinstance(ipv6_prefix, int) and 1 <= ipv6_prefix <= 128):
            raise ValueError(f"ipv6_prefix must be a prefix length from 1 to 128 (64 names a client by its /64). "
                             f"Received: ipv6_prefix={ipv6_prefix!r}.")  # fmt: skip
        self = super().__new__(cls, str(path))
        self.log_format = None if log_format == "auto" else log_format
        self.ipv6_prefix = ipv6_prefix
        return self

    def __reduce__(self) -> tuple:
        return LogPath, (str(self), self.log_format, self.ipv6_prefix)

    def parser(self, head: list[bytes]) -> LineParser:
        """A parser for this file: its format's (named, or detected from its first lines
        ``head``), naming IPv6 clients by ``ipv6_prefix``."""
        return by_ipv6_prefix(_format_of(self, head).parser(), self.ipv6_prefix)


def read_range(path: str | Path, start: int, end: int) -> Iterator[bytes]:
    """The raw lines of a plain (uncompressed) file that begin at a byte offset in
    ``[start, end)``: cut a file at any offsets and every line falls in exactly one piece,
    in order (how ``serve.archive`` splits a big log between workers)."""
    with Path(path).open("rb", buffering=1 << 20) as handle:
        position = start
        if start > 0:  # the line that began before ``start`` belongs to the piece before
            handle.seek(start - 1)
            position = start - 1 + len(handle.readline())
        while position < end:
            raw = handle.readline()
            if not raw:
                return
            position += len(raw)
            yield raw


def file_parser(path: str | Path) -> LineParser:
    """The parser of a log file: its ``LogPath``'s format, or the one its first lines show."""
    lines = read_lines([path], [])
    try:
        head = [raw for _, _, raw in islice(lines, DETECT_LINES)]
    finally:
        lines.close()
    return (path if isinstance(path, LogPath) else LogPath(path)).parser(head)


def parse_stream(paths: Iterable[str | Path], stats: ParseStats | None = None) -> Iterator[tuple[str, int, LogRecord]]:
    """Parsed records with their source and line number, each file read with its format
    (a ``LogPath``'s, or the one its first lines show: ``formats.detect``); malformed lines
    are counted in ``stats`` and skipped, logs cut short are listed in ``stats.unreadable``."""
    stats = stats if stats is not None else ParseStats()
    for path in paths:
        lines = read_lines([path], stats.unreadable)
        head = list(islice(lines, DETECT_LINES))
        parse = (path if isinstance(path, LogPath) else LogPath(path)).parser([raw for _, _, raw in head])
        for source, number, raw in chain(head, lines):
            item = parse(raw)
            stats.add(item)
            if isinstance(item, LogRecord):
                yield source, number, item


def _format_of(path: str | Path, head: list[bytes]) -> LogFormat:
    """The format to read ``path`` with: its ``LogPath``'s, which must fit at least one of its
    first lines (``head``), or the one ``detect`` finds."""
    name = getattr(path, "log_format", None)
    if name is None:
        return detect(head, str(path))
    fmt = get_format(name)
    sample = [text for text in (raw.decode("utf-8", "replace").strip() for raw in head) if text]
    if sample and not any(map(fmt.sniff, sample)):
        try:
            other = detect(head, str(path)).name
            hint = f"they look like {other}: use --format {other}, or leave --format out to detect it"
        except ValueError:
            hint = "they fit no other format either"
        raise ValueError(f"{path}: none of its first lines is a {name} line (e.g. {sample[0][:120]!r}); {hint}.")
    return fmt
