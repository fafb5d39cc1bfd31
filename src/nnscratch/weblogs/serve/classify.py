"""Applying a trained model to logs of any size: per-line labels and client verdicts.

``classify`` replays each log through the decision procedure that the live
watcher runs (``decision.Decider``): lines in time order, each labelled by the
line model, each client ruled on at the end of every log-second in which it made
requests. A client is banned if any of those rulings bans it, and its
``Verdict`` says at which request, at what log time and with what P(bad); the
verdict is handed out when the client has been idle for ``idle`` seconds of log
time, or at the end of its file. One worker process runs that whole pipeline on
the next chunk while this process writes the previous one.

``ClientTally`` is the classic rule, "N bad lines within X minutes", kept as an
option (``--ban-rule count``): it bans browsers that make many similar
requests, which is why the client model is the default.
"""

from __future__ import annotations

import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ..features.counts import MAX_CLIENTS, ClientState
from ..lines.reading import ParseStats, parse_stream
from ..lines.record import LogRecord, client_of
from ..model.clients import Verdict
from ..model.weblog import WebLogModel
from .decision import IDLE, SLACK, Decider, tune_collector_for_streams

__all__ = ["ClientTally", "ClassifySettings", "Pipeline", "RowWriter", "classify"]


class ClientTally:
    """Bad lines per client in a sliding window: who reached ``threshold`` within ``minutes``."""

    def __init__(self, threshold: int = 10, minutes: float = 10.0) -> None:
        self.threshold, self.window = threshold, minutes * 60.0
        self.state: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        minutes = self.window / 60
        return f"ClientTally(threshold={self.threshold}, minutes={minutes:g}, clients={len(self.state):,})"

    def add(self, client: str, when: float, bad: bool) -> None:
        s = self.state.get(client)
        if s is None:
            s = self.state[client] = {"requests": 0, "bad": 0, "window": deque(), "peak": 0, "first": when,
                                      "last": when, "peak_start": None, "peak_end": None}  # fmt: skip
        s["requests"] += 1
        s["last"], s["first"] = max(s["last"], when), min(s["first"], when)
        if not bad:
            return
        s["bad"] += 1
        window = s["window"]
        window.append(when)
        while window[0] < when - self.window:
            window.popleft()
        if len(window) > s["peak"]:
            s["peak"], s["peak_start"], s["peak_end"] = len(window), window[0], when

    def forget_idle(self, now: float) -> None:
        """Drop clients that never reached the threshold and have been quiet for a whole window."""
        idle = [c for c, s in self.state.items() if s["peak"] < self.threshold and s["last"] < now - self.window]
        for client in idle:
            del self.state[client]

    def verdicts(self) -> list[Verdict]:
        """A ``Verdict`` for every client still tallied (banned: reached the threshold)."""
        out = []
        for client, s in self.state.items():
            ban = s["peak"] >= self.threshold and client != "-"  # "-": no address to ban
            reason = f"{s['peak']} bad line(s) within {self.window / 60:g} minutes (ban at {self.threshold})"
            out.append(Verdict(client, float(ban), s["requests"], s["bad"], s["first"], s["last"], ban, reason))
        return out


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


_WORKER: dict[str, Pipeline] = {}


def _init_worker(model: WebLogModel, s: ClassifySettings, judge: bool) -> None:
    import signal

    # A forked worker inherits its parent's handlers; with a SIGTERM that only sets a flag
    # (a watcher's), Pool.terminate could never stop it. The worker is ours: the default.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tune_collector_for_streams()  # the worker is a process of our own
    _WORKER["pipeline"] = Pipeline(model, s, judge)


def _feed_worker(job: tuple[list[tuple[int, tuple]], bool]) -> tuple:
    chunk, end = job
    return _WORKER["pipeline"].feed([(key, LogRecord._make(r)) for key, r in chunk], end)


