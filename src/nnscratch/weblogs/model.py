"""Training, evaluating and applying a bot detector on access logs.

``LabelledLines`` gathers parsed lines with labels from class files, label
files and/or the rule set, remembering where each label came from (``truth``
or ``rules``): metrics are reported separately for the two, because a model
trained on rule labels mostly re-learns the rules.

``WebLogModel.train`` splits **by client** (IP, or session id where the log
has one) so that no client's lines fall on both sides, trains several networks
(one sigmoid hidden layer, twice the input size by default, capped; a softmax
output) in parallel through ``nnscratch.selection`` and keeps the one with the
lowest validation loss. The model file holds the network, the vocabulary and
the settings. ``classify`` streams logs of any size in chunks and keeps a
per-client tally of bad requests in a sliding window for the ban list.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import io as model_io
from ..network import Network
from .features import Behaviour, Featurizer
from .labels import CLASSES, RuleLabeler, read_label_file
from .parse import LogRecord, ParseStats, parse_stream

__all__ = ["LabelledLines", "WebLogModel", "Report", "ClientTally", "split_by_client"]


@dataclass
class LabelledLines:
    """Parsed lines, their labels (None: unknown), the label source and file."""

    records: list[LogRecord] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stats: ParseStats = field(default_factory=ParseStats)

    def add_file(self, path: str, label: str | None = None, source: str = "truth") -> None:
        """Every line of ``path`` with one label (or unknown, to be filled in)."""
        for _, _, record in parse_stream([path], self.stats):
            self.records.append(record)
            self.labels.append(label)
            self.sources.append(source)
            self.files.append(str(path))

    @classmethod
    def gather(
        cls, *, good: Sequence[str] = (), bad: Sequence[str] = (), gray: Sequence[str] = (), logs: Sequence[str] = (),
        label_files: Sequence[str] = (), rules: RuleLabeler | None = None, gray_as: str = "gray",
    ) -> LabelledLines:  # fmt: skip
        """Class files, then logs labelled by label files, then by rules for what is left."""
        data = cls()
        for label, paths in (("good", good), ("bad", bad), ("gray", gray)):
            for path in paths:
                data.add_file(path, label)
        start = len(data.records)
        for path in logs:
            data.add_file(path)
        maps = [read_label_file(p) for p in label_files]
        for i in range(start, len(data.records)):
            record, name = data.records[i], Path(data.files[i]).name
            for kind, mapping in maps:
                key = record.session if kind == "session" else (name, None)
                if kind == "line":
                    continue  # line labels are applied below, where line numbers are known
                if key in mapping and mapping[key] is not None:
                    data.labels[i] = mapping[key]
        if any(kind == "line" for kind, _ in maps):
            data._apply_line_labels([m for k, m in maps if k == "line"], logs)
        if rules is not None:
            unlabelled = [i for i in range(start, len(data.records)) if data.labels[i] is None]
            by_file: dict[str, list[int]] = {}
            for i in unlabelled:
                by_file.setdefault(data.files[i], []).append(i)
            for indices in by_file.values():  # burst rules look at one log at a time
                for i, (label, _) in zip(indices, rules.label([data.records[i] for i in indices]), strict=True):
                    data.labels[i], data.sources[i] = label, "rules"
        if gray_as == "bad":
            data.labels = ["bad" if lab == "gray" else lab for lab in data.labels]
        elif gray_as == "drop":
            data.labels = [None if lab == "gray" else lab for lab in data.labels]
        return data

    def _apply_line_labels(self, maps: list[dict], logs: Sequence[str]) -> None:
        numbers = {}
        for path in logs:
            for _, number, _record in parse_stream([path]):
                numbers.setdefault(path, []).append(number)
        offset = len(self.records) - sum(len(v) for v in numbers.values())
        i = offset
        for path in logs:
            for number in numbers.get(path, []):
                for mapping in maps:
                    label = mapping.get((Path(path).name, number))
                    if label is not None:
                        self.labels[i] = label
                i += 1

    def known(self) -> np.ndarray:
        return np.array([lab is not None for lab in self.labels])


def split_by_client(
    clients: Sequence[str], groups: Sequence[str], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> list[np.ndarray]:
    """Row indices of each part; every client lands in exactly one part.

    Within each group (a log file), clients are shuffled and dealt out so each
    part gets about its fraction of that file's lines.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    by_group: dict[str, dict[str, list[int]]] = {}
    for i, (client, group) in enumerate(zip(clients, groups, strict=True)):
        by_group.setdefault(group, {}).setdefault(client, []).append(i)
    targets = np.cumsum(fractions) / np.sum(fractions)
    for group in sorted(by_group):
        members = by_group[group]
        names = sorted(members)
        order = rng.permutation(len(names))
        total = sum(len(v) for v in members.values())
        done = 0
        for k in order:
            rows = members[names[k]]
            # the part whose share of this file is furthest below its target
            filled = done / total
            part = int(np.searchsorted(targets, filled, side="right"))
            parts[min(part, len(parts) - 1)].extend(rows)
            done += len(rows)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


