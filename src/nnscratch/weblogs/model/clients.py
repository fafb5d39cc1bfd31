"""The client model: a ban is a decision about a client, made from client evidence.

A line model says which requests look bad; whether to ban the client that sent
them is a second question. Browsers make bursts of similar requests, and a
site's own scripts can POST every second, so "N bad lines within X minutes"
bans people. A second small network (``ClientModel``) turns a client's summary
(``features.counts``) into a probability, and a ruling bans a client only when
that probability reaches a threshold **and** the client made at least
``min_requests`` requests (``ClientModel.bans``, the one place the rule is
written).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from ...network import Network
from ..features.counts import FEATURES, ClientBook, ClientState, Counts, Snapshot

__all__ = ["ClientModel", "Ruling", "Verdict"]


class Ruling(NamedTuple):
    """The client model's answer to one ``Snapshot`` (with its counts, to explain it:
    ``ClientBook.summarise([ruling.counts])`` is the summary it read)."""

    client: str
    request: int
    time: float
    probability: float
    ban: bool
    counts: Counts


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

    @classmethod
    def of(cls, client: str, state: ClientState, ban: Ruling | None, peak: float | None,
           min_requests: int) -> Verdict:  # fmt: skip
        """The verdict on a client's evidence ``state``, given the first ruling that banned it
        (None: none did) and the highest P(bad) of its rulings (None: it was never judged).
        The one place a verdict is worded."""
        if client == "-":
            reason = "no client address"
        elif ban is not None:
            when = datetime.fromtimestamp(ban.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            reason = f"P(bad)={ban.probability:.2f} at request {ban.request} ({when}); {state.n} in all"
        elif peak is not None:
            reason = f"P(bad) at most {peak:.2f} over {state.n} requests"
        else:
            reason = f"only {state.n} request(s), fewer than {min_requests}"
        return cls(client, ban.probability if ban else peak, state.n, state.bad_lines, state.first, state.last,
                   ban is not None, reason, ban.request if ban else None, ban.time if ban else None)  # fmt: skip

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
        from ...optimizers import Adam

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
        """One ``Verdict`` per ``(client, state)`` from a ``ClientBook``, ruled once on that
        state (``rulings``). Clients with fewer than ``min_requests`` requests cannot be banned,
        so they are not ruled on (probability ``None``): most clients of a busy site come once
        or twice."""
        judged = [Snapshot(c, st.n, st.last, ClientBook.counts(st), st) for c, st in clients
                  if st.n >= self.min_requests and c != "-"]  # fmt: skip
        rulings = {r.client: r for r in self.rulings(judged)}
        out = []
        for client, st in clients:
            ruling = rulings.get(client)
            ban = ruling if ruling is not None and ruling.ban else None
            out.append(Verdict.of(client, st, ban, ruling.probability if ruling else None, self.min_requests))
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
        from ... import io as model_io

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
