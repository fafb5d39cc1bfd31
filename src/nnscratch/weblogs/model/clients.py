"""The client model: a ban is a decision about a client, made from client evidence.

A line model says which requests look bad; whether to ban the client that sent
them is a second question. Browsers make bursts of similar requests, and a
site's own scripts can POST every second, so "N bad lines within X minutes"
bans people. A second small model (``ClientModel``) turns a client's summary
(``features.counts``) into a probability, and a ruling bans a client only when
that probability reaches a threshold **and** there is enough evidence to judge
(``min_evidence``: a request counts one, a request with unambiguous exploit
evidence counts ``EXPLOIT_WEIGHT``). ``ClientModel.bans`` is the one place the
rule is written.

A ban is a *sequential* decision: the watcher rules on a client at the end of
every log-second in which it made requests, and any one ruling can ban. So the
model learns from clients as they are judged (their evidence at judgement
points, not only at the end of a visit), and its threshold is chosen for a
target rate of good clients *ever* banned, by cross-fitting: the training
clients are dealt into ``members`` folds, one network is trained without each
fold, and the threshold is the smallest at which, in every training file, at
most ``target_rate`` of the good clients would have been banned at some
judgement by the network that never saw them. The model averages the
``members`` networks (an ensemble: seeds move its answers far less than one
network's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from ...network import Network
from ..features.counts import ClientBook, ClientState
from ..features.points import Snapshot
from ..features.summary import CLIENT_SETS, EXPLOIT_WEIGHT, FEATURES, Counts

__all__ = ["ClientModel", "Ruling", "Verdict", "evidence"]


def evidence(counts: Counts) -> int:
    """How much evidence a judgement had (``ClientState.evidence`` at the time of ``counts``)."""
    return counts.requests + (EXPLOIT_WEIGHT - 1) * counts.exploit


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
    probability: float | None  # None: too little evidence to judge
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
           min_evidence: int) -> Verdict:  # fmt: skip
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
            reason = f"only {state.n} request(s), evidence {state.evidence} below {min_evidence}"
        return cls(client, ban.probability if ban else peak, state.n, state.bad_lines, state.first, state.last,
                   ban is not None, reason, ban.request if ban else None, ban.time if ban else None)  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ClientModel:
    """An ensemble of small networks from a client's summary (``features``, standardised) to P(bad).

    Parameters
    ----------
    networks : list of Network
        Each has ``len(features)`` inputs and a softmax over (not bad, bad); P(bad) is their mean.
    mean, scale : ndarray of shape (len(features),)
        The standardisation fitted on the training clients.
    features : sequence of str
        The columns of ``FEATURES`` the networks read (``CLIENT_SETS``).
    threshold : float
        Ban when P(bad) reaches this ...
    min_evidence : int
        ... and the client's evidence (``ClientState.evidence``) reaches this.
    """

    def __init__(self, networks: Sequence[Network], mean: np.ndarray, scale: np.ndarray,
                 features: Sequence[str] = CLIENT_SETS["default"], threshold: float = 0.8,
                 min_evidence: int = 5) -> None:  # fmt: skip
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown client features {unknown}; known: {list(FEATURES)}.")
        self.networks, self.mean, self.scale = list(networks), np.asarray(mean), np.asarray(scale)
        self.features = tuple(features)
        self.columns = np.array([FEATURES.index(f) for f in self.features], dtype=np.int64)
        self.threshold, self.min_evidence = float(threshold), int(min_evidence)

    def __repr__(self) -> str:
        return (f"ClientModel({len(self.networks)} x {self.networks[0].layers!r}, threshold={self.threshold:.3g}, "
                f"min_evidence={self.min_evidence})")  # fmt: skip

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, groups: Sequence[str], *, files: Sequence[str] | None = None,
            settings: ClientSettings | None = None) -> ClientModel:  # fmt: skip
        """Train on rows of client summaries ``X`` (n_rows, len(FEATURES)) with labels ``y``
        (1: bad); ``groups[i]`` names row ``i``'s client (a client's rows are its judgements,
        weighted to count once in all) and ``files[i]`` its log (the threshold holds the
        false-ban rate in each). Rows below ``min_evidence`` teach but are never ruled on."""
        s = settings or ClientSettings()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != len(FEATURES) or len(y) != len(X) or len(groups) != len(X):
            raise ValueError(f"X must have shape (n_rows, {len(FEATURES)}), with one label and group per row. "
                             f"Received: X {X.shape}, {len(y)} labels, {len(groups)} groups.")  # fmt: skip
        if len(np.unique(y)) < 2:
            raise ValueError(f"Client training needs bad and not-bad clients; the labels hold only {np.unique(y)}.")
        columns = [FEATURES.index(f) for f in s.features]
        Xs = X[:, columns]
        mean, scale = Xs.mean(axis=0), np.maximum(Xs.std(axis=0), 0.25)
        # The scale has a floor: a share that is nearly always 0 in training (an attack-tool
        # user agent) would otherwise become a huge input and saturate the networks.
        Z = (Xs - mean) / scale
        names, client = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        weights = _client_weights(client, y)
        fold = np.random.default_rng(s.seed).permutation(len(names))[client] % s.members
        networks, held_out = [], np.zeros(len(y))
        for k in range(s.members):
            inside = fold != k if s.members > 1 else np.ones(len(y), dtype=bool)
            network = _client_network(len(columns), s.hidden, s.seed + k)
            network.fit(Z[inside], y[inside], epochs=s.epochs, batch_size=None, sample_weight=weights[inside])
            networks.append(network)
            if not inside.all():
                held_out[~inside] = _p_bad(network, Z[~inside])
        model = cls(networks, mean, scale, s.features, s.floor, s.min_evidence)
        if s.members > 1:
            judged = s.judged if s.judged is not None else np.ones(len(y), dtype=bool)
            model.threshold = calibrate(held_out, y, client, judged, files, s.target_rate, s.floor)
        return model

    def probability(self, X: np.ndarray) -> np.ndarray:
        """P(bad) for each row of client summaries (all of ``FEATURES``): the networks' mean."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))[:, self.columns]
        Z = (X - self.mean) / self.scale
        return np.mean([_p_bad(network, Z) for network in self.networks], axis=0)

    def bans(self, probability: float, evidence: int) -> bool:
        """The ban rule, the one place it is written: P(bad) reaches ``threshold`` and the
        client's evidence reaches ``min_evidence``."""
        return probability >= self.threshold and evidence >= self.min_evidence

    def rulings(self, snapshots: Sequence[Snapshot]) -> list[Ruling]:
        """One ``Ruling`` per ``Snapshot``, every probability in one pass of the networks."""
        if not snapshots:
            return []
        p = self.probability(ClientBook.summarise([s.counts for s in snapshots])).tolist()
        return [Ruling(s.client, s.request, s.time, q, s.client != "-" and self.bans(q, evidence(s.counts)), s.counts)
                for s, q in zip(snapshots, p, strict=True)]  # fmt: skip

    def verdicts(self, clients: Sequence[tuple[str, ClientState]]) -> list[Verdict]:
        """One ``Verdict`` per ``(client, state)`` from a ``ClientBook``, ruled once on that
        state (``rulings``). Clients with too little evidence cannot be banned, so they are
        not ruled on (probability ``None``): most clients of a busy site come once or twice."""
        judged = [Snapshot(c, st.n, st.last, ClientBook.counts(st), st) for c, st in clients
                  if st.evidence >= self.min_evidence and c != "-"]  # fmt: skip
        rulings = {r.client: r for r in self.rulings(judged)}
        out = []
        for client, st in clients:
            ruling = rulings.get(client)
            ban = ruling if ruling is not None and ruling.ban else None
            out.append(Verdict.of(client, st, ban, ruling.probability if ruling else None, self.min_evidence))
        return out

    def contributions(self, x: np.ndarray | ClientState, top: int = 5) -> list[tuple[str, float, float]]:
        """What pushed a client's P(bad) up: ``(feature, value, change)`` for the ``top``
        features whose replacement by the training average lowers P(bad) most. ``x``: a
        client's summary (``ClientBook.summarise``) or its ``ClientState``."""
        x = ClientBook.features(x) if isinstance(x, ClientState) else np.asarray(x, dtype=np.float64)
        base = self.probability(x)[0]
        trials = np.repeat(x[None, :], len(self.columns), axis=0)
        trials[np.arange(len(self.columns)), self.columns] = self.mean
        drops = base - self.probability(trials)
        order = np.argsort(-drops)[:top]
        return [(self.features[i], float(x[self.columns[i]]), float(drops[i])) for i in order if drops[i] > 0]

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_evidence": self.min_evidence, "features": list(self.features),
                "networks": [network.get_config() for network in self.networks]}  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        """Weights (each network's ``state_dict``) and standardisation, as named arrays for the
        model file: ``client.mean``, ``client.scale`` and ``client.K.`` + each parameter's name."""
        out = {"client.mean": self.mean, "client.scale": self.scale}
        for k, network in enumerate(self.networks):
            parameters = network.state_dict(include_optimizer=False)["parameters"]
            out.update({f"client.{k}.{name}": value for name, value in parameters.items()})
        return out

    @classmethod
    def from_parts(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> ClientModel:
        """Rebuild from ``get_config()`` and ``arrays()`` as read back from a model file."""
        from ... import io as model_io

        networks = []
        for k, network_config in enumerate(config["networks"]):
            network = Network.from_config(network_config, weights_follow=True)  # set just below
            prefix = f"client.{k}."
            parameters = {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}
            model_io.check_parameters(f"client network {k}", parameters, network.parameters.state_dict())
            network.load_state_dict({"parameters": parameters})
            networks.append(network)
        return cls(networks, arrays["client.mean"], arrays["client.scale"], config["features"], config["threshold"],
                   config["min_evidence"])  # fmt: skip


@dataclass
class ClientSettings:
    """How ``ClientModel.fit`` trains: ``members`` networks (cross-fitted; 1: one network on
    everything, no calibration) of ``hidden`` tanh units, ``epochs`` full-batch Adam steps,
    from ``seed``; the ``features`` read; the ban threshold chosen for at most ``target_rate``
    of the good clients of each file ever banned, never below ``floor``; ``min_evidence``;
    ``judged``: which rows the ban rule would rule on (default all)."""

    features: tuple[str, ...] = CLIENT_SETS["default"]
    members: int = 5
    hidden: int = 16
    epochs: int = 300
    seed: int = 0
    target_rate: float = 0.01
    floor: float = 0.5
    min_evidence: int = 5
    judged: np.ndarray | None = None


def calibrate(p: np.ndarray, y: np.ndarray, client: np.ndarray, judged: np.ndarray, files: Sequence[str] | None,
              target_rate: float, floor: float) -> float:  # fmt: skip
    """The smallest threshold at which, in every file, at most ``target_rate`` of the good
    clients have a judged row with held-out P(bad) ``p`` at or above it (never below ``floor``)."""
    files = np.asarray(files if files is not None else [""] * len(p), dtype=object).astype(str)
    peaks: dict[tuple[str, int], float] = {}
    for i in np.flatnonzero((y == 0) & judged):
        key = (files[i], int(client[i]))
        peaks[key] = max(peaks.get(key, 0.0), float(p[i]))
    threshold = floor
    for name in sorted({f for f, _ in peaks}):
        mine = np.sort([q for (f, _), q in peaks.items() if f == name])[::-1]
        allowed = int(np.floor(target_rate * len(mine)))
        if allowed < len(mine):
            threshold = max(threshold, float(np.nextafter(mine[allowed], 2.0)))
    return min(threshold, 1.0)


def _p_bad(network: Network, Z: np.ndarray) -> np.ndarray:
    """One network's P(bad) for standardised rows ``Z``: the one place a client network runs."""
    return network.predict(Z)[:, 1]


def _client_weights(client: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row weights: each client counts once in all, and each class as much as the other."""
    per_client = np.bincount(client).astype(float)
    w = 1.0 / per_client[client]
    for label in (0, 1):
        mask = y == label
        w[mask] *= len(np.unique(client)) / (2 * w[mask].sum())
    return w


def _client_network(n_in: int, hidden: int, seed: int) -> Network:
    from ...optimizers import Adam

    return Network.from_sizes([n_in, hidden, 2], "tanh", "softmax", optimizer=Adam(0.01), l2=1e-3, seed=seed)
