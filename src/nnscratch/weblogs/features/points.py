"""When a client is judged: at the end of every log-second in which it made requests.

``JudgementPoints`` feeds lines to a ``counts.ClientBook`` and takes a
``Snapshot`` of each client whose second ended: what the decision procedure
rules on, and what ``prepare`` records so that evaluation judges where the
watcher judges.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import NamedTuple

from ..lines.record import LogRecord
from .counts import ClientBook, ClientState, RequestFacts
from .summary import Counts

__all__ = ["Snapshot", "JudgementPoints"]


class Snapshot(NamedTuple):
    """A client's evidence at one judgement: its request count in this visit, the log time
    of its latest request, its raw counts (``ClientBook.counts``) and the visit's state."""

    client: str
    request: int
    time: float
    counts: Counts
    state: ClientState


class JudgementPoints:
    """When a client is judged: at the end of every log-second in which it made requests.

    Feed lines in time order with ``add`` (the featurizer does, as it makes each line's
    columns); when a line opens a new second (or goes back to an earlier one, a late
    line), the clients of the second that ended are judged: their ``Snapshot``s, taken
    before this line is added, go to ``taken``; then the visits idle by now end (to
    ``ended``), and the line joins its client's evidence. ``flush()`` closes the current
    second (the end of a log, or of what a live log holds so far). Clients with less
    than ``minimum`` evidence (``ClientState.evidence``), and ``"-"`` (nobody), are not judged; with ``minimum``
    None nobody is, and ended visits are not kept. The points depend only on the lines'
    time stamps and order, so a file replayed by ``classify``, ``evaluate`` or
    ``crossval`` is judged exactly where the live watcher judges it.
    """

    def __init__(self, book: ClientBook, minimum: int | None = None) -> None:
        self.book, self.minimum = book, minimum
        self.second: float | None = None
        self.touched: dict[str, None] = {}  # an ordered set: judged in order of first request
        self.taken: list[Snapshot] = []
        self.ended: list[tuple[str, ClientState]] = []
        self.pooled: Collection[str] = ()  # judged whatever their evidence here (a fleet's other hosts know them)

    def __repr__(self) -> str:
        return f"JudgementPoints(second={self.second}, clients waiting={len(self.touched)}, minimum={self.minimum})"

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> ClientState:
        """Add a line (see the class docstring); returns its client's state."""
        second = math.floor(record.time)
        if second != self.second:
            self.taken += self.flush()
            self.second = second
            ended = self.book.finished(record.time)
            if self.minimum is not None:
                self.ended += ended
        state = self.book.add(record, facts, bad_line)
        self.touched[state.client] = None
        return state

    def flush(self) -> list[Snapshot]:
        """Snapshots of the clients that made requests in the current second (returned, not
        added to ``taken``)."""
        clients, out, minimum, pooled = self.book.clients, [], self.minimum, self.pooled
        if minimum is not None:
            for client in self.touched:
                s = clients.get(client)
                if s is not None and (s.evidence >= minimum or client in pooled) and client != "-":
                    out.append(Snapshot(client, s.n, s.last, ClientBook.counts(s), s))
        self.touched = {}
        return out

    def take(self) -> tuple[list[Snapshot], list[tuple[str, ClientState]]]:
        """The snapshots taken and the visits ended since the last ``take``."""
        taken, ended = self.taken, self.ended
        self.taken, self.ended = [], []
        return taken, ended