@dataclass
class Report:
    """Per-class precision, recall and F1 and the confusion matrix, per label source."""

    classes: list[str]
    sections: dict[str, dict[str, Any]]

    def f1(self, section: str, label: str = "bad") -> float | None:
        s = self.sections.get(section)
        return None if s is None or label not in s["per_class"] else s["per_class"][label]["f1"]

    def format(self) -> str:
        lines = []
        for name, s in self.sections.items():
            lines.append(f"{name}: {s['n']:,} lines")
            lines.append(f"  {'class':<6} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
            for label, m in s["per_class"].items():
                lines.append(
                    f"  {label:<6} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8,}"
                )
            lines.append("  confusion (rows true, columns predicted: " + ", ".join(s["labels"]) + ")")
            lines += ["    " + " ".join(f"{v:>7,}" for v in row) for row in s["confusion"]]
        return "\n".join(lines)


def evaluate(
    classes: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str], sections: dict[str, np.ndarray]
) -> Report:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    out = {}
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, mask in sections.items():
        if not mask.any():
            continue
        labels = list(classes)
        p, r, f, s = precision_recall_fscore_support(y_true[mask], y_pred[mask], labels=labels, zero_division=0)
        out[name] = {
            "n": int(mask.sum()),
            "labels": labels,
            "per_class": {
                c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                for i, c in enumerate(labels)
            },  # fmt: skip
            "confusion": confusion_matrix(y_true[mask], y_pred[mask], labels=labels).tolist(),
        }
    return Report(list(classes), out)


