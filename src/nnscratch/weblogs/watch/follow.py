"""Following live access logs, as ``tail -F`` does, without losing or repeating a line.

``Follower`` reads one file: it starts at the end (or the start), waits for a
file that does not exist yet, holds a partial last line until its newline
arrives, and survives rotation both ways: by rename (the old file is still
read for a few seconds after it goes quiet, because the server writes to it
until it reopens its log) and by copy-truncate (the file shrinks below the
offset: it is read again from the start). Its ``position`` (the
file's device and inode, and the byte offset after the last complete line
handed out) can be saved and given back after a restart; if the file was
rotated meanwhile, the rotated file is found by its inode in the same folder
and finished first. ``StdinFollower`` reads standard input, or a named pipe, without blocking.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISFIFO
from typing import IO, NamedTuple

from ..lines.reading import UnreadableLog, compression_of, read_lines

__all__ = ["Position", "Follower", "StdinFollower", "Backfill"]


class Position(NamedTuple):
    """Where reading stopped: the file's identity and the offset after the last whole line."""

    device: int
    inode: int
    offset: int


class _Reader:
    """An open file: lines read ahead but not handed out yet, and the partial line after them.

    ``offset`` is the byte after the last line handed out: what a restart resumes from.
    """

    def __init__(self, handle: IO[bytes], offset: int, max_line: int) -> None:
        self.handle, self.offset, self.max_line = handle, offset, max_line
        self.pending: deque[bytes] = deque()
        self.partial = b""
        self.quiet_since = time.monotonic()

    def _fill(self, wanted: float) -> None:
        while len(self.pending) < wanted:
            block = self.handle.read(1 << 20)
            if not block:
                break
            lines = (self.partial + block).split(b"\n")
            self.partial = lines.pop()
            self.pending.extend(lines)

    def lines(self, limit: float = float("inf"), at_end: bool = False) -> list[bytes]:
        """Up to ``limit`` complete lines (the partial line too when ``at_end`` and nothing is left)."""
        self._fill(limit)
        out: list[bytes] = []
        pending = self.pending
        while pending and len(out) < limit:
            line = pending.popleft()
            self.offset += len(line) + 1
            out.append(line[: self.max_line] + b"\n")
        if at_end and not pending and self.partial and len(out) < limit:
            self.offset += len(self.partial)
            out.append(self.partial[: self.max_line] + b"\n")
            self.partial = b""
        if out:
            self.quiet_since = time.monotonic()
        return out

    @property
    def done(self) -> bool:
        return not self.pending and not self.partial


class Follower:
    """One log file followed like ``tail -F``.

    Parameters
    ----------
    path : path-like
    from_start : bool
        Start at the beginning of the file instead of its end (when there is no
        saved position).
    position : Position, optional
        A saved position to resume from.
    grace : float
        Seconds a file renamed away is still read after it went quiet: a server
        writes to it until it reopens its log (``nginx -s reopen``).
    max_line : int
        Longer lines are cut.
    """

    def __init__(self, path: str | os.PathLike[str], *, from_start: bool = False, position: Position | None = None,
                 grace: float = 5.0, max_line: int = 1 << 16) -> None:  # fmt: skip
        self.path = Path(path)
        self.from_start, self.grace, self.max_line = from_start, grace, max_line
        self.current: _Reader | None = None
        self.identity: tuple[int, int] | None = None
        self.draining: list[_Reader] = []  # renamed-away files, still read for a while
        self._resume = position

    def __repr__(self) -> str:
        offset = self.current.offset if self.current else 0
        return f"Follower({str(self.path)!r}, offset={offset:,}, draining={len(self.draining)})"

    @property
    def position(self) -> Position | None:
        """What to save to resume here later (None until the file has been opened)."""
        return Position(*self.identity, self.current.offset) if self.identity and self.current else None

    def _open(self) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self.from_start = True  # a file that appears later is new from its first byte
            return False
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        resume, self._resume = self._resume, None
        if resume is not None and (resume.device, resume.inode) != identity:
            old = self._find(resume)
            if old is not None:  # rotated while we were down: finish the old file first
                old.seek(resume.offset)
                self.draining.append(_Reader(old, resume.offset, self.max_line))
            start = 0
        elif resume is not None:
            start = resume.offset if resume.offset <= stat.st_size else 0  # truncated meanwhile
        else:
            start = 0 if self.from_start or self.identity is not None else stat.st_size
        handle.seek(start)
        self.current, self.identity = _Reader(handle, start, self.max_line), identity
        return True

    def _find(self, position: Position) -> IO[bytes] | None:
        """The file in the same folder with the saved identity (a rotated log), if any."""
        for candidate in self.path.parent.iterdir():
            try:
                stat = candidate.stat()
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) == (position.device, position.inode) and candidate.is_file():
                return candidate.open("rb")
        return None

    def read(self, limit: float = float("inf")) -> list[bytes]:
        """The complete lines written since the last call, at most ``limit`` (the rest comes next time)."""
        out: list[bytes] = []
        opened = self.current is not None or self._open()
        now = time.monotonic()
        for reader in list(self.draining):  # older files first
            out += reader.lines(limit - len(out))
            if len(out) < limit and now - reader.quiet_since > self.grace:
                out += reader.lines(limit - len(out), at_end=True)
                if reader.done:
                    reader.handle.close()
                    self.draining.remove(reader)
        if not opened or len(out) >= limit:
            return out
        assert self.current is not None
        out += self.current.lines(limit - len(out))
        if self.current.pending:  # more to hand out already: rotation can wait for the next call
            return out
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return out  # renamed away, the new file not there yet: keep reading the old one
        if (stat.st_dev, stat.st_ino) != self.identity:  # rotated by rename: drain the old, open the new
            self.draining.append(self.current)
            self.current = None
            if self._open():
                out += self.current.lines(limit - len(out))
        elif stat.st_size < self.current.handle.tell():  # copy-truncate: from the start
            self.current.handle.seek(0)
            self.current.offset, self.current.partial = 0, b""
            out += self.current.lines(limit - len(out))
        return out

    def close(self) -> None:
        for reader in [self.current, *self.draining]:
            if reader is not None:
                reader.handle.close()
        self.current, self.draining = None, []


