"""Client verdicts: a ban is a decision about a client, made from client evidence.

A line model says which requests look bad; whether to ban the client that
sent them is a second question. Browsers make bursts of similar requests,
and a site's own scripts can POST every second, so "N bad lines within X
minutes" bans people. Here each client's visit so far is summarised
(``ClientBook``): how much it asked and how fast, how regular its rhythm is,
what share of its requests failed, hit distinct paths, fetched static assets,
posted, carried payloads or probes, came without a referrer, and which class of
user agent it showed. A second small network (``ClientModel``) turns that
summary into a probability, and a ruling bans a client only when that
probability reaches a threshold **and** the client made at least
``min_requests`` requests (``ClientModel.bans``, the one place the rule is
written). ``JudgementPoints`` says when clients are judged: at the end of every
log-second in which they made requests; ``decision`` runs it for every command.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..network import Network
from .evidence import agent_class
from .features import RequestFacts
from .lines.record import LogRecord, client_of

__all__ = [
    "ClientBook", "ClientState", "ClientModel", "JudgementPoints", "Snapshot", "Ruling", "Verdict", "FEATURES",
    "AGENT_CLASSES", "IDLE",
]  # fmt: skip

AGENT_CLASSES = ("browser", "crawler", "monitor", "script", "attack-tool", "empty", "malformed")
FEATURES = (
    "log_requests", "log_duration", "log_rate_per_minute", "gap_cv", "same_second_share", "share_4xx",
    "share_5xx", "distinct_path_share", "static_share", "post_share", "head_share", "other_method_share",
    "flagged_share", "no_referrer_share", "malformed_share",
) + tuple(f"agent_{name}" for name in AGENT_CLASSES)  # fmt: skip

_KIND = {name: i for i, name in enumerate(AGENT_CLASSES)}
IDLE = 1800.0  # seconds of log time after which a client's next request starts a new visit


class ClientState:
    """One client's running evidence over a visit (what ``ClientBook.features`` summarises),
    and what the rulings on it said so far: the highest P(bad) (``peak``) and the first
    ruling that banned it (``ban``), written by the decision procedure."""

    __slots__ = ("n", "first", "last", "gaps", "gap2", "ngaps", "same", "e4", "e5", "static", "post", "head",
                 "other", "flagged", "noref", "malformed", "bad_lines", "paths", "agents", "kinds", "peak",
                 "ban")  # fmt: skip

    def __init__(self, now: float) -> None:
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


class ClientBook:
    """Running evidence per client over its visit so far, in bounded memory.

    ``add`` takes each line (in time order). A client idle for ``idle`` seconds
    of log time has finished its visit: ``finished(now)`` hands it out (so a
    caller can report on it) and forgets it, as it does with the least recently
    active clients when there are more than ``max_clients``. Clients are kept in
    order of activity, so that costs nothing while nobody is idle. At most
    ``max_paths`` distinct paths and 8 user agents are kept per client.
    """

    def __init__(self, idle: float = IDLE, max_paths: int = 1000, max_clients: int | None = None) -> None:
        self.idle, self.max_paths, self.max_clients = float(idle), max_paths, max_clients
        self.clients: OrderedDict[str, ClientState] = OrderedDict()  # least recently active first

    def __repr__(self) -> str:
        return f"ClientBook(idle={self.idle:g}s, clients={len(self.clients):,})"

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> str:
        """Add one line to its client's evidence; returns the client (``client_of``). A client
        idle for more than ``idle`` seconds of log time starts a new visit here, whether or
        not ``finished`` has forgotten it yet, so the evidence depends on the log alone."""
        client = client_of(record)
        now = record.time
        clients = self.clients
        s = clients.get(client)
        if s is None or now - s.last > self.idle:
            s = clients[client] = ClientState(now)
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
        clients.move_to_end(client)
        return client

    @staticmethod
    def counts(s: ClientState) -> tuple:
        """The raw counts ``summarise`` needs: what a judgement records (cheap, a tuple)."""
        return (s.n, s.last - s.first, s.gaps, s.gap2, s.ngaps, s.same, s.e4, s.e5, len(s.paths), s.static, s.post,
                s.head, s.other, s.flagged, s.noref, s.malformed, *s.kinds)  # fmt: skip

    @staticmethod
    def summarise(counts: Sequence[tuple] | np.ndarray) -> np.ndarray:
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
    counts: tuple
    state: ClientState


class Ruling(NamedTuple):
    """The client model's answer to one ``Snapshot`` (with its counts, to explain it:
    ``ClientBook.summarise([ruling.counts])`` is the summary it read)."""

    client: str
    request: int
    time: float
    probability: float
    ban: bool
    counts: tuple


class JudgementPoints:
    """When a client is judged: at the end of every log-second in which it made requests.

    Feed lines in time order with ``add``; when a line opens a new second (or
    goes back to an earlier one, a late line), the clients of the second that
    ended are judged: ``add`` returns their ``Snapshot``s, taken before this
    line is added, and visits idle by then end (``ended``). ``flush()`` closes the current second (the end of a log, or
    of what a live log holds so far). Clients with fewer than ``minimum``
    requests, and ``"-"`` (nobody), are not judged. The points depend only on
    the lines' time stamps and order, so a file replayed by ``classify``,
    ``evaluate`` or ``crossval`` is judged exactly where the live watcher
    judges it.
    """

    def __init__(self, book: ClientBook, minimum: int = 1) -> None:
        self.book, self.minimum = book, int(minimum)
        self.second: float | None = None
        self.touched: dict[str, None] = {}  # an ordered set: judged in order of first request
        self.ended: list[tuple[str, ClientState]] = []  # visits the book finished, for the caller to take

    def __repr__(self) -> str:
        return f"JudgementPoints(second={self.second}, clients waiting={len(self.touched)}, minimum={self.minimum})"

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> list[Snapshot]:
        """Add a line; returns the snapshots of the second it closed. In that order: the
        second that ended is judged, then the visits idle by now end (``ended``), then the
        line joins its client's evidence (a client back after idling starts a new visit)."""
        second = math.floor(record.time)
        out = []
        if second != self.second:
            out = self.flush()
            self.second = second
            self.ended += self.book.finished(record.time)
        self.touched[self.book.add(record, facts, bad_line)] = None
        return out

    def flush(self) -> list[Snapshot]:
        """Snapshots of the clients that made requests in the current second."""
        clients, out = self.book.clients, []
        for client in self.touched:
            s = clients.get(client)
            if s is not None and s.n >= self.minimum and client != "-":
                out.append(Snapshot(client, s.n, s.last, ClientBook.counts(s), s))
        self.touched = {}
        return out