class WebLogModel:
    """A featurizer (vocabulary and settings), an optional truncated-SVD
    projection, and a network over the result."""

    def __init__(
        self, featurizer: Featurizer, network: Network, classes: Sequence[str], projection: np.ndarray | None = None
    ) -> None:
        self.featurizer, self.network, self.classes = featurizer, network, list(classes)
        self.projection = projection  # (n_features, k): rows -> k SVD components, or None

    def inputs(self, X: Any) -> Any:
        """What the network sees: the sparse rows, or their SVD projection (dense)."""
        return X if self.projection is None else np.asarray(X @ self.projection, dtype=np.float32)

    # --- tokens ----------------------------------------------------------------
    @staticmethod
    def token_lists(featurizer: Featurizer, records: Sequence[LogRecord], files: Sequence[str]) -> list[list[str]]:
        """Tokens of every record; behaviour windows run per file, in time order."""
        tokens: list[list[str] | None] = [None] * len(records)
        by_file: dict[str, list[int]] = {}
        for i, name in enumerate(files):
            by_file.setdefault(name, []).append(i)
        for indices in by_file.values():
            featurizer.reset_behaviour()
            for i in sorted(indices, key=lambda j: records[j].time):
                tokens[i] = featurizer.tokens(records[i])
        return tokens  # type: ignore[return-value]

    # --- training --------------------------------------------------------------
    @classmethod
    def train(
        cls, data: LabelledLines, *, user_agent: bool = True, behaviour: bool = False, hashing: int | None = None,
        min_count: int = 2, max_features: int = 50_000, svd: int | None = None, hidden: int | None = None,
        max_hidden: int = 256,
        epochs: int = 15, learning_rate: float = 1e-3, batch_size: int = 64, restarts: int = 3, n_jobs: int = 1,
        backend: str = "loky", scheduler: str | None = None, seed: int = 0,
        fractions: Sequence[float] = (0.6, 0.2, 0.2), progress: bool = False,
    ) -> tuple[WebLogModel, Report, dict[str, Any]]:  # fmt: skip
        """Fit vocabulary and networks on the training clients; report on the test clients."""
        from ..selection import restarts as restart_candidates
        from ..selection import select_best

        keep = np.flatnonzero(data.known())
        if keep.size == 0:
            raise ValueError("No labelled lines: give class files, a label file or --rules.")
        records = [data.records[i] for i in keep]
        labels = [data.labels[i] for i in keep]
        sources = np.array([data.sources[i] for i in keep])
        files = [data.files[i] for i in keep]
        classes = [c for c in CLASSES if c in set(labels)]
        if len(classes) < 2:
            raise ValueError(f"Training needs at least two classes; the labels hold only {classes}.")
        clients = [f"{Path(f).name}|{Behaviour.client_of(r)}" for r, f in zip(records, files, strict=True)]
        train, val, test = split_by_client(clients, files, fractions, seed)
        if min(len(train), len(val), len(test)) == 0:
            raise ValueError("Too few clients to split into train, validation and test parts.")
        featurizer = Featurizer(user_agent=user_agent, behaviour=behaviour, hashing=hashing,
                                min_count=min_count, max_features=max_features)  # fmt: skip
        tokens = cls.token_lists(featurizer, records, files)
        featurizer.fit(tokens[i] for i in train)
        X = featurizer.transform(tokens)
        y = np.array([classes.index(lab) for lab in labels])
        projection = None
        if svd:
            from sklearn.decomposition import TruncatedSVD

            k = min(svd, featurizer.n_features - 1)
            reducer = TruncatedSVD(n_components=k, random_state=seed).fit(X[train])  # training rows only
            projection = reducer.components_.T.astype(np.float32)
            X = np.asarray(X @ projection, dtype=np.float32)
        n_in = X.shape[1]
        width = hidden or min(2 * n_in, max_hidden)
        weights = _balanced(y[train], len(classes))

        def build(config: dict, seed: int) -> Network:
            from ..optimizers import Adam

            return Network.from_sizes([n_in, width, len(classes)], "sigmoid", "softmax",
                                      optimizer=Adam(learning_rate), seed=seed)  # fmt: skip

        def fit_params(config: dict) -> dict[str, Any]:
            return {"epochs": epochs, "batch_size": batch_size, "sample_weight": weights}

        start = time.perf_counter()
        result = select_best(build, X[train], y[train], restart_candidates({}, restarts, seed=seed), (X[val], y[val]),
                             fit_params=fit_params, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                             progress=progress)  # fmt: skip
        if result.best is None:
            raise RuntimeError("Every network failed to train:\n" + result.format_table())
        model = cls(featurizer, result.best, classes, projection)
        predicted = np.array(classes)[model.network.predict(X[test]).argmax(axis=1)]
        truth = np.array(labels)[test]
        report = evaluate(classes, truth, predicted, {
            "ground truth": sources[test] == "truth", "rule-labelled": sources[test] == "rules",
        })  # fmt: skip
        info = {
            "lines": {"train": len(train), "validation": len(val), "test": len(test)},
            "clients": {name: len({clients[i] for i in part}) for name, part in
                        (("train", train), ("validation", val), ("test", test))},  # fmt: skip
            "features": featurizer.n_features, "inputs": n_in, "hidden": width, "selection": result.format_table(),
            "train_seconds": time.perf_counter() - start, "cache_hit_rate": featurizer.cache_hit_rate,
        }  # fmt: skip
        return model, report, info

    # --- use -------------------------------------------------------------------
    def predict_proba(self, records: Sequence[LogRecord]) -> np.ndarray:
        """Class probabilities (n, len(classes)); behaviour state carries over between calls."""
        featurizer = self.featurizer
        return self.network.predict(self.inputs(featurizer.matrix([featurizer.columns(r) for r in records])))

    def save(self, path: str | Path) -> Path:
        extra = {"kind": "nnscratch.weblogs", "classes": self.classes, "featurizer": self.featurizer.get_config()}
        arrays = {"svd_projection": self.projection} if self.projection is not None else None
        return model_io.save(self.network, path, include_optimizer=False, extra=extra, arrays=arrays)

    @classmethod
    def load(cls, path: str | Path) -> WebLogModel:
        meta = model_io.read_metadata(path)["extra"]
        if meta.get("kind") != "nnscratch.weblogs":
            raise model_io.ModelFileError(f"{path} is an nnscratch model but not a web-log model.")
        projection = model_io.load_arrays(path).get("svd_projection")
        return cls(Featurizer.from_config(meta["featurizer"]), model_io.load(path), meta["classes"], projection)


