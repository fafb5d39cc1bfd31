"""The old home of the line reader: it now lives in ``weblogs.lines`` (record, formats,
reading, order). These names keep working."""

from __future__ import annotations

from .lines.formats.combined import parse_line
from .lines.order import SLACK, TimeOrder, in_time_order
from .lines.reading import LogPath, ParseStats, UnreadableLog, parse_stream, read_lines
from .lines.record import LogRecord, Malformed, client_of

__all__ = [
    "LogRecord", "Malformed", "UnreadableLog", "LogPath", "client_of", "parse_line", "read_lines", "ParseStats",
    "parse_stream", "in_time_order", "TimeOrder", "SLACK",
]  # fmt: skip