class StdinFollower:
    """Standard input (``path`` ``-``), or a named pipe (a FIFO), read without blocking; a
    partial line waits for its newline. A pipe has no position to save: what its writers sent
    while the watcher was down is gone. A named pipe is opened without waiting for a writer
    (the watcher stays responsive to SIGTERM), and when its writers close it, the next one's
    lines are read on the same pipe; a writer's last line without a newline is taken whole."""

    position = None

    def __init__(self, path: str | os.PathLike[str] = "-") -> None:
        self.path = Path(path)
        self.partial = b""
        self.pending: deque[bytes] = deque()
        self.closed = False
        self.named = str(path) != "-"
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK) if self.named else sys.stdin.fileno()

    def __repr__(self) -> str:
        return f"StdinFollower({str(self.path)!r}, pending={len(self.pending)})"

    @staticmethod
    def is_pipe(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` names a FIFO (read as a stream, never sought)."""
        try:
            return S_ISFIFO(os.stat(path).st_mode)
        except OSError:
            return False

    def read(self, limit: float = float("inf")) -> list[bytes]:
        fd = self.fd
        while not self.closed and len(self.pending) < limit and select.select([fd], [], [], 0)[0]:
            try:
                block = os.read(fd, 1 << 20)
            except BlockingIOError:
                break
            if not block:  # standard input ended; a named pipe's writers all closed it (others may come)
                self.closed = not self.named
                if self.partial:
                    self.pending.append(self.partial)
                    self.partial = b""
                break
            lines = (self.partial + block).split(b"\n")
            self.partial = lines.pop()
            self.pending.extend(lines)
        out = []
        while self.pending and len(out) < limit:
            out.append(self.pending.popleft() + b"\n")
        return out

    def close(self) -> None:
        if self.named and not self.closed:
            os.close(self.fd)
        self.closed = True


class Backfill:
    """A finished log read once from its start (gzip, bzip2 or xz allowed), for
    ``--from-start`` on a rotated file; it has no position to save (it is not followed). A
    compressed stream cut short ends the file after its last whole line: the problem is
    kept in ``problems`` (``lines.reading.UnreadableLog``) for the watcher to report."""

    position = None

    def __init__(self, path: str | os.PathLike[str], chunk: int = 100_000) -> None:
        self.path, self.chunk = Path(path), chunk
        self.problems: list[UnreadableLog] = []
        self._lines: Iterator[tuple[str, int, bytes]] | None = None

    @staticmethod
    def is_compressed(path: str | os.PathLike[str]) -> bool:
        try:
            return compression_of(path) is not None
        except OSError:
            return False

    def read(self, limit: float = float("inf")) -> list[bytes]:
        if self._lines is None:
            self._lines = read_lines([self.path], self.problems)
        out = []
        for _, _, line in self._lines:
            out.append(line if line.endswith(b"\n") else line + b"\n")
            if len(out) >= min(self.chunk, limit):
                break
        return out

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
