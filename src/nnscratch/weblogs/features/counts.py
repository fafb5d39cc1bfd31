"""Per-client counts: each client's evidence over its visit.

``ClientBook`` keeps every client's running tally (``ClientState``, named
fields, bounded memory): how much it asked and how fast, how regular its rhythm
is, what share of its requests failed, hit distinct paths, fetched static
assets, posted, carried payloads, probes or exploits, came without a referrer,
how it read pages (think time between page views, links followed, depth and
width), and which class of user agent it showed. ``ClientBook.summarise``
(``summary.summarise``) turns the counts into the client model's inputs
(``FEATURES``); ``points.JudgementPoints`` says when clients are judged.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..evidence.request import agent_class, referrer_parts
from ..lines.record import LogRecord, client_of
from .summary import AGENT_CLASSES, EXPLOIT_WEIGHT, Counts, summarise

if TYPE_CHECKING:
    from ..model.clients import Ruling

__all__ = ["RequestFacts", "ClientState", "ClientBook", "SitePace", "Window", "WindowEntry", "IDLE", "MAX_CLIENTS"]

_KIND = {name: i for i, name in enumerate(AGENT_CLASSES)}


class RequestFacts(NamedTuple):
    """What the tally needs to know of a request, computed once per distinct request."""

    path: str
    static: bool
    flagged: bool  # carries payload or probe evidence
    exploit: bool = False  # unambiguous: code execution, system files, secrets, exploit endpoints
    image: bool = False  # a static asset that is an image


_make_counts = Counts._make
IDLE = 1800.0  # seconds of log time after which a client's next request starts a new visit
MAX_CLIENTS = 100_000  # clients a stream keeps in memory (classify, watch); the least recently active go first


class SitePace:
    """The site's think times, from the log alone: a histogram (log-spaced bins) of the gaps
    between page views of every client so far. ``rank(gap)``: the share of those gaps shorter
    than ``gap`` (half of its own bin counted), 0.5 while the site has none."""

    BINS = 48
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * self.BINS
        self.total = 0

    def __repr__(self) -> str:
        return f"SitePace(gaps={self.total:,})"

    @classmethod
    def bin(cls, gap: float) -> int:
        return min(int(4.0 * math.log2(1.0 + gap)), cls.BINS - 1)

    def add(self, gap: float) -> None:
        self.counts[self.bin(gap)] += 1
        self.total += 1

    def rank(self, gap: float) -> float:
        if not self.total:
            return 0.5
        b = self.bin(gap)
        return (sum(self.counts[:b]) + 0.5 * self.counts[b]) / self.total

    def to_json(self) -> list[int]:
        """The histogram, for a state file (``load_json`` takes it back)."""
        return list(self.counts)

    def load_json(self, counts: list[int]) -> None:
        """Take back a histogram ``to_json`` wrote."""
        if len(counts) != self.BINS:
            raise ValueError(f"a site pace has {self.BINS} bins. Received: {len(counts)}.")
        self.counts, self.total = [int(c) for c in counts], sum(int(c) for c in counts)


class ClientState:
    """One client's running evidence over a visit (what ``ClientBook.features`` summarises),
    and what the rulings on it said so far: the highest P(bad) (``peak``) and the first
    ruling that banned it (``ban``), written by the decision procedure."""

    __slots__ = ("client", "n", "first", "last", "gaps", "gap2", "ngaps", "same", "e4", "e5", "static", "post",
                 "head", "other", "flagged", "noref", "malformed", "bad_lines", "paths", "agents", "kinds", "peak",
                 "ban", "window", "pages", "last_page", "pgaps", "pgap2", "npgaps", "pageref", "linked", "images",
                 "bytes", "exploit", "width", "depth", "site", "seq")  # fmt: skip
    # What ``to_json`` writes as it is: numbers, and the lists and dicts of JSON.
    _PLAIN = ("client", "n", "first", "last", "gaps", "gap2", "ngaps", "same", "e4", "e5", "static", "post", "head",
              "other", "flagged", "noref", "malformed", "bad_lines", "agents", "kinds", "peak", "pages", "last_page",
              "pgaps", "pgap2", "npgaps", "pageref", "linked", "images", "bytes", "exploit", "width", "depth",
              "seq")  # fmt: skip

    def __init__(self, now: float, client: str = "", site: SitePace | None = None) -> None:
        self.client = client
        self.window: Window | None = None  # the last requests, when the book keeps windows
        self.n = self.ngaps = self.same = self.e4 = self.e5 = self.static = self.post = self.head = 0
        self.other = self.flagged = self.noref = self.malformed = self.bad_lines = 0
        self.pages = self.npgaps = self.pageref = self.linked = self.images = self.bytes = self.exploit = 0
        self.width = self.depth = 0
        self.first = self.last = now
        self.gaps = self.gap2 = self.pgaps = self.pgap2 = 0.0
        self.last_page: float | None = None
        self.site = site  # the book's SitePace: where the client's think time stands
        self.paths: set[str] = set()
        self.agents: dict[str, int] = {}  # up to 8 user agents -> their class (an index into AGENT_CLASSES)
        self.kinds = [0] * len(AGENT_CLASSES)  # requests by agent class, of those agents
        self.peak: float | None = None
        self.ban: Ruling | None = None
        self.seq = 0  # the book's line count at this client's latest request: the order of activity

    def __repr__(self) -> str:
        return f"ClientState(requests={self.n}, first={self.first:.0f}, last={self.last:.0f})"

    def to_json(self) -> dict:
        """The whole state as JSON data, exactly (floats round-trip), for a state file: what a
        restart must not forget. ``from_json`` reads it back."""
        data = {name: getattr(self, name) for name in self._PLAIN}
        data["peak"] = None if self.peak is None else float(self.peak)
        data["paths"] = sorted(self.paths)
        data["window"] = None if self.window is None else self.window.to_json()
        ban = self.ban
        data["ban"] = None if ban is None else [ban.client, int(ban.request), float(ban.time), float(ban.probability),
                                                bool(ban.ban), [float(v) for v in ban.counts]]  # fmt: skip
        return data

    @classmethod
    def from_json(cls, data: dict, site: SitePace | None, ruling: Callable[[list], Ruling]) -> ClientState:
        """A state ``to_json`` wrote, in a book whose site pace is ``site``; ``ruling`` makes the
        banning ruling back from its list."""
        s = cls(data["first"], data["client"], site)
        for name in cls._PLAIN:
            setattr(s, name, data[name])
        s.paths = set(data["paths"])
        s.window = None if data["window"] is None else Window.from_json(data["window"])
        s.ban = None if data["ban"] is None else ruling(data["ban"])
        return s

    @property
    def evidence(self) -> int:
        """How much there is to judge: one per request, ``EXPLOIT_WEIGHT`` per exploit request."""
        return self.n + (EXPLOIT_WEIGHT - 1) * self.exploit


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

    _SUMS = ("e4", "e5", "static", "post", "head", "flagged", "noref", "zero", "gaps", "gap2")

    def to_json(self) -> dict:
        """The entries and the running sums as they are (the sums carry the float residue of
        what left: recomputing them would not be exact)."""
        return {"entries": [list(e) for e in self.entries], "paths": dict(self.paths),
                **{name: getattr(self, name) for name in self._SUMS}}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> Window:
        window = cls()
        window.entries.extend(_make_entry(e) for e in data["entries"])
        window.paths.update(data["paths"])
        for name in cls._SUMS:
            setattr(window, name, data[name])
        return window

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
        self.site = SitePace()
        self.added = 0  # lines added so far: each state's ``seq`` is its place in the order of activity

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
            s = clients[client] = ClientState(now, client, self.site)
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
            s.images += facts.image
        elif method == "GET":
            self._page_view(s, record, facts)
        if facts.flagged:
            s.flagged += 1
            s.exploit += facts.exploit
        referrer = record.referrer
        if referrer in ("", "-"):
            s.noref += 1
        elif referrer_parts(referrer)[2] in s.paths:
            s.linked += 1
        if not record.request_ok:
            s.malformed += 1
        s.bad_lines += bad_line
        s.bytes += record.size
        if len(s.paths) < self.max_paths:
            s.paths.add(facts.path)
        self._agent(s, record.agent)
        if self.window is not None:
            self._push_window(s, record, facts)
        clients.move_to_end(client)
        s.seq = self.added = self.added + 1
        return s

    def restore(self, states: Iterable[ClientState], added: int) -> None:
        """Take back clients a state file kept (``ClientState.from_json``), after a restart:
        they join the book in their order of activity, ``added`` lines counted so far."""
        for s in sorted(states, key=lambda s: s.seq):
            self.clients[s.client] = s
            self.clients.move_to_end(s.client)
        self.added = max(self.added, added)

    @staticmethod
    def _agent(s: ClientState, agent: str) -> None:
        """Count the request under its user agent's class (of the client's first 8 agents)."""
        kind = s.agents.get(agent)
        if kind is None and len(s.agents) < 8:
            kind = s.agents[agent] = _KIND[agent_class(agent)]
        if kind is not None:
            s.kinds[kind] += 1

    def _page_view(self, s: ClientState, record: LogRecord, facts: RequestFacts) -> None:
        """A GET of anything but a static asset: a page the client reads."""
        s.pages += 1
        if s.last_page is not None:
            gap = record.time - s.last_page if record.time > s.last_page else 0.0
            s.pgaps += gap
            s.pgap2 += gap * gap
            s.npgaps += 1
            self.site.add(gap)
        s.last_page = record.time
        if record.referrer not in ("", "-"):
            s.pageref += 1
        if facts.path not in s.paths:
            s.width += 1
        depth = facts.path.count("/")
        if depth > s.depth:
            s.depth = depth

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
                             s.static, s.post, s.head, s.other, s.flagged, s.noref, s.malformed, s.pages, s.pgaps,
                             s.pgap2, s.npgaps, s.pageref, s.linked, s.images, s.bytes, s.exploit, s.width, s.depth,
                             s.site.rank(s.pgaps / s.npgaps) if s.npgaps and s.site is not None else 0.5,
                             *s.kinds))  # fmt: skip

    summarise = staticmethod(summarise)

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
