"""What a restart must not forget: the decision procedure's memory of the stream.

A watcher's judgement of a client rests on everything the client did in its
visit so far, and on what the site showed (its pace, its paths). If a restart
forgot that, a scanner that paced itself across it would start from zero. So
each step's commit carries, in the same transaction as the file positions
after it, what the step changed in that memory:

- each client's evidence (``counts.ClientState``, its window included) that a
  line or a ruling touched, and the visits that ended (forgotten);
- the site's evidence (its pace, and a behaviour model's ``Context``: the paths
  touched, the referrer hosts);
- when the current second began, which clients wait for its judgement;
- the lines still held back to be put in time order (``TimeOrder``).

It is bounded as the stream's memory is: ``--max-clients`` clients, their
paths and windows, the context's paths, and the lines of ``SLACK`` seconds.
``restore`` puts it back before the first step, so that a watcher stopped at
any commit (``kill -9`` included) and started again decides exactly what one
that never stopped decides. Each row is JSON, keyed by a hash of its name (a
client or a path from a log may hold any character).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable
from typing import Any

from ..features.counts import ClientState
from ..features.summary import Counts
from ..lines.record import LogRecord, client_of
from ..model.clients import Ruling
from ..serve.decision import Decider, Decisions
from .state import Remembered

__all__ = ["StreamMemory", "CURSOR"]

CLIENT, PATH, HELD, STREAM = "client", "path", "held", "stream"
CURSOR = "cursor"  # a journal's cursor (``journal.JournalFollower``), by its source: the watcher's rows


def _key(name: str) -> str:
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _ruling(data: list) -> Ruling:
    return Ruling(data[0], data[1], data[2], data[3], data[4], Counts(*data[5]))


class StreamMemory:
    """The watcher's memory of its stream, saved step by step and restored at start (see the
    module docstring). ``decider`` is the watcher's; held items are ``((path, raw), record)``."""

    def __init__(self, decider: Decider) -> None:
        self.decider = decider
        self.held: set[int] = set()  # the held lines the state file has
        self.book: Any = None  # the book and context saved so far (a reload may start new ones)
        self.context: Any = None

    def __repr__(self) -> str:
        return f"StreamMemory(clients={len(self.decider.book):,}, held={len(self.held):,})"

    def _identity(self) -> list:
        """What the saved evidence is only valid for: the featurizer's windows and the visit length."""
        featurizer = self.decider.model.featurizer
        return [bool(featurizer.behaviour), float(featurizer.window), self.decider.idle]

    def changes(self, decided: Decisions) -> Remembered:
        """What the step that made ``decided`` changed, for its commit."""
        decider, put, drop, clear = self.decider, [], [], []
        book, context, points, order = decider.book, decider.model.featurizer.context, decider.points, decider.order
        if book is not self.book:  # new, or started afresh by a reload: everything, in place of what was
            clear += [CLIENT, HELD]
            touched = set(book.clients)
            self.book, self.held = book, set()
        else:
            touched = {client_of(record) for _, record in decided.items} | {r.client for r in decided.rulings}
            drop += [(CLIENT, _key(c)) for c, _ in decided.ended if c not in book.clients]
        clients = book.clients
        put += [(CLIENT, _key(c), json.dumps(clients[c].to_json()).encode()) for c in touched if c in clients]
        if context is not None:
            if context is not self.context:
                clear.append(PATH)
                context.changed = set(context.paths)
                self.context = context
            paths, rest = context.taken()
            put += [(PATH, _key(p), json.dumps([p, e]).encode()) for p, e in paths.items() if e is not None]
            drop += [(PATH, _key(p)) for p, e in paths.items() if e is None]
        else:
            rest = None
        now = {entry[2]: entry[3][0] for entry in order.heap}  # push number -> (path, raw)
        put += [(HELD, str(seq), now[seq][0].encode() + b"\0" + now[seq][1]) for seq in now.keys() - self.held]
        drop += [(HELD, str(seq)) for seq in self.held - now.keys()]
        self.held = set(now)
        stream = {"identity": self._identity(), "site": book.site.to_json(), "added": book.added,
                  "second": points.second, "touched": list(points.touched), "newest": order.newest,
                  "pushed": order.pushed, "context": rest}  # fmt: skip
        put.append((STREAM, STREAM, json.dumps(stream).encode()))
        return Remembered(put, drop, tuple(clear))

    def restore(self, saved: dict[str, dict[str, bytes]], parse: Callable[[str, bytes], LogRecord | None]) -> str:
        """Put back what the state file kept (``Store.memory()``); ``parse(path, raw)`` reads a
        held line again. Returns a sentence for the operator ("" when there was nothing)."""
        if STREAM not in saved:
            return ""
        decider = self.decider
        stream = json.loads(saved[STREAM][STREAM])
        if stream["identity"] != self._identity():
            return ("the clients' evidence in the state file was gathered with other context windows or "
                    "another --idle: it starts afresh")  # fmt: skip
        book, points, order, context = decider.book, decider.points, decider.order, decider.model.featurizer.context
        book.site.load_json(stream["site"])
        states = [ClientState.from_json(json.loads(v), book.site, _ruling) for v in saved.get(CLIENT, {}).values()]
        book.restore(states, stream["added"])
        points.second, points.touched = stream["second"], dict.fromkeys(stream["touched"])
        if context is not None and stream["context"] is not None:
            context.restore(dict(json.loads(v) for v in saved.get(PATH, {}).values()), stream["context"])
            context.changed = set()
            self.context = context
        held = []
        for seq, value in saved.get(HELD, {}).items():
            path, _, raw = value.partition(b"\0")
            record = parse(path.decode(), raw)
            if record is not None:
                held.append((record.time, record, int(seq), ((path.decode(), raw), record)))
        order.heap = held
        heapq.heapify(order.heap)
        order.newest, order.pushed = stream["newest"], stream["pushed"]
        self.book, self.held = book, {entry[2] for entry in held}
        return (f"restored the evidence of {len(states):,} client(s) and {len(held):,} line(s) held for time "
                "order")  # fmt: skip
