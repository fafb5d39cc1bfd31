"""Per-client counts: each client's evidence over its visit, and when it is judged.

``ClientBook`` keeps every client's running tally (``ClientState``, named
fields, bounded memory): how much it asked and how fast, how regular its rhythm
is, what share of its requests failed, hit distinct paths, fetched static
assets, posted, carried payloads or probes, came without a referrer, and which
class of user agent it showed. ``ClientBook.summarise`` turns the counts into
the client model's inputs (``FEATURES``). ``JudgementPoints`` says when clients
are judged: at the end of every log-second in which they made requests.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque, namedtuple
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..evidence.request import agent_class
from ..lines.record import LogRecord, client_of

if TYPE_CHECKING:
    from ..model.clients import Ruling

__all__ = [
    "RequestFacts", "ClientState", "ClientBook", "Window", "WindowEntry", "JudgementPoints", "Snapshot", "Counts",
    "FEATURES", "AGENT_CLASSES", "IDLE",
]  # fmt: skip

AGENT_CLASSES = ("browser", "crawler", "monitor", "script", "attack-tool", "empty", "malformed")
FEATURES = (
    "log_requests", "log_duration", "log_rate_per_minute", "gap_cv", "same_second_share", "share_4xx",
    "share_5xx", "distinct_path_share", "static_share", "post_share", "head_share", "other_method_share",
    "flagged_share", "no_referrer_share", "malformed_share",
) + tuple(f"agent_{name}" for name in AGENT_CLASSES)  # fmt: skip

_KIND = {name: i for i, name in enumerate(AGENT_CLASSES)}


class RequestFacts(NamedTuple):
    """What the context needs to know of a request, computed once per distinct request."""

    path: str
    static: bool
    flagged: bool  # carries payload or probe evidence


# A client's counts at one judgement, by name: requests, seconds from first to last request, the sum
# and sum of squares of the gaps between requests and their number, gaps of 0 s, 4xx and 5xx answers,
# distinct paths, static assets, POST, HEAD and other methods, flagged requests, requests without a
# referrer, malformed requests, and requests by agent class. ``ClientBook.summarise`` reads them.
Counts = namedtuple("Counts", ["requests", "duration", "gaps", "gap2", "ngaps", "same", "e4", "e5", "paths",
                               "static", "post", "head", "other", "flagged", "noref", "malformed"]
                    + [f"agent_{name.replace('-', '_')}" for name in AGENT_CLASSES])  # fmt: skip
_make_counts = Counts._make
IDLE = 1800.0  # seconds of log time after which a client's next request starts a new visit


class ClientState:
    """One client's running evidence over a visit (what ``ClientBook.features`` summarises),
    and what the rulings on it said so far: the highest P(bad) (``peak``) and the first
    ruling that banned it (``ban``), written by the decision procedure."""

    __slots__ = ("client", "n", "first", "last", "gaps", "gap2", "ngaps", "same", "e4", "e5", "static", "post",
                 "head", "other", "flagged", "noref", "malformed", "bad_lines", "paths", "agents", "kinds", "peak",
                 "ban", "window")  # fmt: skip

    def __init__(self, now: float, client: str = "") -> None:
        self.client = client
        self.window: Window | None = None  # the last requests, when the book keeps windows
        self.n = self.ngaps = self.same = self.e4 = self.e5 = self.static = self.post = self.head = 0
        self.other = self.flagged = self.noref = self.malformed = self.bad_lines = 0
        self.first = self.last = now
        self.gaps = self.gap2 = 0.0
        self.paths: set[str] = set()
        self.agents: dict[str, int] = {}  # up to 8 user agents -> their class (an index into AGENT_CLASSES)
        self.kinds = [0] * len(AGENT_CLASSES)  # requests by agent class, of those agents
        self.peak: float | None = None
        self.ban: Ruling | None = None

    def __repr__(self) -> str:
        return f"ClientState(requests={self.n}, first={self.first:.0f}, last={self.last:.0f})"


class WindowEntry(NamedTuple):
    """One request in a client's window: its time, the gap before it (-1: the first of the
    window), and what the window's shares count."""

    time: float
    gap: float
    e4: bool
    e5: bool
    path: str
    static: bool
    post: bool
    head: bool
    flagged: bool
    noref: bool
    zero: bool


_make_entry = WindowEntry._make


