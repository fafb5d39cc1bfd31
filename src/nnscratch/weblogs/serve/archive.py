"""Archives bigger than one machine: ``classify`` on a Dask cluster, with the same result.

The decision procedure (``decision``) reads a log in time order and rules on each
client from that client's own evidence. So the work splits two ways:

1. **By file, then by byte range** (``Part``): each worker parses its piece of a
   file (``reading.read_range``; a compressed file is one piece) and deals its lines
   out into ``buckets`` by a stable hash of their client.
2. **By client** (an all-to-all shuffle of Dask tasks): for each file, bucket ``k``
   of every piece goes to one task, which runs the decision procedure itself
   (``pipeline.Pipeline``) on those clients' lines, in file order.

That gives exactly the single-process result when each client's rulings depend on
its own lines alone. Three things in a log can make them depend on other clients,
and a file that has one is judged whole, in one task (still beside the other files):

- a line more than ``SLACK`` seconds behind the newest line before it (the time
  order lets it out at once, so where it lands depends on every client's times);
- more than ``max_clients`` clients (the decision procedure forgets the longest
  known of them, which depends on all of them);
- a model that reads the site as a whole (the context tokens, or the site-relative
  think time of ``--client site``/``all``).

The first two are checked on the parsed file; the per-line rows and the verdicts
are then put back in the order the single process writes them.
"""

from __future__ import annotations

import copy
import heapq
import io
import os
import pickle
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import islice
from typing import IO, Any

import numpy as np

from ...selection import dask_session
from ..features.summary import CLIENT_SETS
from ..lines.reading import ParseStats, compression_of, file_parser, read_lines, read_range
from ..lines.record import LogRecord, client_of
from ..model.clients import Verdict
from ..model.weblog import WebLogModel
from .decision import collector_for_streams
from .pipeline import ClassifySettings, Pipeline, RowWriter

__all__ = ["Part", "pieces", "classify_on_cluster"]


@dataclass(frozen=True)
class Part:
    """One piece of one log: ``file`` (its index among the logs), its ``path``, and the
    byte range ``[start, end)`` (``end`` None: the whole file, read as ``read_lines`` does)."""

    file: int
    path: str
    start: int = 0
    end: int | None = None


def pieces(paths: Iterable[str], size: int) -> list[Part]:
    """The ``Part``s of ``paths``: plain files cut about every ``size`` bytes, a
    compressed one whole. Standard input cannot be shared between workers."""
    out = []
    for i, path in enumerate(paths):
        if str(path) == "-":
            raise ValueError("a Dask cluster cannot read standard input: give log files its workers can open "
                             "(or leave --scheduler and --jobs out).")  # fmt: skip
        total = os.path.getsize(path)
        if compression_of(path) is not None or total <= size:
            out.append(Part(i, path))
            continue
        out += [Part(i, path, start, min(start + size, total)) for start in range(0, total, size)]
    return out


def _bucket_of(client: str, buckets: int) -> int:
    """A client's bucket: the same in every process (``hash`` of a str is not)."""
    return zlib.crc32(client.encode("utf-8", "surrogateescape")) % buckets


def _parse_part(part: Part, buckets: int) -> tuple[list[list[tuple[int, tuple]]], int, np.ndarray, ParseStats]:
    """Parse one piece: its records as ``(raw line index in the piece, record tuple)``
    dealt into ``buckets`` by client, its raw line count, the times of its records in
    file order, and what was parsed and skipped."""
    with collector_for_streams():
        return _parsed(part, buckets)


def _parsed(part: Part, buckets: int) -> tuple[list[list[tuple[int, tuple]]], int, np.ndarray, ParseStats]:
    parse, stats = file_parser(part.path), ParseStats()
    if part.end is None:
        raws: Iterable[bytes] = (raw for _, _, raw in read_lines([part.path], stats.unreadable))
    else:
        raws = read_range(part.path, part.start, part.end)
    dealt: list[list[tuple[int, tuple]]] = [[] for _ in range(buckets)]
    times: list[float] = []
    index = -1
    for index, raw in enumerate(raws):
        item = parse(raw)
        stats.add(item)
        if isinstance(item, LogRecord):
            dealt[_bucket_of(client_of(item), buckets)].append((index, tuple(item)))
            times.append(item.time)
    return dealt, index + 1, np.asarray(times, dtype=np.float64), stats


def _summary(parsed: tuple) -> tuple[int, np.ndarray, ParseStats]:
    return parsed[1], parsed[2], parsed[3]