def _balanced(y: np.ndarray, k: int) -> np.ndarray:
    """Per-sample weights that give every class the same total weight."""
    counts = np.bincount(y, minlength=k).astype(float)
    per_class = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return per_class[y]


class ClientTally:
    """Bad requests per client in a sliding window: who reached ``threshold`` within ``minutes``."""

    def __init__(self, threshold: int = 10, minutes: float = 10.0) -> None:
        self.threshold, self.window = threshold, minutes * 60.0
        self.state: dict[str, dict[str, Any]] = {}

    def add(self, client: str, when: float, bad: bool) -> None:
        s = self.state.get(client)
        if s is None:
            s = self.state[client] = {"requests": 0, "bad": 0, "window": deque(), "peak": 0, "first": when,
                                      "last": when, "peak_start": None, "peak_end": None}  # fmt: skip
        s["requests"] += 1
        if when > s["last"]:
            s["last"] = when
        elif when < s["first"]:
            s["first"] = when
        if not bad:
            return
        s["bad"] += 1
        window = s["window"]
        window.append(when)
        while window[0] < when - self.window:
            window.popleft()
        if len(window) > s["peak"]:
            s["peak"], s["peak_start"], s["peak_end"] = len(window), window[0], when

    def forget_idle(self, now: float) -> None:
        """Drop clients that never reached the threshold and have been quiet for a
        whole window: nothing they did can get them banned any more. Keeps memory
        bounded by the clients active in one window (plus the banned ones)."""
        idle = [c for c, s in self.state.items() if s["peak"] < self.threshold and s["last"] < now - self.window]
        for client in idle:
            del self.state[client]

    def banned(self) -> list[dict[str, Any]]:
        """Clients with at least ``threshold`` bad requests within the window, worst first."""
        rows = []
        for client, s in self.state.items():
            if s["peak"] >= self.threshold:
                rows.append({"client": client, "bad_in_window": s["peak"], "window_start": s["peak_start"],
                             "window_end": s["peak_end"], "bad_total": s["bad"], "requests": s["requests"],
                             "first_seen": s["first"], "last_seen": s["last"]})  # fmt: skip
        return sorted(rows, key=lambda r: (-r["bad_in_window"], r["client"]))


def _classify_chunk(
    chunk: list[tuple[str, int, bytes]],
) -> tuple[list[tuple[str, int, str, float]], Any, ParseStats, Any]:
    """Worker side of ``classify``: parse a chunk of raw lines and predict them."""
    from .parse import parse_line

    model: WebLogModel = _WORKER["model"]
    featurizer = model.featurizer
    hits, lookups = featurizer.cache_hits, featurizer.cache_lookups
    stats = ParseStats()
    rows, columns = [], []
    for source, number, raw in chunk:
        item = parse_line(raw)
        stats.add(item)
        if isinstance(item, LogRecord):
            rows.append((source, number, Behaviour.client_of(item), item.time))
            columns.append(featurizer.columns(item))
    proba = model.network.predict(model.inputs(featurizer.matrix(columns))) if rows else None
    return rows, proba, stats, (featurizer.cache_hits - hits, featurizer.cache_lookups - lookups)