class Window:
    """A client's requests in the last ``seconds``, with running sums so that each request
    enters and leaves once (a flood costs O(1) per line): what the context tokens read."""

    __slots__ = ("entries", "paths", "e4", "e5", "static", "post", "head", "flagged", "noref", "zero", "gaps", "gap2")

    def __init__(self) -> None:
        self.entries: deque[WindowEntry] = deque()
        self.paths: Counter = Counter()
        self.e4 = self.e5 = self.static = self.post = self.head = self.flagged = self.noref = self.zero = 0
        self.gaps = self.gap2 = 0.0

    def __repr__(self) -> str:
        return f"Window(requests={len(self.entries)}, paths={len(self.paths)})"

    def push(self, record: LogRecord, facts: RequestFacts, seconds: float) -> None:
        entries, now, status, method = self.entries, record.time, record.status, record.method.upper()
        gap = now - entries[-1].time if entries else -1.0
        entry = _make_entry((now, gap, 400 <= status < 500, status >= 500, facts.path, facts.static, method == "POST",
                             method == "HEAD", facts.flagged, record.referrer in ("", "-"), gap == 0.0))  # fmt: skip
        entries.append(entry)
        self._count(entry, 1)
        while entries[0].time < now - seconds:
            self._count(entries.popleft(), -1)

    def _count(self, entry: WindowEntry, sign: int) -> None:
        self.e4 += sign * entry.e4
        self.e5 += sign * entry.e5
        self.static += sign * entry.static
        self.post += sign * entry.post
        self.head += sign * entry.head
        self.flagged += sign * entry.flagged
        self.noref += sign * entry.noref
        self.zero += sign * entry.zero
        if entry.gap >= 0:
            self.gaps += sign * entry.gap
            self.gap2 += sign * entry.gap * entry.gap
        paths = self.paths
        paths[entry.path] += sign
        if not paths[entry.path]:
            del paths[entry.path]


