"""The one decision procedure: what ``classify``, ``evaluate``, ``crossval`` and ``watch`` all run.

A ban is not one verdict on a finished file. The live watcher decides again and
again as a client's evidence grows, and any one of those judgements can ban,
so every path here decides the same way, as a function of the log alone:

1. **Order.** Lines pass through one ``parse.TimeOrder`` (``SLACK`` seconds of
   log time held back, same-second lines in a fixed order). Each line is
   released as soon as it is pushed, so what comes out depends on the lines,
   never on how they were cut into chunks or reads.
2. **Score.** The line model labels each released line
   (``WebLogModel.score``), and the line joins its client's evidence
   (``clients.ClientBook``).
3. **Judge.** At the end of every log-second in which a client made requests
   (``clients.JudgementPoints``), the client model rules on its evidence so far
   (``ClientModel.rulings``). A client is banned by the first ruling that bans
   it; reports say at which request, at what log time, and with what P(bad).
   A client idle for ``IDLE`` seconds of log time ends its visit (handed out
   in ``Decisions.ended``, with what its rulings said); its next request
   starts a new one.

The end of a log (or, for the watcher, the moment its followers have caught
up with what the logs hold) releases the held lines and closes the current
second. For a file read from the start that moment is its end, so ``logs
watch --from-start --dry-run`` bans exactly the clients ``logs classify``
bans, at the same requests. The wall clock decides nothing here: it only
times how long a ban lasts (``watch``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..features.counts import IDLE, ClientBook, ClientState
from ..features.points import JudgementPoints, Snapshot
from ..features.summary import merge_counts
from ..lines.order import SLACK, TimeOrder
from ..lines.record import LogRecord, client_of
from ..model.clients import Ruling, evidence

__all__ = [
    "Decider",
    "Decisions",
    "SLACK",
    "IDLE",
    "STREAM_GC_THRESHOLDS",
    "tune_collector_for_streams",
    "collector_for_streams",
]

# Streaming a log makes and drops millions of small objects (records, tokens, tallies) while
# caches of a few hundred thousand entries live on; with Python's default thresholds
# (700, 10, 10) the collector then spends about a third of classify's time rescanning the
# caches (1.80 s against 1.15 s per 100,000 lines here, measured with the collector's
# thresholds at (50,000, 20, 50)). Only a process of nnscratch's own keeps them (the classify
# worker); the ``logs classify`` and ``logs watch`` commands set them while they run; a library call never.
STREAM_GC_THRESHOLDS = (50_000, 20, 50)
SCORE_CHUNK = 10_000  # lines the line model scores at once (its feature matrix is made per chunk)


class Decisions(NamedTuple):
    """What one ``Decider.feed`` released: the items in time order, their class
    probabilities and label indices (None when nothing came out), the rulings made, those
    among them that banned a visit for the first time, and the visits that ended
    (``(client, state)``; each state's ``peak`` and ``ban`` hold what its rulings said)."""

    items: list[tuple[Any, LogRecord]]
    proba: np.ndarray | None
    labels: np.ndarray | None
    rulings: list[Ruling]
    bans: list[Ruling]
    ended: list[tuple[str, ClientState]]


class Decider:
    """Lines in, line labels and client rulings out: the decision procedure (module docstring).

    Parameters
    ----------
    model : WebLogModel
        Its line model labels lines; its client model (if any) rules on clients.
    slack : float
        Seconds of log time held back to put lines in time order.
    idle : float
        Seconds of log time after which a client's next request starts a new visit.
    max_clients : int, optional
        Clients kept in memory (the longest-known leave first, see ``ClientBook``).
    judge : bool
        Rule on clients (needs a client model); False labels lines only.

    ``pool``, when set (a fleet of watchers: ``watch.fleet.PostgresStore.elsewhere``), gives the
    evidence the other hosts hold of the clients a ``feed`` releases lines of; each snapshot of
    such a client is then of its evidence from every host (requests of the last ``idle``
    seconds), whatever its evidence here, and the client is judged when that pooled evidence
    reaches the client model's minimum. A client no other host knows is judged as on one host.
    """

    def __init__(self, model: Any, *, slack: float = SLACK, idle: float = IDLE, max_clients: int | None = None,
                 judge: bool = True) -> None:  # fmt: skip
        self.model, self.slack, self.idle, self.max_clients = model, float(slack), float(idle), max_clients
        self.judge = judge and model.client_model is not None
        self.pool: Any = None
        self.reset()

    def __repr__(self) -> str:
        return f"Decider(slack={self.slack:g}s, idle={self.idle:g}s, clients={len(self.book):,}, judge={self.judge})"

    def reset(self) -> None:
        """Start afresh: a new, independent log (empty order, tally and context)."""
        self.model.featurizer.reset_context(idle=self.idle, max_clients=self.max_clients)
        self.order = TimeOrder(lambda item: item[1].time, self.slack, tiebreak=lambda item: item[1])

    @property
    def points(self) -> JudgementPoints:
        """The stream's tally and judgement points: the featurizer's, one for features and rulings."""
        return self.model.featurizer.points

    @property
    def holding(self) -> bool:
        """Whether lines are held back for time order (``feed(end=True, most=...)`` left some)."""
        return len(self.order) > 0

    @property
    def book(self) -> ClientBook:
        return self.points.book

    def swap_model(self, model: Any) -> bool:
        """Decide with ``model`` from now on. The clients' tally carries over when its
        featurizer keeps the same windows (True); otherwise it starts afresh (False)."""
        old, new = self.model.featurizer, model.featurizer
        kept = (old.behaviour, old.window) == (new.behaviour, new.window)
        if kept:
            new.points = old.points
        else:
            new.reset_context(idle=self.idle, max_clients=self.max_clients)
        self.model, self.judge = model, model.client_model is not None
        return kept

    def feed(self, items: Iterable[tuple[Any, LogRecord]], end: bool = False, most: int | None = None) -> Decisions:
        """Push ``(key, record)`` items (``key`` is the caller's: a line number, the raw line);
        ``end``: the log ends here (or has nothing more for now), so release everything, or at
        most ``most`` held lines, the oldest: then the current second closes when a later call
        with ``end`` has released the rest (``holding`` says whether any are left). After
        ``end`` the visits still open stay open (``drain`` ends them)."""
        released = self.order.release(items)
        if end:
            released += self.order.ready(end=True, most=most)
        points = self.points
        # Without a client model to rule, nobody is judged (no snapshots are taken).
        points.minimum = self.model.client_model.min_evidence if self.judge else None
        elsewhere: dict[str, list] = {}
        if self.pool is not None and self.judge and (released or points.touched):
            elsewhere = self.pool(sorted({client_of(r) for _, r in released}.union(points.touched)))
        points.pooled = frozenset(elsewhere)  # snapshots of these whatever their evidence here
        proba = labels = None
        if released:  # scored a chunk at a time: a catch-up releases SLACK seconds of lines at once
            parts = [self.model.score([record for _, record in released[i : i + SCORE_CHUNK]])
                     for i in range(0, len(released), SCORE_CHUNK)]  # fmt: skip
            proba, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            states = [state for part in parts for state in part[2]]
            if "bad" in self.model.classes:
                for i in np.flatnonzero(labels == self.model.classes.index("bad")).tolist():
                    states[i].bad_lines += 1
        snapshots, ended = points.take()
        if end and not self.holding:
            snapshots += points.flush()
        if elsewhere and snapshots:  # judged on the fleet's evidence, when that is enough
            minimum = self.model.client_model.min_evidence
            snapshots = [s for s in (self._pooled(s, elsewhere) for s in snapshots) if evidence(s.counts) >= minimum]
        rulings = self.model.client_model.rulings(snapshots) if self.judge else []
        bans = []
        for snapshot, ruling in zip(snapshots, rulings, strict=True):
            state = snapshot.state
            state.peak = ruling.probability if state.peak is None else max(state.peak, ruling.probability)
            if ruling.ban and state.ban is None:
                state.ban = ruling
                bans.append(ruling)
        return Decisions(released, proba, labels, rulings, bans, ended)

    def _pooled(self, snapshot: Snapshot, elsewhere: dict[str, list]) -> Snapshot:
        """``snapshot`` with the client's counts merged with the other hosts' evidence of its visit
        (their latest requests within ``idle`` seconds); its request number becomes the fleet's."""
        others = [counts for last, counts in elsewhere.get(snapshot.client, ()) if last >= snapshot.time - self.idle]
        if not others:
            return snapshot
        merged = merge_counts(snapshot.counts, others)
        return snapshot._replace(counts=merged, request=int(merged.requests))

    def drain(self) -> list[tuple[str, ClientState]]:
        """End every visit still open (after the end of a log)."""
        return list(self.book.drain())


def tune_collector_for_streams() -> tuple[int, int, int]:
    """Set the garbage collector's thresholds for streaming logs (``STREAM_GC_THRESHOLDS``) and
    return the ones before. For processes of nnscratch's own: it changes the whole process."""
    before = gc.get_threshold()
    gc.set_threshold(*STREAM_GC_THRESHOLDS)
    return before


@contextlib.contextmanager
def collector_for_streams() -> Iterator[None]:
    """The streaming thresholds while the block runs (a command), the caller's afterwards."""
    before = tune_collector_for_streams()
    try:
        yield
    finally:
        gc.set_threshold(*before)
