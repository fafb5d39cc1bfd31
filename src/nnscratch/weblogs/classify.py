"""Applying a trained model to logs of any size: per-line labels and client verdicts.

``classify`` streams each log in time order (``parse.in_time_order``, the same
order training and ``evaluate`` use), labels every line with the line model,
keeps every client's evidence in a ``ClientBook`` and judges each client with
the model's client model when it goes idle or the log ends. Without context
features lines are independent, so a worker process parses, featurises and
predicts the next chunk while this process writes the previous one.

``ClientTally`` is the classic rule, "N bad lines within X minutes", kept as an
option (``--ban-rule count``): it bans browsers that make many similar
requests, which is why the client model is the default.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from .clients import ClientBook, Verdict
from .features import client_of
from .model import WebLogModel
from .parse import LogRecord, ParseStats, in_time_order, parse_line, parse_stream, read_lines

__all__ = ["ClientTally", "classify"]


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
            ban = s["peak"] >= self.threshold
            reason = f"{s['peak']} bad line(s) within {self.window / 60:g} minutes (ban at {self.threshold})"
            out.append(Verdict(client, float(ban), s["requests"], s["bad"], s["first"], s["last"], ban, reason))
        return out


def _ordered(paths: Iterable[str], stats: ParseStats, slack: float) -> Iterator[tuple[str, int, LogRecord] | None]:
    """Each file's parsed lines in time order, with ``None`` between files (the context starts afresh)."""
    for path in paths:
        yield from in_time_order(
            parse_stream([path], stats), lambda item: item[2].time, slack, tiebreak=lambda item: item[2]
        )
        yield None


def _classify_chunk(chunk: list[tuple[str, int, bytes]]) -> tuple[list, Any, ParseStats, tuple[int, int]]:
    """Worker side of ``classify`` (no context features): parse a chunk of raw lines and predict them."""
    model: WebLogModel = _WORKER["model"]
    featurizer = model.featurizer
    hits, lookups = featurizer.cache_hits, featurizer.cache_lookups
    stats = ParseStats()
    rows, columns = [], []
    for source, number, raw in chunk:
        item = parse_line(raw)
        stats.add(item)
        if isinstance(item, LogRecord):
            cols, facts = featurizer.columns(item)
            rows.append((source, number, item, facts))
            columns.append(cols)
    proba = model.network.predict(model.inputs(featurizer.matrix(columns))) if rows else None
    return rows, proba, stats, (featurizer.cache_hits - hits, featurizer.cache_lookups - lookups)


_WORKER: dict[str, Any] = {}


def _init_worker(model: WebLogModel) -> None:
    _WORKER["model"] = model


def _chunks(paths: Iterable[str], size: int) -> Iterator[list[tuple[str, int, bytes]]]:
    chunk: list[tuple[str, int, bytes]] = []
    for item in read_lines(paths):
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify(
    model: WebLogModel, paths: Iterable[str], out: IO[str] | None, fmt: str = "csv", *,
    on_verdict: Callable[[Verdict], None] | None = None, tally: ClientTally | None = None, chunk: int = 20_000,
    stats: ParseStats | None = None, workers: int | None = None, slack: float = 300.0, idle: float = 1800.0,
) -> tuple[int, Counter]:  # fmt: skip
    """Label every line of ``paths``; write one row per line to ``out`` (CSV or JSON lines);
    judge every client. Returns (lines, counts of line labels).

    Parameters
    ----------
    model : WebLogModel
    paths : iterable of str
        Log files (gzip detected by content) or ``-`` for standard input.
    out : text file, optional
        Where the per-line rows go (None: nowhere).
    fmt : {"csv", "jsonl"}
    on_verdict : callable, optional
        Called with each client's ``Verdict`` when the client has been idle for
        ``idle`` seconds of log time, or at the end of its file. With ``tally``
        the verdicts are the classic rule's; otherwise the client model's.
    tally : ClientTally, optional
        Judge clients by "N bad lines within X minutes" instead of the client model.
    slack : float
        Seconds of log time held back to put lines in time order.
    workers : int, optional
        Processes that parse and predict ahead (models without context features
        only); default 1 when there are 2 or more cores.
    """
    import os

    stats = stats if stats is not None else ParseStats()
    counts: Counter = Counter()
    classes = model.classes
    if out is not None and fmt == "csv":
        out.write("file,line,client,time,label," + ",".join(f"p_{c}" for c in classes) + "\n")
    row_format = ",".join(["{:.4f}"] * len(classes)) + "\n"
    featurizer = model.featurizer
    book = ClientBook(idle=idle)
    if tally is None and model.client_model is None and on_verdict is not None:
        raise ValueError("this model has no client model (it was trained without bad clients): use a ClientTally.")

    def judge(clients: list[tuple[str, dict[str, Any]]]) -> None:
        if on_verdict is None or tally is not None or not clients:
            return
        for verdict in model.client_model.verdicts(clients):
            on_verdict(verdict)

    def emit(rows: list[tuple[str, int, LogRecord, Any]], proba: np.ndarray) -> int:
        winners = model.labels(proba).tolist()
        for (source, number, record, facts), p, w in zip(rows, proba.tolist(), winners, strict=True):
            label = classes[w]
            counts[label] += 1
            client = client_of(record)
            book.add(record, facts, label == "bad")
            if tally is not None:
                tally.add(client, record.time, label == "bad")
            if out is None:
                continue
            if fmt == "csv":
                out.write(f"{source},{number},{client},{record.time:.0f},{label}," + row_format.format(*p))
            else:
                out.write(json.dumps({"file": source, "line": number, "client": client, "time": record.time,
                                      "label": label, "p": dict(zip(classes, p, strict=True))}) + "\n")  # fmt: skip
        now = rows[-1][2].time
        judge(list(book.finished(now)))
        if featurizer.context is not None:
            featurizer.context.forget_idle(now)
        if tally is not None:
            tally.forget_idle(now)
        return len(rows)

    n = 0
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
                if rows:
                    n += emit(rows, proba)
    else:
        rows: list[tuple[str, int, LogRecord, Any]] = []
        columns: list[np.ndarray] = []
        for item in _ordered(paths, stats, slack):
            if item is not None:
                source, number, record = item
                cols, facts = featurizer.columns(record)
                rows.append((source, number, record, facts))
                columns.append(cols)
            if rows and (item is None or len(rows) >= chunk):
                n += emit(rows, model.network.predict(model.inputs(featurizer.matrix(columns))))
                rows, columns = [], []
            if item is None:  # a file ended: its clients are judged, the next file starts afresh
                judge(list(book.drain()))
                featurizer.reset_context()
    judge(list(book.drain()))
    if tally is not None and on_verdict is not None:
        for verdict in tally.verdicts():
            on_verdict(verdict)
    return n, counts


def verdict_rows(verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    """Banned clients as JSON-able rows, most certain first."""
    rows = [v.as_dict() for v in verdicts if v.ban]
    return sorted(rows, key=lambda r: (-r["probability"], -r["requests"], r["client"]))


def write_ban_list(path: str | Path, verdicts: Iterable[Verdict]) -> None:
    """One banned client per line."""
    Path(path).write_text("".join(row["client"] + "\n" for row in verdict_rows(verdicts)), encoding="utf-8")