class ClientBook:
    """Running evidence per client over its visit so far, in bounded memory.

    ``add`` takes each line (in time order). A client idle for ``idle`` seconds
    of log time has finished its visit: ``finished(now)`` hands it out (so a
    caller can report on it) and forgets it, as it does with the least recently
    active clients when there are more than ``max_clients``. Clients are kept in
    order of activity, so that costs nothing while nobody is idle. At most
    ``max_paths`` distinct paths and 8 user agents are kept per client.
    """

    def __init__(self, idle: float = IDLE, max_paths: int = 1000, max_clients: int | None = None,
                 window: float | None = None) -> None:  # fmt: skip
        self.idle, self.max_paths, self.max_clients = float(idle), max_paths, max_clients
        self.window = window  # seconds of each client's sliding window (``Window``), or None: none kept
        self.clients: OrderedDict[str, ClientState] = OrderedDict()  # least recently active first

    def __repr__(self) -> str:
        return f"ClientBook(idle={self.idle:g}s, clients={len(self.clients):,})"

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> ClientState:
        """Add one line to its client's evidence (and window); returns the client's state. A
        client idle for more than ``idle`` seconds of log time starts a new visit here, whether
        or not ``finished`` has forgotten it yet, so the evidence depends on the log alone."""
        client = client_of(record)
        now = record.time
        clients = self.clients
        s = clients.get(client)
        if s is None or now - s.last > self.idle:
            s = clients[client] = ClientState(now, client)
        else:
            gap = now - s.last if now > s.last else 0.0
            s.gaps += gap
            s.gap2 += gap * gap
            s.ngaps += 1
            if gap == 0.0:
                s.same += 1
            else:
                s.last = now
        s.n += 1
        status = record.status
        if status >= 400:
            if status < 500:
                s.e4 += 1
            else:
                s.e5 += 1
        method = record.method
        if method == "GET":
            pass
        elif method == "POST":
            s.post += 1
        elif method == "HEAD":
            s.head += 1
        else:
            s.other += 1
        if facts.static:
            s.static += 1
        if facts.flagged:
            s.flagged += 1
        if record.referrer in ("", "-"):
            s.noref += 1
        if not record.request_ok:
            s.malformed += 1
        if bad_line:
            s.bad_lines += 1
        if len(s.paths) < self.max_paths:
            s.paths.add(facts.path)
        agents = s.agents
        kind = agents.get(record.agent)
        if kind is None and len(agents) < 8:
            kind = agents[record.agent] = _KIND[agent_class(record.agent)]
        if kind is not None:
            s.kinds[kind] += 1
        if self.window is not None:
            self._push_window(s, record, facts)
        clients.move_to_end(client)
        return s

    def _push_window(self, s: ClientState, record: LogRecord, facts: RequestFacts) -> None:
        window = s.window
        # A window with nothing left in it starts afresh (exact sums, not a float residue).
        if window is None or window.entries[-1].time < record.time - self.window:
            window = s.window = Window()
        window.push(record, facts, self.window)

    @staticmethod
    def counts(s: ClientState) -> Counts:
        """The raw counts ``summarise`` needs: what a judgement records (named, and cheap)."""
        return _make_counts((s.n, s.last - s.first, s.gaps, s.gap2, s.ngaps, s.same, s.e4, s.e5, len(s.paths),
                             s.static, s.post, s.head, s.other, s.flagged, s.noref, s.malformed, *s.kinds))  # fmt: skip

    @staticmethod
    def summarise(counts: Sequence[Counts] | np.ndarray) -> np.ndarray:
        """Client summaries ``(k, len(FEATURES))`` from ``k`` rows of ``counts``, all at once.

        Per client: the log of its requests, of its duration and of its rate per
        minute; the coefficient of variation of the gaps between its requests (0
        with fewer than two gaps, at most 10) and the share of gaps of 0 s; the
        shares of 4xx and 5xx answers, distinct paths, static assets, POST, HEAD,
        other methods, flagged requests, requests without a referrer and malformed
        ones; and the share of its requests from each class of user agent.
        """
        c = np.asarray(counts, dtype=np.float64).reshape(-1, 16 + len(AGENT_CLASSES))
        n, duration, gaps, gap2, ngaps = c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4]
        has_gaps = ngaps > 0
        per_gap = np.where(has_gaps, ngaps, 1.0)
        mean = np.where(has_gaps, gaps / per_gap, 0.0)
        spread = np.sqrt(np.maximum(gap2 / per_gap - mean * mean, 0.0))
        regular = (ngaps >= 2) & (mean > 0)
        cv = np.where(regular, spread / np.where(regular, mean, 1.0), 0.0)
        kinds = c[:, 16:]
        agents = np.maximum(kinds.sum(axis=1, keepdims=True), 1.0)
        return np.column_stack([
            np.log1p(n), np.log1p(duration), np.log1p(n / (duration + 60.0) * 60.0), np.minimum(cv, 10.0),
            np.where(has_gaps, c[:, 5] / per_gap, 0.0), c[:, 6:16] / n[:, None], kinds / agents,
        ])  # fmt: skip

    @staticmethod
    def features(s: ClientState) -> np.ndarray:
        """The client's summary as a vector, in the order of ``FEATURES`` (see ``summarise``)."""
        return ClientBook.summarise([ClientBook.counts(s)])[0]

    def finished(self, now: float) -> list[tuple[str, ClientState]]:
        """Clients idle for ``idle`` seconds at log time ``now`` (and, over ``max_clients``, the
        least recently active), forgotten: ``(client, state)`` in order of activity."""
        clients, limit, most = self.clients, now - self.idle, self.max_clients
        out = []
        while clients:
            client, s = next(iter(clients.items()))
            if s.last >= limit and (most is None or len(clients) <= most):
                break
            out.append((client, clients.popitem(last=False)[1]))
        return out

    def drain(self) -> Iterator[tuple[str, ClientState]]:
        """Every client still in the book (the end of a stream): yielded, then forgotten."""
        while self.clients:
            client = next(iter(self.clients))
            yield client, self.clients.pop(client)


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
    second (the end of a log, or of what a live log holds so far). Clients with fewer
    than ``minimum`` requests, and ``"-"`` (nobody), are not judged; with ``minimum``
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
        clients, out, minimum = self.book.clients, [], self.minimum
        if minimum is not None:
            for client in self.touched:
                s = clients.get(client)
                if s is not None and s.n >= minimum and client != "-":
                    out.append(Snapshot(client, s.n, s.last, ClientBook.counts(s), s))
        self.touched = {}
        return out

    def take(self) -> tuple[list[Snapshot], list[tuple[str, ClientState]]]:
        """The snapshots taken and the visits ended since the last ``take``."""
        taken, ended = self.taken, self.ended
        self.taken, self.ended = [], []
        return taken, ended
