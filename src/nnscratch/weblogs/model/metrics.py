"""How well a model did: line metrics per section, ban metrics over clients, as dataclasses.

``Judgement`` holds what a model decided on labelled lines (each line's truth
and label, each client's truth and verdict); ``Judgement.report`` makes a
``Report``: per section (a label source, or all lines pooled) the precision,
recall, F1 and support of each class, the confusion matrix and the
false-positive rate for "bad" (``SectionMetrics``); and, when clients were
judged, ban precision and recall over clients (``BanMetrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...extras import require

__all__ = ["ClassMetrics", "SectionMetrics", "BanMetrics", "Report", "Judgement", "evaluate", "client_metrics"]


@dataclass
class ClassMetrics:
    """One class's figures over a section's lines."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class SectionMetrics:
    """The line figures of one section: its ``n`` lines, each class's metrics, the confusion
    matrix (rows true, columns predicted, in the order of ``labels``) and the FPR for bad."""

    n: int
    labels: list[str]
    per_class: dict[str, ClassMetrics]
    fpr_bad: float
    confusion: list[list[int]]


@dataclass
class BanMetrics:
    """Bans over clients: ``n`` clients, ``bad`` of them bad, ``banned``, the ban precision
    and recall, and ``false_bans`` (not-bad clients banned), the watcher's way (banned at any
    judgement); the same for clients of 1-4 requests (``small_banned``, ``small_precision``);
    the request number of each bad client's ban (``ban_requests``); and, where the whole
    visits were ruled on once (the Web Bot paper's protocol), the ``session_accuracy``,
    ``session_recall`` and ``session_false_bans`` of those rulings at P(bad) 0.5."""

    n: int
    bad: int
    banned: int
    precision: float
    recall: float
    false_bans: int
    small_banned: int = 0
    small_precision: float = 1.0
    ban_requests: list[int] | None = None
    session_accuracy: float | None = None
    session_recall: float | None = None
    session_false_bans: int | None = None