_WORKER: dict[str, Any] = {}


def _init_worker(model: WebLogModel) -> None:
    _WORKER["model"] = model


def _chunks(paths: Iterable[str], size: int) -> Any:
    from .parse import read_lines

    chunk: list[tuple[str, int, bytes]] = []
    for item in read_lines(paths):
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify(
    model: WebLogModel, paths: Iterable[str], out: IO[str] | None, fmt: str = "csv", tally: ClientTally | None = None,
    chunk: int = 20_000, stats: ParseStats | None = None, workers: int | None = None,
) -> tuple[int, Counter]:  # fmt: skip
    """Label every line of ``paths`` (streamed in chunks); write one row per line to
    ``out`` (CSV or JSON lines) and feed the client tally. Returns (lines, counts).

    Without behaviour features, chunks are independent: a worker process parses,
    featurises and predicts the next chunk while this one writes (``workers``
    defaults to 1 extra process when there are 2 or more cores). With behaviour
    features the per-client windows need the lines in order, so it runs here.
    """
    import os

    stats = stats if stats is not None else ParseStats()
    counts: Counter = Counter()
    n = 0
    classes = model.classes
    if out is not None and fmt == "csv":
        out.write("file,line,client,time,label," + ",".join(f"p_{c}" for c in classes) + "\n")
    bad = classes.index("bad") if "bad" in classes else None
    row_format = ",".join(["{:.4f}"] * len(classes)) + "\n"
    featurizer = model.featurizer

    def emit(rows: list[tuple[str, int, str, float]], proba: Any) -> None:
        nonlocal n
        if not rows:
            return
        winners = proba.argmax(axis=1).tolist()
        for (source, number, client, when), p, w in zip(rows, proba.tolist(), winners, strict=True):
            label = classes[w]
            counts[label] += 1
            if tally is not None:
                tally.add(client, when, w == bad)
            if out is None:
                continue
            if fmt == "csv":
                out.write(f"{source},{number},{client},{when:.0f},{label}," + row_format.format(*p))
            else:
                row = {"file": source, "line": number, "client": client, "time": when, "label": label,
                       "p": dict(zip(classes, p, strict=True))}  # fmt: skip
                out.write(json.dumps(row) + "\n")
        n += len(rows)
        now = rows[-1][3]
        if featurizer._behaviour is not None:
            featurizer._behaviour.forget_idle(now)
        if tally is not None:
            tally.forget_idle(now)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = (1 if cores > 1 else 0) if workers is None else workers
    if workers and not featurizer.behaviour:
        import multiprocessing

        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(model,)) as pool:
            for rows, proba, chunk_stats, (hits, lookups) in pool.imap(_classify_chunk, _chunks(paths, chunk)):
                featurizer.cache_hits += hits  # the worker's cache, reported here
                featurizer.cache_lookups += lookups
                stats.parsed += chunk_stats.parsed
                for reason, count in chunk_stats.skipped.items():
                    stats.skipped[reason] += count
                    kept = stats.examples.setdefault(reason, [])
                    kept.extend(chunk_stats.examples[reason][: stats.keep - len(kept)])
                emit(rows, proba)
        return n, counts
    rows: list[tuple[str, int, str, float]] = []
    columns: list = []
    for source, number, record in parse_stream(paths, stats):
        rows.append((source, number, Behaviour.client_of(record), record.time))
        columns.append(featurizer.columns(record))
        if len(rows) >= chunk:
            emit(rows, model.network.predict(model.inputs(featurizer.matrix(columns))))
            rows, columns = [], []
    if rows:
        emit(rows, model.network.predict(model.inputs(featurizer.matrix(columns))))
    return n, counts