def _chunks(paths: Iterable[str], size: int, stats: ParseStats) -> Iterator[tuple[list, bool]]:
    """``(parsed lines, end of file)``: chunks of at most ``size`` lines, never across files."""
    for path in paths:
        chunk: list[tuple[str, int, LogRecord]] = []
        for item in parse_stream([path], stats):
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk, False
                chunk = []
        yield chunk, True


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
    tally: ClientTally | None = None
    chunk: int = 20_000
    workers: int | None = None
    slack: float = SLACK
    idle: float = IDLE
    max_clients: int | None = MAX_CLIENTS
    scheduler: str | None = None
    jobs: int = 1
    piece_bytes: int = 64 << 20


def classify(
    model: WebLogModel, paths: Iterable[str], out: IO[str] | None = None, *,
    on_verdict: Callable[[Verdict], None] | None = None, stats: ParseStats | None = None,
    settings: ClassifySettings | None = None,
) -> tuple[int, Counter]:  # fmt: skip
    """Label every line of ``paths`` (log files, gzip detected by content, or ``-``); write one
    row per line to ``out`` (None: nowhere), in time order within each file; judge every
    client. Returns (lines, counts of line labels).

    ``on_verdict`` is called with a ``Verdict`` on each client's visit when it ends (idle for
    ``settings.idle`` seconds of log time, or at the end of its file): the client model's,
    or with ``settings.tally`` the classic rule's. ``stats`` counts what was parsed and
    skipped. See ``ClassifySettings`` for the rest.
    """
    s = settings or ClassifySettings()
    stats = stats if stats is not None else ParseStats()
    if s.tally is None and model.client_model is None and on_verdict is not None:
        raise ValueError("this model has no client model (it was trained without bad clients): use a ClientTally.")
    if s.scheduler or s.jobs != 1:
        from .archive import classify_on_cluster

        return classify_on_cluster(model, paths, out, on_verdict, stats, s)
    workers = _workers(s.workers)
    writer = RowWriter(model, out, s, on_verdict, in_worker=workers == 1)
    writer.header()
    judge = on_verdict is not None and s.tally is None
    for result in _results(model, paths, s, stats, (judge, workers), writer.numbered):
        writer.emit(result)
    if s.tally is not None and on_verdict is not None:
        for verdict in s.tally.verdicts():
            on_verdict(verdict)
    return writer.n, writer.counts


def _workers(workers: int | None) -> int:
    """0 or 1 worker processes: 1 by default when there are 2 or more cores."""
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = 1 if cores > 1 else 0
    if workers not in (0, 1):
        raise ValueError(f"workers must be 0 or 1 (one pipeline keeps every client's state). Received: {workers}.")
    return workers


def _results(model: WebLogModel, paths: Iterable[str], s: ClassifySettings, stats: ParseStats,
             run: tuple[bool, int], numbered: Callable[[list], list]) -> Iterator[tuple]:  # fmt: skip
    """What the pipeline makes of each chunk (``run``: judge clients?, workers), here or in one
    worker process."""
    judge, workers = run
    if not workers:
        pipeline = Pipeline(model, s, judge)
        for lines, end in _chunks(paths, s.chunk, stats):
            yield pipeline.feed(numbered(lines), end)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with context.Pool(1, initializer=_init_worker, initargs=(model, s, judge)) as pool:
        # Parsing happens here, in this thread, while the worker works on the chunk before:
        # at most two chunks in flight. Records travel as plain tuples (a NamedTuple
        # costs five times more to unpickle).
        pending: deque = deque()
        for lines, end in _chunks(paths, s.chunk, stats):
            job = ([(key, tuple(r)) for key, r in numbered(lines)], end)
            pending.append(pool.apply_async(_feed_worker, (job,)))
            if len(pending) >= 2:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


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


def verdict_rows(verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    """Banned clients as JSON-able rows, most certain first; a client that came back after
    going idle and was banned again is listed once, with its first ban."""
    first: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        if v.ban and (v.client not in first or v.ban_time < first[v.client]["ban_time"]):
            first[v.client] = v.as_dict()
    return sorted(first.values(), key=lambda r: (-r["probability"], -r["requests"], r["client"]))
