"""Client verdicts: a ban is a decision about a client, made from client evidence.

A line model says which requests look bad; whether to ban the client that
sent them is a second question. Browsers make bursts of similar requests,
and a site's own scripts can POST every second, so "N bad lines within X
minutes" bans people. Here each client's whole visit is summarised
(``ClientBook``): how much it asked and how fast, how regular its rhythm is,
what share of its requests failed, hit distinct paths, fetched static assets,
posted, carried payloads or probes, came without a referrer, and which class of
user agent it showed. A second small network (``ClientModel``) turns that
summary into a probability, and ``ClientModel.verdict`` bans a client only when
that probability reaches a threshold **and** the client made at least
``min_requests`` requests. The live watcher and ``classify`` both call it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..network import Network
from .evidence import agent_class
from .features import RequestFacts
from .parse import LogRecord, client_of

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

IDLE = 1800.0  # seconds of log time after which a client's next request starts a new visit


class ClientState:
    """One client's running evidence (what ``ClientBook.features`` summarises)."""

    __slots__ = ("n", "first", "last", "gaps", "gap2", "ngaps", "same", "e4", "e5", "static", "post", "head",
                 "other", "flagged", "noref", "malformed", "bad_lines", "paths", "agents")  # fmt: skip

    def __init__(self, now: float) -> None:
        self.n = self.ngaps = self.same = self.e4 = self.e5 = self.static = self.post = self.head = 0
        self.other = self.flagged = self.noref = self.malformed = self.bad_lines = 0
        self.first = self.last = now
        self.gaps = self.gap2 = 0.0
        self.paths: set[str] = set()
        self.agents: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ClientState(requests={self.n}, first={self.first:.0f}, last={self.last:.0f})"


class ClientBook:
    """Running evidence per client over its whole visit, in bounded memory.

    ``add`` takes each line (in time order). A client idle for ``idle`` seconds
    of log time is finished: ``finished(now)`` hands it out (so a caller can
    decide on it) and forgets it, as it does with the clients seen first when
    there are more than ``max_clients``. At most ``max_paths`` distinct paths and
    8 user agents are kept per client.
    """

    def __init__(self, idle: float = IDLE, max_paths: int = 1000, max_clients: int | None = None) -> None:
        self.idle, self.max_paths, self.max_clients = float(idle), max_paths, max_clients
        self.clients: dict[str, ClientState] = {}

    def __repr__(self) -> str:
        return f"ClientBook(idle={self.idle:g}s, clients={len(self.clients):,})"

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> ClientState:
        """Add one line to its client's evidence; returns the client's state. A client idle
        for more than ``idle`` seconds of log time starts a new visit here, whether or not
        ``finished`` has forgotten it yet, so the evidence depends on the log alone."""
        client = client_of(record)
        now = record.time
        s = self.clients.get(client)
        if s is None or now - s.last > self.idle:
            s = self.clients[client] = ClientState(now)
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
        agent = record.agent
        if agent in agents:
            agents[agent] += 1
        elif len(agents) < 8:
            agents[agent] = 1
        return s

    @staticmethod
    def features(s: ClientState) -> np.ndarray:
        """The client's summary as a vector, in the order of ``FEATURES``."""
        n, ngaps = s.n, s.ngaps
        duration = s.last - s.first
        mean = s.gaps / ngaps if ngaps else 0.0
        cv = math.sqrt(max(s.gap2 / ngaps - mean * mean, 0.0)) / mean if ngaps >= 2 and mean > 0 else 0.0
        agents: Counter = Counter()
        for agent, count in s.agents.items():
            agents[agent_class(agent)] += count
        total_agents = sum(agents.values()) or 1
        values = [
            math.log1p(n), math.log1p(duration), math.log1p(n / (duration + 60.0) * 60.0), min(cv, 10.0),
            s.same / ngaps if ngaps else 0.0, s.e4 / n, s.e5 / n, len(s.paths) / n, s.static / n, s.post / n,
            s.head / n, s.other / n, s.flagged / n, s.noref / n, s.malformed / n,
        ] + [agents[name] / total_agents for name in AGENT_CLASSES]  # fmt: skip
        return np.array(values, dtype=np.float64)

    def finished(self, now: float) -> Iterator[tuple[str, ClientState]]:
        """Clients idle for ``idle`` seconds at time ``now``: yielded, then forgotten."""
        limit = now - self.idle
        done = [c for c, s in self.clients.items() if s.last < limit]
        if self.max_clients is not None and len(self.clients) - len(done) > self.max_clients:
            # Over the memory budget: the clients seen first leave first (insertion order).
            excess = len(self.clients) - len(done) - self.max_clients
            gone = set(done)
            done += [c for c in self.clients if c not in gone][:excess]
        for client in done:
            yield client, self.clients.pop(client)

    def drain(self) -> Iterator[tuple[str, ClientState]]:
        """Every client still in the book (the end of a stream): yielded, then forgotten."""
        while self.clients:
            client = next(iter(self.clients))
            yield client, self.clients.pop(client)


class Snapshot(NamedTuple):
    """A client's evidence at one judgement: its request count in this visit, the log time
    of its latest request, and its summary (``ClientBook.features``)."""

    client: str
    request: int
    time: float
    features: np.ndarray


class Ruling(NamedTuple):
    """The client model's answer to one ``Snapshot`` (whose features it keeps, to explain it)."""

    client: str
    request: int
    time: float
    probability: float
    ban: bool
    features: np.ndarray


class JudgementPoints:
    """When a client is judged: at the end of every log-second in which it made requests.

    Feed lines in time order with ``add``; when a line opens a new second (or
    goes back to an earlier one, a late line), the clients of the second that
    ended are judged: ``add`` returns their ``Snapshot``s, taken before this
    line is added. ``flush()`` closes the current second (the end of a log, or
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

    def __repr__(self) -> str:
        return f"JudgementPoints(second={self.second}, clients waiting={len(self.touched)}, minimum={self.minimum})"

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> list[Snapshot]:
        second = math.floor(record.time)
        out = self.flush() if second != self.second else []
        self.second = second
        self.book.add(record, facts, bad_line)
        self.touched[client_of(record)] = None
        return out

    def flush(self) -> list[Snapshot]:
        """Snapshots of the clients that made requests in the current second."""
        clients, out = self.book.clients, []
        for client in self.touched:
            s = clients.get(client)
            if s is not None and s.n >= self.minimum and client != "-":
                out.append(Snapshot(client, s.n, s.last, ClientBook.features(s)))
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
        p = self.probability(np.stack([s.features for s in snapshots])).tolist()
        return [Ruling(s.client, s.request, s.time, q, s.client != "-" and self.bans(q, s.request), s.features)
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
        client's summary (a ``Snapshot``'s features) or its ``ClientState``."""
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
        """Weights and standardisation, as named arrays for the model file."""
        out = {"client_mean": self.mean, "client_scale": self.scale}
        for i, layer in enumerate(self.network.layers):
            out.update({f"client_layers.{i}.{key}": value for key, value in layer.params.items()})
        return out

    @classmethod
    def from_parts(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> ClientModel:
        """Rebuild from ``get_config()`` and ``arrays()`` as read back from a model file."""
        if list(config["features"]) != list(FEATURES):
            raise ValueError("the client model was trained on other client features; retrain it.")
        network = Network.from_config(config["network"], weights_follow=True)  # set just below
        for i, layer in enumerate(network.layers):
            for key, target in layer.params.items():
                target[...] = arrays[f"client_layers.{i}.{key}"]
        return cls(network, arrays["client_mean"], arrays["client_scale"], config["threshold"],
                   config["min_requests"])  # fmt: skip
