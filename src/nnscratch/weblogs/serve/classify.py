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

import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..lines.reading import ParseStats, parse_stream
from ..lines.record import LogRecord
from ..model.clients import Verdict
from ..model.weblog import WebLogModel
from .decision import tune_collector_for_streams
from .pipeline import ClassifySettings, Pipeline, RowWriter

__all__ = ["ClientTally", "ClassifySettings", "classify"]


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


def verdict_rows(verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    """Banned clients as JSON-able rows, most certain first; a client that came back after
    going idle and was banned again is listed once, with its first ban."""
    first: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        if v.ban and (v.client not in first or v.ban_time < first[v.client]["ban_time"]):
            first[v.client] = v.as_dict()
    return sorted(first.values(), key=lambda r: (-r["probability"], -r["requests"], r["client"]))
