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
from typing import Any

import numpy as np

from ..network import Network
from .evidence import agent_class
from .features import RequestFacts, client_of
from .parse import LogRecord

__all__ = ["ClientBook", "ClientModel", "Verdict", "FEATURES", "AGENT_CLASSES"]

AGENT_CLASSES = ("browser", "crawler", "monitor", "script", "attack-tool", "empty", "malformed")
FEATURES = (
    "log_requests", "log_duration", "log_rate_per_minute", "gap_cv", "same_second_share", "share_4xx",
    "share_5xx", "distinct_path_share", "static_share", "post_share", "head_share", "other_method_share",
    "flagged_share", "no_referrer_share", "malformed_share",
) + tuple(f"agent_{name}" for name in AGENT_CLASSES)  # fmt: skip


class ClientBook:
    """Running evidence per client over its whole visit, in bounded memory.

    ``add`` takes each line (in time order). A client idle for ``idle`` seconds
    of log time is finished: ``finished(now)`` hands it out (so a caller can
    decide on it) and forgets it. At most ``max_paths`` distinct paths are kept per client.
    """

    def __init__(self, idle: float = 1800.0, max_paths: int = 1000) -> None:
        self.idle, self.max_paths = float(idle), max_paths
        self.clients: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"ClientBook(idle={self.idle:g}s, clients={len(self.clients):,})"

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, record: LogRecord, facts: RequestFacts, bad_line: bool = False) -> None:
        client = client_of(record)
        s = self.clients.get(client)
        now = record.time
        if s is None:
            s = self.clients[client] = {"n": 0, "first": now, "last": now, "gaps": 0.0, "gap2": 0.0, "ngaps": 0,
                                        "same": 0, "e4": 0, "e5": 0, "static": 0, "post": 0, "head": 0,
                                        "other": 0, "flagged": 0, "noref": 0, "malformed": 0, "bad_lines": 0,
                                        "paths": set(), "agents": Counter()}  # fmt: skip
        else:
            gap = max(now - s["last"], 0.0)
            s["gaps"] += gap
            s["gap2"] += gap * gap
            s["ngaps"] += 1
            s["same"] += gap == 0.0
            s["last"] = max(s["last"], now)
        s["n"] += 1
        status, method = record.status, record.method.upper()
        s["e4"] += 400 <= status < 500
        s["e5"] += status >= 500
        s["static"] += facts.static
        s["post"] += method == "POST"
        s["head"] += method == "HEAD"
        s["other"] += method not in ("GET", "POST", "HEAD")
        s["flagged"] += facts.flagged
        s["noref"] += record.referrer in ("", "-")
        s["malformed"] += not record.request_ok
        s["bad_lines"] += bool(bad_line)
        if len(s["paths"]) < self.max_paths:
            s["paths"].add(facts.path)
        if len(s["agents"]) < 8 or record.agent in s["agents"]:
            s["agents"][record.agent] += 1

    @staticmethod
    def features(s: dict[str, Any]) -> np.ndarray:
        """The client's summary as a vector, in the order of ``FEATURES``."""
        n = s["n"]
        duration = s["last"] - s["first"]
        ngaps = s["ngaps"]
        mean = s["gaps"] / ngaps if ngaps else 0.0
        cv = math.sqrt(max(s["gap2"] / ngaps - mean * mean, 0.0)) / mean if ngaps >= 2 and mean > 0 else 0.0
        agents = Counter()
        for agent, count in s["agents"].items():
            agents[agent_class(agent)] += count
        total_agents = sum(agents.values()) or 1
        values = [
            math.log1p(n), math.log1p(duration), math.log1p(n / (duration + 60.0) * 60.0), min(cv, 10.0),
            s["same"] / ngaps if ngaps else 0.0, s["e4"] / n, s["e5"] / n, len(s["paths"]) / n, s["static"] / n,
            s["post"] / n, s["head"] / n, s["other"] / n, s["flagged"] / n, s["noref"] / n, s["malformed"] / n,
        ] + [agents[name] / total_agents for name in AGENT_CLASSES]  # fmt: skip
        return np.array(values, dtype=np.float64)

    def finished(self, now: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """Clients idle for ``idle`` seconds at time ``now``: yielded, then forgotten."""
        done = [c for c, s in self.clients.items() if s["last"] < now - self.idle]
        for client in done:
            yield client, self.clients.pop(client)

    def drain(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every client still in the book (the end of a stream): yielded, then forgotten."""
        while self.clients:
            client = next(iter(self.clients))
            yield client, self.clients.pop(client)


@dataclass
class Verdict:
    """What was decided about one client."""

    client: str
    probability: float
    requests: int
    bad_lines: int
    first_seen: float
    last_seen: float
    ban: bool
    reason: str

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
        scale = np.where(scale > 1e-9, scale, 1.0)
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

    def verdicts(self, clients: Sequence[tuple[str, dict[str, Any]]]) -> list[Verdict]:
        """One ``Verdict`` per ``(client, state)`` from a ``ClientBook``."""
        if not clients:
            return []
        p = self.probability(np.stack([ClientBook.features(s) for _, s in clients]))
        out = []
        for (client, s), prob in zip(clients, p.tolist(), strict=True):
            enough = s["n"] >= self.min_requests
            ban = enough and prob >= self.threshold
            reason = (f"P(bad)={prob:.2f} over {s['n']} requests" if enough
                      else f"only {s['n']} request(s), fewer than {self.min_requests}")  # fmt: skip
            out.append(Verdict(client, prob, s["n"], s["bad_lines"], s["first"], s["last"], ban, reason))
        return out

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
        network = Network.from_config(config["network"])
        for i, layer in enumerate(network.layers):
            for key, target in layer.params.items():
                target[...] = arrays[f"client_layers.{i}.{key}"]
        return cls(network, arrays["client_mean"], arrays["client_scale"], config["threshold"],
                   config["min_requests"])  # fmt: skip
