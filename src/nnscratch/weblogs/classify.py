"""Applying a trained model to logs of any size, and the ban list.

``classify`` streams logs in chunks; without behaviour features a worker
process parses, featurises and predicts the next chunk while this process
writes the previous one. ``ClientTally`` keeps, per client, the bad requests
of a sliding window, for "ban clients with N bad requests within X minutes".
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable
from typing import IO, Any

from .features import Behaviour
from .model import WebLogModel
from .parse import LogRecord, ParseStats, parse_stream

__all__ = ["ClientTally", "classify"]


class ClientTally:
    """Bad requests per client in a sliding window: who reached ``threshold`` within ``minutes``."""

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
        if when > s["last"]:
            s["last"] = when
        elif when < s["first"]:
            s["first"] = when
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
        """Drop clients that never reached the threshold and have been quiet for a
        whole window: nothing they did can get them banned any more. Keeps memory
        bounded by the clients active in one window (plus the banned ones)."""
        idle = [c for c, s in self.state.items() if s["peak"] < self.threshold and s["last"] < now - self.window]
        for client in idle:
            del self.state[client]

    def banned(self) -> list[dict[str, Any]]:
        """Clients with at least ``threshold`` bad requests within the window, worst first."""
        rows = []
        for client, s in self.state.items():
            if s["peak"] >= self.threshold:
                rows.append({"client": client, "bad_in_window": s["peak"], "window_start": s["peak_start"],
                             "window_end": s["peak_end"], "bad_total": s["bad"], "requests": s["requests"],
                             "first_seen": s["first"], "last_seen": s["last"]})  # fmt: skip
        return sorted(rows, key=lambda r: (-r["bad_in_window"], r["client"]))


def _classify_chunk(
    chunk: list[tuple[str, int, bytes]],
) -> tuple[list[tuple[str, int, str, float]], Any, ParseStats, Any]:
    """Worker side of ``classify``: parse a chunk of raw lines and predict them."""
    from .parse import parse_line

    model: WebLogModel = _WORKER["model"]
    featurizer = model.featurizer
    hits, lookups = featurizer.cache_hits, featurizer.cache_lookups
    stats = ParseStats()
    rows, columns = [], []
    for source, number, raw in chunk:
        item = parse_line(raw)
        stats.add(item)
        if isinstance(item, LogRecord):
            rows.append((source, number, Behaviour.client_of(item), item.time))
            columns.append(featurizer.columns(item))
    proba = model.network.predict(model.inputs(featurizer.matrix(columns))) if rows else None
    return rows, proba, stats, (featurizer.cache_hits - hits, featurizer.cache_lookups - lookups)


_WORKER: dict[str, Any] = {}


def _init_worker(model: WebLogModel) -> None:
    _WORKER["model"] = model


def _chunks(paths: Iterable[str], size: int) -> Any:
    from .parse import read_lines

    chunk: list[tuple[str, int, bytes]] = []
    for item in read_lines(paths):
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify(
    model: WebLogModel, paths: Iterable[str], out: IO[str] | None, fmt: str = "csv", tally: ClientTally | None = None,
    chunk: int = 20_000, stats: ParseStats | None = None, workers: int | None = None,
) -> tuple[int, Counter]:  # fmt: skip
    """Label every line of ``paths`` (streamed in chunks); write one row per line to
    ``out`` (CSV or JSON lines) and feed the client tally. Returns (lines, counts).

    Without behaviour features, chunks are independent: a worker process parses,
    featurises and predicts the next chunk while this one writes (``workers``
    defaults to 1 extra process when there are 2 or more cores). With behaviour
    features the per-client windows need the lines in order, so it runs here.
    """
    import os

    stats = stats if stats is not None else ParseStats()
    counts: Counter = Counter()
    n = 0
    classes = model.classes
    if out is not None and fmt == "csv":
        out.write("file,line,client,time,label," + ",".join(f"p_{c}" for c in classes) + "\n")
    bad = classes.index("bad") if "bad" in classes else None
    row_format = ",".join(["{:.4f}"] * len(classes)) + "\n"
    featurizer = model.featurizer

    def emit(rows: list[tuple[str, int, str, float]], proba: Any) -> None:
        nonlocal n
        if not rows:
            return
        winners = proba.argmax(axis=1).tolist()
        for (source, number, client, when), p, w in zip(rows, proba.tolist(), winners, strict=True):
            label = classes[w]
            counts[label] += 1
            if tally is not None:
                tally.add(client, when, w == bad)
            if out is None:
                continue
            if fmt == "csv":
                out.write(f"{source},{number},{client},{when:.0f},{label}," + row_format.format(*p))
            else:
                row = {"file": source, "line": number, "client": client, "time": when, "label": label,
                       "p": dict(zip(classes, p, strict=True))}  # fmt: skip
                out.write(json.dumps(row) + "\n")
        n += len(rows)
        now = rows[-1][3]
        if featurizer._behaviour is not None:
            featurizer._behaviour.forget_idle(now)
        if tally is not None:
            tally.forget_idle(now)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = (1 if cores > 1 else 0) if workers is None else workers
    if workers and not featurizer.behaviour:
        import multiprocessing

        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(model,)) as pool:
            for rows, proba, chunk_stats, (hits, lookups) in pool.imap(_classify_chunk, _chunks(paths, chunk)):
                featurizer.cache_hits += hits  # the worker's cache, reported here
                featurizer.cache_lookups += lookups
                stats.parsed += chunk_stats.parsed
                for reason, count in chunk_stats.skipped.items():
                    stats.skipped[reason] += count
                    kept = stats.examples.setdefault(reason, [])
                    kept.extend(chunk_stats.examples[reason][: stats.keep - len(kept)])
                emit(rows, proba)
        return n, counts
    rows: list[tuple[str, int, str, float]] = []
    columns: list = []
    for source, number, record in parse_stream(paths, stats):
        rows.append((source, number, Behaviour.client_of(record), record.time))
        columns.append(featurizer.columns(record))
        if len(rows) >= chunk:
            emit(rows, model.network.predict(model.inputs(featurizer.matrix(columns))))
            rows, columns = [], []
    if rows:
        emit(rows, model.network.predict(model.inputs(featurizer.matrix(columns))))
    return n, counts