@dataclass
class Report:
    """Line metrics per section; and, when clients were judged, ban metrics (``clients``) and
    the line model's own figures without its clients' verdicts (``line_only``)."""

    classes: list[str]
    sections: dict[str, SectionMetrics]
    clients: BanMetrics | None = None
    line_only: Report | None = None

    def f1(self, section: str, label: str = "bad") -> float | None:
        s = self.sections.get(section)
        return None if s is None or label not in s.per_class else s.per_class[label].f1

    def format(self) -> str:
        lines = []
        for name, s in self.sections.items():
            lines.append(f"{name}: {s.n:,} lines; false-positive rate for bad {s.fpr_bad:.3f}")
            lines.append(f"  {'class':<6} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
            for label, m in s.per_class.items():
                lines.append(f"  {label:<6} {m.precision:>9.3f} {m.recall:>7.3f} {m.f1:>6.3f} {m.support:>8,}")
            lines.append("  confusion (rows true, columns predicted: " + ", ".join(s.labels) + ")")
            lines += ["    " + " ".join(f"{v:>7,}" for v in row) for row in s.confusion]
        if self.line_only is not None:
            lines.append("the line model alone (without its clients' verdicts): " + "; ".join(
                f"{name}: recall {s.per_class['bad'].recall:.3f}, false-positive rate {s.fpr_bad:.3f}"
                for name, s in self.line_only.sections.items() if "bad" in s.per_class))  # fmt: skip
        if self.clients:
            c = self.clients
            lines.append(
                f"clients: {c.bad} bad of {c.n}; banned {c.banned} (precision {c.precision:.3f}, "
                f"recall {c.recall:.3f}); not-bad clients banned {c.false_bans} of {c.n - c.bad}; "
                f"clients of 1-4 requests banned {c.small_banned} (precision {c.small_precision:.3f})"
            )
            if c.ban_requests:
                lines.append(f"bad clients banned at request {c.ban_requests[len(c.ban_requests) // 2]} (median), "
                             f"{c.ban_requests[-1]} at the latest")  # fmt: skip
        return "\n".join(lines)


def evaluate(
    classes: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str], sections: dict[str, np.ndarray]
) -> Report:
    """Line metrics for each section (a boolean mask over the lines)."""
    require("sklearn", "weblogs")
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    out = {}
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(classes)
    for name, mask in sections.items():
        if not mask.any():
            continue
        p, r, f, s = precision_recall_fscore_support(y_true[mask], y_pred[mask], labels=labels, zero_division=0)
        negatives = y_true[mask] != "bad"
        out[name] = SectionMetrics(
            int(mask.sum()), labels,
            {c: ClassMetrics(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, c in enumerate(labels)},
            float((y_pred[mask][negatives] == "bad").mean()) if negatives.any() else 0.0,
            confusion_matrix(y_true[mask], y_pred[mask], labels=labels).tolist(),
        )  # fmt: skip
    return Report(labels, out)


def client_metrics(truth: Sequence[bool], banned: Sequence[bool], requests: Sequence[int] | None = None,
                   ban_requests: Sequence[int | None] | None = None,
                   session: Sequence[float] | None = None) -> BanMetrics:  # fmt: skip
    """Ban precision and recall over clients (``truth``: the client is bad), and where given,
    each client's ``requests`` (for the 1-4 request figures), the request number of its ban
    and its P(bad) on the whole visit (``session``, for the paper's figures)."""
    truth, banned = np.asarray(truth, dtype=bool), np.asarray(banned, dtype=bool)
    hits = int((truth & banned).sum())
    out = BanMetrics(int(truth.size), int(truth.sum()), int(banned.sum()),
                     hits / banned.sum() if banned.any() else (1.0 if not truth.any() else 0.0),
                     hits / truth.sum() if truth.any() else 1.0, int((banned & ~truth).sum()))  # fmt: skip
    if requests is not None:
        small = banned & (np.asarray(requests) < 5)
        out.small_banned = int(small.sum())
        out.small_precision = float(truth[small].mean()) if small.any() else 1.0
    if ban_requests is not None:
        out.ban_requests = sorted(int(r) for r, t, b in zip(ban_requests, truth, banned, strict=True) if t and b)
    if session is not None:
        said = np.asarray(session, dtype=float) >= 0.5
        out.session_accuracy = float((said == truth).mean()) if truth.size else 1.0
        out.session_recall = float(said[truth].mean()) if truth.any() else 1.0
        out.session_false_bans = int((said & ~truth).sum())
    return out


@dataclass
class Judgement:
    """What a model decided on labelled lines: per line, its truth, the line model's label,
    its label source and client; per client, its truth and the verdict."""

    classes: list[str]
    truth: np.ndarray
    predicted: np.ndarray
    sources: np.ndarray
    clients: np.ndarray
    client_truth: dict[str, bool]
    verdicts: dict[str, Any]
    sessions: dict[str, float] | None = None  # P(bad) of each client's whole visit, ruled on once

    @classmethod
    def pool(cls, parts: Sequence[Judgement]) -> Judgement:
        """Several judgements (folds) as one."""
        join = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        sessions = {k: v for p in parts for k, v in (p.sessions or {}).items()}
        return cls(parts[0].classes, join("truth"), join("predicted"), join("sources"), join("clients"),
                   {k: v for p in parts for k, v in p.client_truth.items()},
                   {k: v for p in parts for k, v in p.verdicts.items()}, sessions or None)  # fmt: skip

    def report(self, pooled: bool = False) -> Report:
        """Lines judged as an operator sees them: bad when the line model says so **or** the
        client is banned (``Report.line_only`` has the line model alone), per label source (or
        in one section ``"all"`` when ``pooled``); and ban precision and recall over clients."""
        truth = np.char.startswith(self.sources, "truth")
        by_source = {"ground truth": truth, "rule-labelled": self.sources == "rules"}
        sections = {"all": np.ones(len(self.truth), dtype=bool)} if pooled else by_source
        line_only = evaluate(self.classes, self.truth, self.predicted, sections)
        if not self.verdicts:
            return line_only
        banned = np.array([self.verdicts[c].ban if c in self.verdicts else False for c in self.clients], dtype=bool)
        report = evaluate(self.classes, self.truth, np.where(banned, "bad", self.predicted), sections)
        report.line_only = line_only
        keys = sorted(self.client_truth)
        verdicts = [self.verdicts[k] for k in keys]
        report.clients = client_metrics([self.client_truth[k] for k in keys], [v.ban for v in verdicts],
                                        [v.requests for v in verdicts], [v.ban_request for v in verdicts],
                                        [self.sessions[k] for k in keys] if self.sessions else None)  # fmt: skip
        return report