def _bucket(parsed: tuple, k: int | None) -> bytes:
    """Bucket ``k`` of a parsed piece (None: all its records, in file order), pickled here:
    a worker's event loop then only sends bytes, and never waits for the thread that
    computes to turn lists of records into them."""
    share = parsed[0][k] if k is not None else sorted(item for bucket in parsed[0] for item in bucket)
    return pickle.dumps(share, protocol=pickle.HIGHEST_PROTOCOL)


def _decide_shares(model: WebLogModel, s: ClassifySettings, judge: bool, rows: bool,
                   offsets: list[int], shares: list[bytes]) -> tuple:  # fmt: skip
    """The decision procedure on some clients of one file: ``shares`` holds, for each piece
    in file order, its records of those clients (``_bucket``), and ``offsets`` the raw lines
    before each piece. Returns the label counts, the verdicts (as tuples of ``Verdict``'s
    fields) and the clients seen (``_outcome``), and with ``rows`` each line's
    ``(time, record, line number)`` in time order with its probabilities and label index."""
    with collector_for_streams():  # a worker's process is not ours: the collector as streaming wants it, meanwhile
        return _decided(_own_copy(model), s, judge, rows, offsets, shares)


_COPIES = threading.local()


def _own_copy(model: WebLogModel) -> WebLogModel:
    """This thread's copy of ``model``: deciding changes the featurizer, and a worker may run
    several tasks at once. The copy lives on between tasks, so its cache of request features
    stays warm (what it caches depends on each request alone)."""
    copies = getattr(_COPIES, "models", None)
    if copies is None:
        copies = _COPIES.models = {}
    if id(model) not in copies:
        copies.clear()  # another run's model: let it go
        copies[id(model)] = (model, copy.deepcopy(model))  # the original held, so its id stays its own
    return copies[id(model)][1]


def _decided(model: WebLogModel, s: ClassifySettings, judge: bool, rows: bool, offsets: list[int],
             shares: list[bytes]) -> tuple:  # fmt: skip
    """``_decide_shares`` with the model copy of this thread (``_own_copy``)."""
    pieces_ = zip(offsets, map(pickle.loads, shares), strict=True)
    items = [(offset + index + 1, LogRecord._make(r)) for offset, share in pieces_ for index, r in share]
    clients = len({client_of(record) for _, record in items})
    order, proba, labels, verdicts, _ = Pipeline(model, s, judge).feed(items, end=True)
    counts = Counter()
    if labels is not None:
        counts.update(dict(zip(model.classes, np.bincount(labels, minlength=len(model.classes)).tolist(), strict=True)))
    out = None
    if rows and len(order):
        by_number = dict(items)
        out = ([(by_number[n].time, tuple(by_number[n]), n) for n in order.tolist()], proba, labels)
    return counts, verdicts, clients, out


def _outcome(decided: tuple) -> tuple:
    """What the caller reads of a ``_decide_shares``: counts, verdicts, clients (not the rows)."""
    return decided[:3]


def _rows_text(model: WebLogModel, s: ClassifySettings, source: str, decided: list[tuple]) -> str:
    """One file's rows as ``classify`` writes them, from its buckets (``_decide_shares``):
    merged into the one-process order (each bucket is in it already: time, then the record,
    then the line number), formatted here, on a worker, so that the caller only writes text."""
    with_rows = [d[3] for d in decided if d[3] is not None]
    streams = [[(*key, b, i) for i, key in enumerate(keys)] for b, (keys, _, _) in enumerate(with_rows)]
    merged = heapq.merge(*streams)
    writer = RowWriter(model, io.StringIO(), s, None, in_worker=False)
    while chunk := list(islice(merged, s.chunk)):
        proba = np.stack([with_rows[b][1][i] for *_, b, i in chunk])
        winners = [int(with_rows[b][2][i]) for *_, b, i in chunk]
        rows = [(source, n, client_of(LogRecord._make(record)), when) for when, record, n, _, _ in chunk]
        writer.write_rows(rows, proba, winners)
    return writer.out.getvalue()


def _reads_site(model: WebLogModel) -> bool:
    """Whether the model's rulings on a client read other clients' lines (module docstring)."""
    featurizer = model.featurizer
    return featurizer.context is not None or "site_rank" in CLIENT_SETS.get(featurizer.client, ())


def _late(times: np.ndarray, slack: float) -> bool:
    """Whether a record comes more than ``slack`` seconds after a later one (in file order)."""
    if len(times) < 2:
        return False
    return bool(np.any(times[1:] < np.maximum.accumulate(times)[:-1] - slack))


