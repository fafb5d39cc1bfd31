"""Training and evaluating a bot detector on access logs.

``WebLogModel.train`` splits **by client** (IP, or session id where the log
has one) so that no client's lines fall on both sides, trains several networks
(one sigmoid hidden layer, twice the input size by default, capped; a softmax
output) in parallel through ``nnscratch.selection`` and keeps the one with the
lowest validation loss. The model file holds the network, the vocabulary, the
optional SVD projection and the settings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as model_io
from ..network import Network
from .data import LabelledLines, split_by_client
from .features import Behaviour, Featurizer
from .labels import CLASSES
from .parse import LogRecord

__all__ = ["WebLogModel", "Report", "evaluate"]


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

    def __repr__(self) -> str:
        svd = f", svd={self.projection.shape[1]}" if self.projection is not None else ""
        return f"WebLogModel({self.featurizer!r}{svd}, {self.network.layers!r}, classes={self.classes})"

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
        network, metadata, arrays = model_io.load_bundle(path)
        meta = metadata["extra"]
        if meta.get("kind") != "nnscratch.weblogs":
            raise model_io.ModelFileError(f"{path} is an nnscratch model but not a web-log model.")
        return cls(Featurizer.from_config(meta["featurizer"]), network, meta["classes"], arrays.get("svd_projection"))


def _balanced(y: np.ndarray, k: int) -> np.ndarray:
    """Per-sample weights that give every class the same total weight."""
    counts = np.bincount(y, minlength=k).astype(float)
    per_class = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return per_class[y]
