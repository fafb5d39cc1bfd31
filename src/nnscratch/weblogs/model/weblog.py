"""Training and evaluating a bot detector on access logs.

Two networks, two questions. The **line model** (one sigmoid hidden layer,
twice the input size by default, capped; a softmax output) says which requests
look bad, from request shape, evidence and context tokens. The **client model**
(``clients.ClientModel``) says which clients to ban, from each client's summary.

``WebLogModel.train`` splits **by client** (IP, or session id where the log
has one) so that no client's lines fall on both sides, trains several line
networks in parallel through ``nnscratch.selection`` and keeps the one with the
lowest validation loss, then fits the client model on the training clients.
``prepare`` computes what does not depend on the fit (tokens, client
summaries) once, so cross-validation (``crossval``) reuses it across folds.
The model file holds both networks, the vocabulary, the optional SVD
projection and the settings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ... import io as model_io
from ...io import load_bundle
from ...network import Network
from ..features.counts import ClientBook, ClientState
from ..features.featurizer import Featurizer
from ..features.points import Snapshot
from ..features.summary import CLIENT_SETS
from ..labels.data import LabelledLines, split_by_client
from ..labels.rules import CLASSES
from ..lines.order import SLACK, in_time_order
from ..lines.record import LogRecord, client_of
from .clients import ClientModel, ClientSettings, Ruling, Verdict, evidence
from .metrics import Judgement, Report

__all__ = ["WebLogModel", "TrainSettings", "Prepared", "prepare", "FEATURE_VERSION"]

FEATURE_VERSION = 3  # 1: before the shape/evidence features; 2: before page views and the client ensemble


@dataclass
class TrainSettings:
    """How ``WebLogModel.fit`` trains (the options of ``logs train``).

    The line network: ``hidden`` units (default twice its inputs, at most
    ``max_hidden``), after an optional ``svd`` projection; ``epochs``,
    ``learning_rate`` (Adam) and ``batch_size``; ``restarts`` networks, the best
    on validation kept, run on ``n_jobs`` workers of ``backend`` (``loky`` or
    ``dask``, with ``scheduler``); ``seed`` for the split and every network;
    ``progress`` bars. The client model: ``members`` cross-fitted networks
    (``clients.ClientSettings``) on at most ``judgements`` judgements per
    client. The decision settings saved with the model: ``line_threshold``,
    ``ban_threshold`` (None: chosen by cross-fitting for at most
    ``target_rate`` of each training file's good clients ever banned) and
    ``min_evidence``.
    """

    svd: int | None = None
    hidden: int | None = None
    max_hidden: int = 256
    epochs: int = 15
    learning_rate: float = 1e-3
    batch_size: int = 64
    restarts: int = 3
    n_jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    seed: int = 0
    progress: bool = False
    line_threshold: float = 0.5
    ban_threshold: float | None = None
    target_rate: float = 0.01
    min_evidence: int = 5
    members: int = 5
    judgements: int = 24


@dataclass
class Prepared:
    """What a fit does not change: every line's tokens and facts, its client, client
    summaries and the client's evidence at each judgement.

    ``clients[i]`` is ``"file|client"`` for line ``i``; ``summaries`` maps that
    key to the client's ``ClientBook`` state over the whole file (what the client
    model learns from); ``snapshots`` maps it to the client's evidence at every
    judgement point of the decision procedure (``clients.JudgementPoints``, the
    watcher's), in order: what ``judge`` rules on.
    """

    data: LabelledLines
    tokens: list[list[str]]
    clients: np.ndarray
    summaries: dict[str, ClientState]
    snapshots: dict[str, list[Snapshot]]

    def client_truth(self, rows: np.ndarray) -> dict[str, bool]:
        """Each client of ``rows`` that has labelled lines: is it bad (at least half its labelled lines bad)?"""
        return {client: share >= 0.5 for client, share in self.bad_shares(rows).items()}

    def bad_shares(self, rows: np.ndarray) -> dict[str, float]:
        """Each client of ``rows`` that has labelled lines: the share of them that is bad."""
        bad: dict[str, list[int]] = {}
        for i in rows:
            label = self.data.labels[i]
            if label is not None:
                bad.setdefault(self.clients[i], []).append(label == "bad")
        return {client: float(np.mean(flags)) for client, flags in bad.items()}


def prepare(featurizer: Featurizer, data: LabelledLines, client: Any = None) -> Prepared:
    """Tokens of every line (context in time order, afresh for each file), client summaries,
    and each client's evidence at every judgement point, replayed as the decision procedure
    replays a file (``decision``: the same order, the same judgement points). Each file is
    prepared on its own, so with ``client`` (a ``distributed.Client``) each is a Dask task of
    its own, with the same result."""
    records = data.records
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(data.files):
        by_file.setdefault(name, []).append(i)
    files = [(name, [records[i] for i in indices]) for name, indices in by_file.items()]
    if client is not None:
        shared = client.scatter(featurizer, broadcast=True)
        done = client.gather([client.submit(_prepare_file, shared, name, recs, pure=False) for name, recs in files])
    else:
        done = [_prepare_file(featurizer, name, recs) for name, recs in files]
    tokens: list[list[str] | None] = [None] * len(records)
    clients = np.empty(len(records), dtype=object)
    summaries: dict[str, ClientState] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    for indices, (file_tokens, file_clients, taken, states) in zip(by_file.values(), done, strict=True):
        for i, t, c in zip(indices, file_tokens, file_clients, strict=True):
            tokens[i], clients[i] = t, c
        for client, snapshot in taken:
            snapshots.setdefault(client, []).append(snapshot)
        summaries.update(states)
    featurizer.reset_context()
    return Prepared(data, tokens, clients, summaries, snapshots)  # type: ignore[arg-type]


def _prepare_file(featurizer: Featurizer, name: str, records: list[LogRecord]) -> tuple:
    """``prepare`` of one file's records: each line's tokens and client (in the records'
    order), the judgement snapshots and the whole-file summaries, keyed by file and client."""
    featurizer.reset_context()  # a fresh tally for each file, as the decision procedure keeps
    featurizer.points.minimum = 1  # every judgement recorded; the model's minimum applies when ruling
    book = ClientBook(idle=float("inf"))  # whole-file summaries: what the client model learns from
    prefix = Path(name).name + "|"
    tokens: list[list[str] | None] = [None] * len(records)
    clients: list[str] = [""] * len(records)
    for i in in_time_order(range(len(records)), lambda j: records[j].time, SLACK, tiebreak=lambda j: records[j]):
        tokens[i], facts = featurizer.tokens_and_facts(records[i])
        book.add(records[i], facts)
        clients[i] = prefix + client_of(records[i])
    taken = featurizer.points.take()[0] + featurizer.points.flush()
    return tokens, clients, [(prefix + s.client, s) for s in taken], [(prefix + c, st) for c, st in book.drain()]


class WebLogModel:
    """A featurizer (vocabulary and settings), an optional truncated-SVD projection,
    the line network and the client model."""

    def __init__(
        self, featurizer: Featurizer, network: Network, classes: Sequence[str], projection: np.ndarray | None = None,
        client_model: ClientModel | None = None, line_threshold: float = 0.5,
    ) -> None:  # fmt: skip
        self.featurizer, self.network, self.classes = featurizer, network, list(classes)
        self.projection = projection  # (n_features, k): rows -> k SVD components, or None
        self.client_model = client_model
        self.line_threshold = float(line_threshold)

    def __repr__(self) -> str:
        svd = f", svd={self.projection.shape[1]}" if self.projection is not None else ""
        return (f"WebLogModel({self.featurizer!r}{svd}, {self.network.layers!r}, classes={self.classes}, "
                f"line_threshold={self.line_threshold:g}, {self.client_model!r})")  # fmt: skip

    def inputs(self, X: Any) -> Any:
        """What the network sees: the sparse rows, or their SVD projection (dense)."""
        return X if self.projection is None else np.asarray(X @ self.projection, dtype=np.float32)

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from probabilities: "bad" wherever P(bad) reaches ``line_threshold``,
        else the most probable of the other classes."""
        if "bad" not in self.classes:
            return proba.argmax(axis=1)
        bad = self.classes.index("bad")
        others = proba.copy()
        others[:, bad] = -1.0
        return np.where(proba[:, bad] >= self.line_threshold, bad, others.argmax(axis=1))

    # --- training --------------------------------------------------------------
    @classmethod
    def fit(
        cls, prepared: Prepared, train: np.ndarray, val: np.ndarray, *, featurizer: Featurizer,
        classes: Sequence[str], settings: TrainSettings | None = None,
    ) -> tuple[WebLogModel, Any]:  # fmt: skip
        """Fit the vocabulary, the line network (best of ``settings.restarts`` on ``val``) and the
        client model on the rows ``train``. Returns the model and the selection result."""
        s = settings or TrainSettings()
        tokens, labels = prepared.tokens, prepared.data.labels
        client_rows = train  # the client model learns from every labelled client
        train, val = _request_level(prepared, train, val, classes)
        featurizer.fit(tokens[i] for i in train)
        rows = np.concatenate([train, val])
        X = featurizer.transform([tokens[i] for i in rows])
        y = np.array([list(classes).index(labels[i]) for i in rows])
        X_train, y_train, X_val, y_val = X[: len(train)], y[: len(train)], X[len(train) :], y[len(train) :]
        projection = _svd_projection(X_train, featurizer.n_features, s) if s.svd else None
        if projection is not None:
            X_train = np.asarray(X_train @ projection, dtype=np.float32)
            X_val = np.asarray(X_val @ projection, dtype=np.float32)
        result = _select_line_network(X_train, y_train, (X_val, y_val), len(classes), s)
        client_features = CLIENT_SETS[featurizer.client]
        client_model = _fit_client_model(prepared, client_rows, s, client_features) if "bad" in classes else None
        return cls(featurizer, result.best, classes, projection, client_model, s.line_threshold), result

    def judge(self, prepared: Prepared, rows: np.ndarray) -> Judgement:
        """Line and client decisions on the labelled lines among ``rows``, whose tokens
        ``prepared`` holds (made by a featurizer with this model's settings)."""
        rows = np.asarray([i for i in rows if prepared.data.labels[i] is not None], dtype=np.int64)
        X = self.featurizer.transform([prepared.tokens[i] for i in rows])
        predicted = np.array(self.classes)[self.predict_rows(X)[1]]
        truth = np.array([prepared.data.labels[i] for i in rows])
        unknown = sorted(set(truth) - set(self.classes))
        if unknown:
            raise ValueError(f"the labels include {[str(u) for u in unknown]}, which the model does not know "
                             f"(it has {self.classes}).")  # fmt: skip
        sources = np.array([prepared.data.sources[i] for i in rows], dtype=str)
        client_truth = prepared.client_truth(rows) if self.client_model is not None else {}
        keys = sorted(client_truth)
        verdicts = self.client_verdicts(prepared, keys) if client_truth else {}
        sessions = None
        if client_truth:  # each whole visit ruled on once, as the Web Bot paper classifies sessions
            whole = self.client_model.probability(ClientBook.summarise([ClientBook.counts(prepared.summaries[k])
                                                                       for k in keys]))  # fmt: skip
            sessions = dict(zip(keys, whole.tolist(), strict=True))
        return Judgement(self.classes, truth, predicted, sources, prepared.clients[rows], client_truth, verdicts,
                         sessions)  # fmt: skip

    def client_verdicts(self, prepared: Prepared, keys: Sequence[str]) -> dict[str, Verdict]:
        """Each client's ``Verdict`` the watcher's way: ruled on at every judgement point of
        its file, banned by the first ruling that bans it (``prepared.snapshots``)."""
        cm = self.client_model
        judged = [(k, s) for k in keys for s in prepared.snapshots.get(k, []) if evidence(s.counts) >= cm.min_evidence]
        rulings: dict[str, list[Ruling]] = {}
        for (key, _), ruling in zip(judged, cm.rulings([s for _, s in judged]), strict=True):
            rulings.setdefault(key, []).append(ruling)
        out = {}
        for key in keys:
            mine = rulings.get(key, [])
            ban = next((r for r in mine if r.ban), None)
            peak = max((r.probability for r in mine), default=None)
            out[key] = Verdict.of(key, prepared.summaries[key], ban, peak, cm.min_evidence)
        return out

    def report(self, prepared: Prepared, rows: np.ndarray) -> Report:
        """Metrics on ``rows`` (see ``judge`` and ``Judgement.report``)."""
        return self.judge(prepared, rows).report()

    @classmethod
    def train(
        cls, data: LabelledLines, *, featurizer: Featurizer | None = None, settings: TrainSettings | None = None,
        fractions: Sequence[float] = (0.6, 0.2, 0.2),
    ) -> tuple[WebLogModel, Report, dict[str, Any]]:  # fmt: skip
        """Split by client (``fractions`` for training, validation and test), fit on the training
        clients with ``featurizer`` (a fresh ``Featurizer()`` by default: the default features)
        and ``settings``, and report on the test clients."""
        settings = settings or TrainSettings()
        featurizer = featurizer if featurizer is not None else Featurizer()
        known = data.known()
        if not known.any():
            if not data.records:
                raise ValueError(f"the logs hold no line to learn from ({data.stats.summary().splitlines()[0]}): "
                                 "check the files, or name their format with --format.")  # fmt: skip
            raise ValueError(f"none of the {len(data.records):,} lines read is labelled: the label files match none "
                             "of their sessions or lines (they name other logs), and no class file (--good, --bad) or "
                             "--rules labels them.")  # fmt: skip
        labels = [lab for lab in data.labels if lab is not None]
        classes = [c for c in CLASSES if c in set(labels)]
        if len(classes) < 2:
            raise ValueError(f"Training needs at least two classes; the labels hold only {classes}.")
        with contextlib.ExitStack() as stack:  # with the backend dask, one session prepares and trains
            client = None
            if settings.backend == "dask":
                from ...selection import dask_session

                client = stack.enter_context(dask_session(settings.scheduler, settings.n_jobs))
                settings = replace(settings, scheduler=None)  # the restarts: on this (current) client
            prepared = prepare(featurizer, data, client)
            keep = np.flatnonzero(known)
            files = [data.files[i] for i in keep]
            parts = split_by_client(list(prepared.clients[keep]), files, fractions, settings.seed)
            train, val, test = (keep[p] for p in parts)
            if min(len(train), len(val), len(test)) == 0:
                n_clients = len(set(prepared.clients[keep]))
                raise ValueError(f"the split by client needs at least 3 labelled clients per file with lines on "
                                 f"each side; these logs have {n_clients} labelled client(s) and one part came out "
                                 f"empty (sizes {len(train)}/{len(val)}/{len(test)} lines). Add logs or clients."
                                 )  # fmt: skip
            start = time.perf_counter()
            model, result = cls.fit(prepared, train, val, featurizer=featurizer, classes=classes, settings=settings)
        report = model.report(prepared, test)
        info = {
            "lines": {"train": len(train), "validation": len(val), "test": len(test)},
            "clients": {name: len(set(prepared.clients[part])) for name, part in
                        (("train", train), ("validation", val), ("test", test))},  # fmt: skip
            "features": featurizer.n_features, "inputs": model.network.layers[0].n_in,
            "hidden": model.network.layers[0].n_out, "selection": result.format_table(),
            "train_seconds": time.perf_counter() - start, "cache_hit_rate": featurizer.cache_hit_rate,
        }  # fmt: skip
        return model, report, info

    # --- use -------------------------------------------------------------------
    def score(self, records: Sequence[LogRecord]) -> tuple[np.ndarray, np.ndarray, list[ClientState]]:
        """The one scoring path for lines: class probabilities ``(n, len(classes))``, label
        indices (``labels``) and each line's client state once the line joined the
        featurizer's tally, for records given in time order; the tally and the context carry
        over between calls."""
        columns, _, states = zip(*map(self.featurizer.columns, records), strict=True) if records else ((), (), ())
        proba, labels = self.predict_rows(self.featurizer.matrix(columns))
        return proba, labels, list(states)

    def predict_rows(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and label indices of feature rows ``X`` (the featurizer's CSR)."""
        proba = self.network.predict(self.inputs(X))
        return proba, self.labels(proba)

    def predict_proba(self, records: Sequence[LogRecord]) -> np.ndarray:
        """Class probabilities (n, len(classes)) of records given in time order (see ``score``)."""
        return self.score(records)[0]

    def save(self, path: str | Path) -> Path:
        extra = {"kind": "nnscratch.weblogs", "feature_version": FEATURE_VERSION, "classes": self.classes,
                 "featurizer": self.featurizer.get_config(), "line_threshold": self.line_threshold,
                 "client_model": self.client_model.get_config() if self.client_model else None}  # fmt: skip
        arrays = {"svd_projection": self.projection} if self.projection is not None else {}
        if self.client_model is not None:
            arrays.update(self.client_model.arrays())
        return model_io.save(self.network, path, include_optimizer=False, extra=extra, arrays=arrays or None)

    @classmethod
    def load(cls, path: str | Path) -> WebLogModel:
        network, metadata, arrays = load_bundle(path)
        meta = metadata["extra"]
        if meta.get("kind") != "nnscratch.weblogs":
            raise model_io.ModelFileError(f"{path} is an nnscratch model but not a web-log model.")
        if meta.get("feature_version", 1) != FEATURE_VERSION:
            raise model_io.ModelFileError(
                f"{path} is a web-log model with feature version {meta.get('feature_version', 1)}; this nnscratch "
                f"computes version {FEATURE_VERSION} (page views, the client ensemble). Retrain it with "
                "'nnscratch logs train'."
            )
        client_config = meta.get("client_model")
        client_model = ClientModel.from_parts(client_config, arrays) if client_config else None
        return cls(Featurizer.from_config(meta["featurizer"]), network, meta["classes"], arrays.get("svd_projection"),
                   client_model, meta.get("line_threshold", 0.5))  # fmt: skip


def _request_level(prepared: Prepared, train: np.ndarray, val: np.ndarray,
                   classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The rows that teach the line model. A per-session label says who the client was, not
    what each request was: every request of a human is a legitimate request, but a bot's
    request can be one a person would make, so bad sessions teach the client model only
    (unless nothing else is left to learn from)."""
    labels, sources = prepared.data.labels, prepared.data.sources
    request_level = [part[[sources[i] != "truth:session" or labels[i] != "bad" for i in part]]
                     for part in (train, val)]  # fmt: skip
    if len({labels[i] for i in request_level[0]}) >= 2 and len(request_level[1]):
        train, val = request_level
    held = sorted({labels[i] for i in train}, key=list(classes).index)
    if len(held) < 2:
        raise ValueError(f"cannot train: the training lines hold only {held} (of {list(classes)}); "
                         "add sources with the other classes")  # fmt: skip
    if len(val) == 0:
        raise ValueError("cannot train: no validation lines (every labelled client is in training)")
    return train, val


def _svd_projection(X_train: Any, n_features: int, s: TrainSettings) -> np.ndarray:
    """A truncated-SVD projection to ``s.svd`` components, fitted on the training rows only."""
    from sklearn.decomposition import TruncatedSVD

    reducer = TruncatedSVD(n_components=min(s.svd, n_features - 1), random_state=s.seed).fit(X_train)
    return reducer.components_.T.astype(np.float32)


def _select_line_network(X: Any, y: np.ndarray, validation: tuple[Any, np.ndarray], n_classes: int,
                         s: TrainSettings) -> Any:  # fmt: skip
    """``s.restarts`` line networks (one sigmoid hidden layer, softmax), the best on validation."""
    from ...optimizers import Adam
    from ...selection import restarts, select_best

    n_in = X.shape[1]
    width = s.hidden or min(2 * n_in, s.max_hidden)
    weights = _balanced(y, n_classes)

    def build(config: dict, seed: int) -> Network:
        return Network.from_sizes([n_in, width, n_classes], "sigmoid", "softmax", optimizer=Adam(s.learning_rate),
                                  seed=seed)  # fmt: skip

    def fit_params(config: dict) -> dict[str, Any]:
        return {"epochs": s.epochs, "batch_size": s.batch_size, "sample_weight": weights}

    result = select_best(build, X, y, restarts({}, s.restarts, seed=s.seed), validation, fit_params=fit_params,
                         n_jobs=s.n_jobs, backend=s.backend, scheduler=s.scheduler, progress=s.progress)  # fmt: skip
    if result.best is None:
        raise RuntimeError("Every network failed to train:\n" + result.format_table())
    return result


def _fit_client_model(prepared: Prepared, rows: np.ndarray, s: TrainSettings,
                      features: Sequence[str]) -> ClientModel | None:  # fmt: skip
    """The client model, on the labelled clients of ``rows`` as they are judged: at most
    ``s.judgements`` of each client's judgement points, spread over its visit, and its
    whole-file summary (None unless there are bad and not-bad clients)."""
    shares = prepared.bad_shares(rows)
    truth = {key: share >= 0.5 for key, share in shares.items()}
    if len(set(truth.values())) < 2:
        return None
    counts, labels, groups, files, judged = [], [], [], [], []
    for key in sorted(truth):
        snapshots = prepared.snapshots.get(key, [])
        if len(snapshots) > s.judgements:
            snapshots = [snapshots[i] for i in np.linspace(0, len(snapshots) - 1, s.judgements).round().astype(int)]
        mine = [snap.counts for snap in snapshots] + [ClientBook.counts(prepared.summaries[key])]
        counts += mine
        labels += [truth[key]] * len(mine)
        groups += [key] * len(mine)
        files += [key.split("|", 1)[0]] * len(mine)
        # The threshold is held on clean good clients (no bad line at all): a client that is
        # a browser and curl by turns is not the person the false-ban rate is about.
        clean = truth[key] or shares[key] == 0.0
        judged += [clean and evidence(c) >= s.min_evidence for c in mine[:-1]] + [False]
    settings = ClientSettings(tuple(features), s.members, seed=s.seed, target_rate=s.target_rate,
                              floor=s.ban_threshold if s.ban_threshold is not None else 0.5,
                              min_evidence=s.min_evidence, judged=np.array(judged))  # fmt: skip
    model = ClientModel.fit(ClientBook.summarise(counts), np.array(labels, dtype=np.int64), groups, files=files,
                            settings=settings)  # fmt: skip
    if s.ban_threshold is not None:
        model.threshold = s.ban_threshold
    return model


def _balanced(y: np.ndarray, k: int) -> np.ndarray:
    """Per-sample weights that give every class the same total weight."""
    counts = np.bincount(y, minlength=k).astype(float)
    per_class = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return per_class[y]
