"""What ``classify`` does to a chunk of one file, and how it writes what comes back.

``Pipeline`` runs the decision procedure (``decision.Decider``) over one file at a
time and hands out a ``Verdict`` on each visit that ended; ``RowWriter`` writes one
row per line. ``classify`` runs them in one process (or one worker beside it), and
``archive`` runs many pipelines on a Dask cluster, with the same rows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ..features.counts import MAX_CLIENTS, ClientState
from ..lines.record import LogRecord, client_of
from ..model.clients import Verdict
from ..model.weblog import WebLogModel
from .decision import IDLE, SLACK, Decider

__all__ = ["ClassifySettings", "Pipeline", "RowWriter", "visit_verdict"]


def visit_verdict(client: str, state: ClientState, min_evidence: int) -> Verdict:
    """The ``Verdict`` on one ended visit (``Decisions.ended``): banned by its first banning
    ruling, if any, else its highest P(bad), if it was ever judged."""
    return Verdict.of(client, state, state.ban, state.peak, min_evidence)


class Pipeline:
    """The decision procedure (``decision.Decider``) over one file at a time, and a
    ``Verdict`` on each visit that ended: everything ``classify`` does to a line but parsing
    and writing it. It runs here, or whole in one worker process (its state must see every
    line, in order)."""

    def __init__(self, model: WebLogModel, s: ClassifySettings, judge: bool) -> None:
        self.decider = Decider(model, slack=s.slack, idle=s.idle, max_clients=s.max_clients, judge=judge)
        self.fresh = True

    def feed(self, chunk: list[tuple[int, LogRecord]], end: bool) -> tuple:
        """A chunk of one file's parsed lines as ``(sequence number, record)`` (``end``: the
        file's last). Returns the sequence numbers of the lines that came out, in time order
        (an int64 array: what travels back from a worker is small), their probabilities and
        label indices, the verdicts of visits that ended (as plain tuples of ``Verdict``'s
        fields, cheap to send), and the feature-cache hits and lookups."""
        decider = self.decider
        featurizer = decider.model.featurizer
        if self.fresh:  # each file is a log of its own
            decider.reset()
            self.fresh = False
        hits, lookups = featurizer.cache_hits, featurizer.cache_lookups
        decided = decider.feed(chunk, end)
        order = np.fromiter((key for key, _ in decided.items), dtype=np.int64, count=len(decided.items))
        ended = decided.ended + (decider.drain() if end else [])
        verdicts: list[tuple] = []
        if decider.judge:
            minimum = decider.model.client_model.min_evidence
            verdicts = [tuple(vars(visit_verdict(client, state, minimum)).values()) for client, state in ended]
        if end:
            self.fresh = True
        return (order, decided.proba, decided.labels, verdicts,
                (featurizer.cache_hits - hits, featurizer.cache_lookups - lookups))  # fmt: skip


@dataclass
class ClassifySettings:
    """How ``classify`` runs: ``output_format`` of the per-line rows (``csv`` or ``jsonl``);
    ``tally``, the classic "N bad lines within X minutes" rule instead of the client model;
    ``chunk`` lines at a time; ``workers`` (1: one worker process runs the pipeline while
    this one parses and writes, the default with 2 or more cores; 0: everything here; the
    result is the same); ``slack``, ``idle`` and ``max_clients`` (clients kept in memory, the
    least recently active forgotten beyond it, as the watcher does), the decision
    procedure's (``decision``); ``scheduler`` (a Dask scheduler's address) or ``jobs`` above 1
    (a local Dask cluster of that many workers; -1: one per core) run it on a cluster
    (``archive``, the same result), cutting plain logs every ``piece_bytes``."""

    output_format: str = "csv"
    tally: Any = None  # a classify.ClientTally
    chunk: int = 20_000
    workers: int | None = None
    slack: float = SLACK
    idle: float = IDLE
    max_clients: int | None = MAX_CLIENTS
    scheduler: str | None = None
    jobs: int = 1
    piece_bytes: int = 64 << 20


class RowWriter:
    """Numbers the lines sent to the pipeline and writes what comes back: one row per line
    (CSV or JSON lines), the label counts, the classic tally, the verdicts."""

    def __init__(self, model: WebLogModel, out: IO[str] | None, s: ClassifySettings,
                 on_verdict: Callable[[Verdict], None] | None, in_worker: bool) -> None:  # fmt: skip
        self.model, self.out, self.settings, self.on_verdict = model, out, s, on_verdict
        self.in_worker = in_worker
        self.classes = model.classes
        self.bad = self.classes.index("bad") if "bad" in self.classes else -1
        self.sent: dict[int, tuple[str, int, LogRecord]] = {}  # lines in the pipeline, by sequence number
        self.next_key = self.n = 0
        self.counts: Counter = Counter()
        self.row_format = ",".join(["{:.4f}"] * len(self.classes)) + "\n"

    def header(self) -> None:
        """The CSV header (nothing for JSON lines, or with no output)."""
        if self.out is not None and self.settings.output_format == "csv":
            self.out.write("file,line,client,time,label," + ",".join(f"p_{c}" for c in self.classes) + "\n")

    def numbered(self, lines: list[tuple[str, int, LogRecord]]) -> list[tuple[int, LogRecord]]:
        """The lines as ``(sequence number, record)``, kept until they come out."""
        keys = range(self.next_key, self.next_key + len(lines))
        self.next_key += len(lines)
        self.sent.update(zip(keys, lines, strict=True))
        return [(key, record) for key, (_, _, record) in zip(keys, lines, strict=True)]

    def emit(self, result: tuple) -> None:
        order, proba, winners, verdicts, (hits, lookups) = result
        if self.in_worker:  # the worker's cache, reported here
            self.model.featurizer.cache_hits += hits
            self.model.featurizer.cache_lookups += lookups
        if len(order):
            rows = [(source, number, client_of(record), record.time)
                    for source, number, record in map(self.sent.pop, order.tolist())]  # fmt: skip
            self.write_rows(rows, proba, winners.tolist())
        if self.on_verdict is not None and self.settings.tally is None:
            for fields in verdicts:
                self.on_verdict(Verdict(*fields))

    def write_rows(self, rows: list[tuple[str, int, str, float]], proba: np.ndarray, winners: list[int]) -> None:
        classes, out, tally = self.classes, self.out, self.settings.tally
        self.counts.update(dict(zip(classes, np.bincount(winners, minlength=len(classes)).tolist(), strict=True)))
        if tally is not None:
            for (_, _, client, when), w in zip(rows, winners, strict=True):
                tally.add(client, when, w == self.bad)
            tally.forget_idle(rows[-1][3])
        lines = zip(rows, proba.tolist(), winners, strict=True)
        if out is not None and self.settings.output_format == "csv":
            out.write("".join(f"{source},{number},{client},{when:.0f},{classes[w]}," + self.row_format.format(*p)
                              for (source, number, client, when), p, w in lines))  # fmt: skip
        elif out is not None:
            out.write("".join(json.dumps({"file": source, "line": number, "client": client, "time": when,
                                          "label": classes[w], "p": dict(zip(classes, p, strict=True))}) + "\n"
                              for (source, number, client, when), p, w in lines))  # fmt: skip
        self.n += len(rows)
