"""Following a systemd unit's journal: access logs that go to journald instead of a file.

Containers and appliances often have no log file to follow: nginx logs with
``access_log syslog:server=unix:/dev/log``, a container runtime hands its
output to the journal. ``JournalFollower`` runs ``journalctl --unit UNIT
--follow --output json`` (the program every systemd machine has; its JSON is
stable and documented) and hands out each entry's ``MESSAGE`` as a log line.
It keeps the journal's cursor after the last line it handed out; the watcher
commits that cursor with the lines, so a restart resumes right after them
(``--after-cursor``): nothing read twice, nothing skipped. Without a cursor it
starts at the journal's end, or with ``from_start`` at its oldest entry.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import time
from collections import deque
from pathlib import Path

__all__ = ["JournalFollower", "JOURNAL"]

JOURNAL = "journal:"  # how a unit's journal is named where a log file's path would be


class JournalFollower:
    """The journal of one systemd unit, read without blocking (see the module docstring).

    Parameters
    ----------
    unit : str
        The unit whose entries are read (``journalctl --unit``), e.g. ``nginx.service``.
    command : str
        The ``journalctl`` to run, with options of its own (``journalctl --directory DIR``,
        ``journalctl --namespace NAME``).
    cursor : str, optional
        Resume after this entry (what ``cursor`` said before a restart).
    from_start : bool
        Without a cursor, start at the journal's oldest entry instead of its end.
    """

    position = None  # a journal has a cursor, not a file position
    retry = 5.0  # seconds before a journalctl that exited is run again

    def __init__(self, unit: str, *, command: str = "journalctl", cursor: str | None = None,
                 from_start: bool = False) -> None:  # fmt: skip
        self.unit, self.command, self.cursor, self.from_start = unit, shlex.split(command), cursor, from_start
        self.path = Path(JOURNAL + unit)
        self.problems: list[str] = []
        self.pending: deque[tuple[bytes, str]] = deque()  # (line, cursor of its entry)
        self.partial = b""
        self.proc: subprocess.Popen | None = None
        self.died = 0.0
        self._start()

    def __repr__(self) -> str:
        return f"JournalFollower({self.unit!r}, cursor={'yes' if self.cursor else 'none'})"

    def _start(self) -> None:
        after = self.pending[-1][1] if self.pending else self.cursor  # what was received, handed out or not
        # --follow alone shows the last 10 entries first: --lines all with a cursor, or from the start.
        where = ["--after-cursor", after, "--lines", "all"] if after else ["--lines", "all" if self.from_start else "0"]
        args = [*self.command, "--unit", self.unit, "--follow", "--output", "json", "--no-pager", *where]
        try:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as err:
            raise ValueError(
                f"cannot run {shlex.join(self.command)} to follow the journal of {self.unit}: {err}. "
                "Install systemd's journalctl, or give --journalctl the command to run."
            ) from None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def read(self, limit: float = float("inf")) -> list[bytes]:
        """The lines the journal gained, at most ``limit``; ``cursor`` is then the last one's."""
        self._fill(limit)
        out = []
        while self.pending and len(out) < limit:
            line, self.cursor = self.pending.popleft()
            out.append(line)
        return out

    def _fill(self, limit: float) -> None:
        proc = self.proc
        if proc is None:
            if time.monotonic() - self.died >= self.retry:
                self.partial = b""  # what was cut off is read again after the cursor
                self._start()
            return
        fd = proc.stdout.fileno()
        while len(self.pending) < limit and select.select([fd], [], [], 0)[0]:
            block = os.read(fd, 1 << 20)
            if not block:
                self._lost(proc)
                return
            lines = (self.partial + block).split(b"\n")
            self.partial = lines.pop()
            for text in lines:
                self._entry(text)

    def _entry(self, text: bytes) -> None:
        try:
            entry = json.loads(text)
        except ValueError:
            return  # not an entry (journalctl prints nothing else on its standard output)
        message, cursor = entry.get("MESSAGE"), entry.get("__CURSOR")
        if isinstance(message, list) and all(isinstance(b, int) for b in message):
            message = bytes(message).decode("utf-8", "replace")  # journalctl writes non-UTF-8 text as bytes
        if isinstance(message, str) and isinstance(cursor, str):
            self.pending.append((message.encode("utf-8", "surrogateescape").rstrip(b"\n") + b"\n", cursor))

    def _lost(self, proc: subprocess.Popen) -> None:
        """journalctl ended: said once, with its own words; run again after ``retry`` seconds."""
        proc.wait()
        error = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
        self.problems.append(f"{shlex.join(self.command)} --unit {self.unit} exited with status {proc.returncode}"
                             f"{': ' + error if error else ''}; it is run again in {self.retry:g} s")  # fmt: skip
        self.proc, self.died = None, time.monotonic()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