@dataclass
class Verdict:
    """What was decided about one client."""

    client: str
    probability: float | None  # None: too few requests to judge
    requests: int
    bad_lines: int
    first_seen: float
    last_seen: float
    ban: bool
    reason: str
    ban_request: int | None = None  # the judgement that banned: the client's request number ...
    ban_time: float | None = None  # ... and the log time of its latest request then

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ClientModel:
    """A small network from a client's summary (``FEATURES``, standardised) to P(bad).

    Parameters
    ----------
    network : Network
        ``len(FEATURES)`` inputs, a softmax over (not bad, bad).
    mean, scale : ndarray of shape (len(FEATURES),)
        The standardisation fitted on the training clients.
    threshold : float
        Ban when P(bad) reaches this ...
    min_requests : int
        ... and the client made at least this many requests.
    """

    def __init__(self, network: Network, mean: np.ndarray, scale: np.ndarray, threshold: float = 0.5,
                 min_requests: int = 5) -> None:  # fmt: skip
        self.network, self.mean, self.scale = network, np.asarray(mean), np.asarray(scale)
        self.threshold, self.min_requests = float(threshold), int(min_requests)

    def __repr__(self) -> str:
        return f"ClientModel({self.network.layers!r}, threshold={self.threshold:g}, min_requests={self.min_requests})"

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 300, hidden: int = 16,
            threshold: float = 0.5, min_requests: int = 5) -> ClientModel:  # fmt: skip
        """Train on client summaries ``X`` (n_clients, len(FEATURES)) and labels ``y`` (1: bad)."""
        from ..optimizers import Adam

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != len(FEATURES):
            raise ValueError(f"X must have shape (n_clients, {len(FEATURES)}). Received: shape={X.shape}.")
        if len(np.unique(y)) < 2:
            raise ValueError(f"Client training needs bad and not-bad clients; the labels hold only {np.unique(y)}.")
        mean, scale = X.mean(axis=0), X.std(axis=0)
        # A floor on the scale: a share that is nearly always 0 in training (an attack-tool user
        # agent) would otherwise become a huge input and saturate the network in any direction.
        scale = np.maximum(scale, 0.25)
        counts = np.bincount(y, minlength=2).astype(float)
        weights = (len(y) / (2 * counts))[y]
        network = Network.from_sizes([len(FEATURES), hidden, 2], "tanh", "softmax", optimizer=Adam(0.01),
                                     l2=1e-3, seed=seed)  # fmt: skip
        network.fit((X - mean) / scale, y, epochs=epochs, batch_size=None, sample_weight=weights)
        return cls(network, mean, scale, threshold, min_requests)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """P(bad) for each row of client summaries."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return self.network.predict((X - self.mean) / self.scale)[:, 1]

    def bans(self, probability: float, requests: int) -> bool:
        """The ban rule, the one place it is written: P(bad) reaches ``threshold`` and the
        client made at least ``min_requests`` requests."""
        return probability >= self.threshold and requests >= self.min_requests

    def rulings(self, snapshots: Sequence[Snapshot]) -> list[Ruling]:
        """One ``Ruling`` per ``Snapshot``, every probability in one pass of the network."""
        if not snapshots:
            return []
        p = self.probability(ClientBook.summarise([s.counts for s in snapshots])).tolist()
        return [Ruling(s.client, s.request, s.time, q, s.client != "-" and self.bans(q, s.request), s.counts)
                for s, q in zip(snapshots, p, strict=True)]  # fmt: skip

    def verdicts(self, clients: Sequence[tuple[str, ClientState]]) -> list[Verdict]:
        """One ``Verdict`` per ``(client, state)`` from a ``ClientBook``, judged once on that
        state. Clients with fewer than ``min_requests`` requests cannot be banned, so their
        probability is not computed (``None``): most clients of a busy site come once or twice."""
        enough = [(c, s) for c, s in clients if s.n >= self.min_requests and c != "-"]
        p = self.probability(np.stack([ClientBook.features(s) for _, s in enough])).tolist() if enough else []
        probabilities = dict(zip((c for c, _ in enough), p, strict=True))
        out = []
        for client, s in clients:
            prob = probabilities.get(client)
            if client == "-":  # lines with neither a session nor an address: nobody to ban
                out.append(Verdict(client, None, s.n, s.bad_lines, s.first, s.last, False, "no client address"))
            elif prob is None:
                out.append(Verdict(client, None, s.n, s.bad_lines, s.first, s.last, False,
                                   f"only {s.n} request(s), fewer than {self.min_requests}"))  # fmt: skip
            else:
                out.append(Verdict(client, prob, s.n, s.bad_lines, s.first, s.last, self.bans(prob, s.n),
                                   f"P(bad)={prob:.2f} over {s.n} requests"))  # fmt: skip
        return out

    def contributions(self, x: np.ndarray | ClientState, top: int = 5) -> list[tuple[str, float, float]]:
        """What pushed a client's P(bad) up: ``(feature, value, change)`` for the ``top``
        features whose replacement by the training average lowers P(bad) most. ``x``: a
        client's summary (``ClientBook.summarise``) or its ``ClientState``."""
        x = ClientBook.features(x) if isinstance(x, ClientState) else np.asarray(x, dtype=np.float64)
        base = self.probability(x)[0]
        trials = np.repeat(x[None, :], len(FEATURES), axis=0)
        trials[np.arange(len(FEATURES)), np.arange(len(FEATURES))] = self.mean
        drops = base - self.probability(trials)
        order = np.argsort(-drops)[:top]
        return [(FEATURES[i], float(x[i]), float(drops[i])) for i in order if drops[i] > 0]

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_requests": self.min_requests, "features": list(FEATURES),
                "network": self.network.get_config()}  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        """Weights (the network's ``state_dict``) and standardisation, as named arrays for the
        model file: ``client.mean``, ``client.scale`` and ``client.`` + each parameter's name."""
        parameters = self.network.state_dict(include_optimizer=False)["parameters"]
        return {"client.mean": self.mean, "client.scale": self.scale,
                **{f"client.{name}": value for name, value in parameters.items()}}  # fmt: skip

    @classmethod
    def from_parts(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> ClientModel:
        """Rebuild from ``get_config()`` and ``arrays()`` as read back from a model file (also
        from files written before the client model was saved through ``state_dict``, whose
        arrays were called ``client_mean``, ``client_scale`` and ``client_layers.I.KEY``)."""
        from .. import io as model_io

        if list(config["features"]) != list(FEATURES):
            raise ValueError("the client model was trained on other client features; retrain it.")
        network = Network.from_config(config["network"], weights_follow=True)  # set just below
        prefix = "client_" if "client_mean" in arrays and "client.mean" not in arrays else "client."
        mean, scale = prefix + "mean", prefix + "scale"
        parameters = {name[len(prefix) :]: value for name, value in arrays.items()
                      if name.startswith(prefix + "layers.")}  # fmt: skip
        model_io.check_parameters("the client model", parameters, network.parameters.state_dict())
        network.load_state_dict({"parameters": parameters})
        return cls(network, arrays[mean], arrays[scale], config["threshold"], config["min_requests"])