def classify_on_cluster(model: WebLogModel, paths: Iterable[str], out: IO[str] | None,
                        on_verdict: Callable[[Verdict], None] | None, stats: ParseStats,
                        s: ClassifySettings) -> tuple[int, Counter]:  # fmt: skip
    """``classify.classify`` on a Dask cluster (``s.scheduler``, or a local one of ``s.jobs``
    workers): the same rows in the same order, and the same verdicts (in an order of their
    own). The workers must be able to open ``paths``. Returns (lines, counts of line labels)."""
    if s.tally is not None:
        raise ValueError("the count rule (--ban-rule count) keeps one tally of every client in time order: run it "
                         "without --scheduler and --jobs.")  # fmt: skip
    paths = [str(path) for path in paths]
    parts = pieces(paths, s.piece_bytes)
    with dask_session(s.scheduler or "local", s.jobs) as client:
        writer = RowWriter(model, out, s, on_verdict, in_worker=False)
        writer.header()
        run = _Run(client, model, s, judge=on_verdict is not None, rows=out is not None)
        parsed = client.map(_parse_part, parts, buckets=run.buckets, pure=False)
        summaries = client.gather(client.map(_summary, parsed, pure=False))
        files = []
        for f, path in enumerate(paths):  # every file's work is handed out before the first is written
            mine = [i for i, part in enumerate(parts) if part.file == f]
            for i in mine:
                stats.merge(summaries[i][2])
            files.append(run.submit(path, [parsed[i] for i in mine], [summaries[i] for i in mine]))
        for work in files:
            run.write(work, writer)
        return writer.n, writer.counts


class _Run:
    """One ``classify_on_cluster``: the model shared with every worker, and each file's
    clients judged in buckets (or whole, module docstring), written as the single process would."""

    def __init__(self, client: Any, model: WebLogModel, s: ClassifySettings, judge: bool, rows: bool) -> None:
        self.client, self.s, self.judge, self.rows = client, s, judge, rows
        self.buckets = 2 * max(1, len(client.scheduler_info()["workers"]))
        self.model = client.scatter(model, broadcast=True)
        self.whole_site = _reads_site(model)
        self.single = replace(s, scheduler=None, jobs=1)  # what each task runs: the one-process procedure

    def submit(self, source: str, parsed: list, summaries: list) -> tuple:
        """Hand out one file's judging: ``(source, parsed pieces, offsets, judged whole?, tasks,
        its rows' text or None)``."""
        offsets = np.cumsum([0] + [n for n, _, _ in summaries])[:-1].tolist()
        times = np.concatenate([t for _, t, _ in summaries])
        whole = self.whole_site or _late(times, self.s.slack)
        return (source, parsed, offsets, whole, *self._judge(source, parsed, offsets, None if whole else self.buckets))

    def _judge(self, source: str, parsed: list, offsets: list[int], buckets: int | None) -> tuple[list, Any]:
        """The tasks that judge a file in ``buckets`` (None: whole), and the one that formats its rows."""
        client, tasks = self.client, []
        for k in range(buckets) if buckets is not None else [None]:
            shares = [client.submit(_bucket, p, k, pure=False) for p in parsed]
            tasks.append(client.submit(_decide_shares, self.model, self.single, self.judge, self.rows, offsets,
                                       shares, pure=False))  # fmt: skip
        text = client.submit(_rows_text, self.model, self.single, source, tasks, pure=False) if self.rows else None
        return tasks, text

    def write(self, work: tuple, writer: RowWriter) -> None:
        """One file's verdicts, counts and rows, once its tasks are done; judged again whole
        if its buckets together held more than ``max_clients`` clients (module docstring)."""
        source, parsed, offsets, whole, tasks, text = work
        outcomes = self.client.gather([self.client.submit(_outcome, task, pure=False) for task in tasks])
        limit = self.s.max_clients
        if not whole and limit is not None and sum(clients for _, _, clients in outcomes) > limit:
            if text is not None:
                text.cancel()
            tasks, text = self._judge(source, parsed, offsets, None)
            outcomes = self.client.gather([self.client.submit(_outcome, task, pure=False) for task in tasks])
        for counts, verdicts, _ in outcomes:
            writer.counts.update(counts)
            writer.n += sum(counts.values())
            if writer.on_verdict is not None:
                for fields in verdicts:
                    writer.on_verdict(Verdict(*fields))
        if text is not None:  # formatted on a worker: this process only writes it
            writer.out.write(text.result())
