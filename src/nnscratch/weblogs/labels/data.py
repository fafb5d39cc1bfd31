"""Labelled log lines and the split by client.

``LabelledLines`` gathers parsed lines with labels from class files, label
files and/or the rule set, remembering where each label came from: ``truth:file`` (a class file),
``truth:line`` (a per-line label file), ``truth:session`` (a per-session label
file: it says who the *client* was, not what each request was) or ``rules``.
Metrics are reported separately for ground truth and rules, because a model
trained on rule labels mostly re-learns the rules. ``split_by_client`` keeps
every client (IP, or session id where the log has one) on one side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..lines.reading import ParseStats, parse_stream
from ..lines.record import LogRecord
from .rules import RuleLabeler, read_label_file

__all__ = ["LabelledLines", "split_by_client"]


@dataclass
class LabelledLines:
    """Parsed lines, their labels (None: unknown), the label source and file."""

    records: list[LogRecord] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    stats: ParseStats = field(default_factory=ParseStats)

    def add_file(self, path: str, label: str | None = None, source: str = "truth:file") -> None:
        """Every line of ``path`` with one label (or unknown, to be filled in)."""
        for _, number, record in parse_stream([path], self.stats):
            self.records.append(record)
            self.labels.append(label)
            self.sources.append(source)
            self.files.append(str(path))
            self.numbers.append(number)

    @classmethod
    def gather(
        cls, *, good: Sequence[str] = (), bad: Sequence[str] = (), gray: Sequence[str] = (), logs: Sequence[str] = (),
        label_files: Sequence[str] = (), rules: RuleLabeler | None = None, gray_as: str = "gray",
        unknown_agent: str | None = None,
    ) -> LabelledLines:  # fmt: skip
        """Class files, then label files (which override class files, and may say
        ``unknown``), then rules for what no file labels; then ``gray_as``.

        Parameters
        ----------
        good, bad, gray : paths
            Files whose every line has that label.
        logs : paths
            Files labelled by ``label_files`` and/or ``rules``.
        label_files : paths
            Per-session or per-line TSV files (see ``labels.read_label_file``).
            Lines of a file that a session file covers but does not label (its
            ``-`` sessions) stay unknown: rules do not fill them.
        rules : RuleLabeler, optional
            Labels the lines of ``logs`` that are still unlabelled.
        gray_as : {"gray", "bad", "drop"}
            Keep gray, count it as bad, or leave it out (unknown).
        unknown_agent : str, optional
            A regular expression: lines whose user agent matches are unknown
            (e.g. the operator's browser inside a scanner's file).
        """
        if gray_as not in ("gray", "bad", "drop"):
            raise ValueError(f"gray_as must be 'gray', 'bad' or 'drop'. Received: gray_as={gray_as!r}.")
        data = cls()
        for label, paths in (("good", good), ("bad", bad), ("gray", gray)):
            for path in paths:
                data.add_file(path, label)
        start = len(data.records)
        for path in logs:
            data.add_file(path)
        settled = [lab is not None for lab in data.labels]  # no rule may relabel these
        for label_file in label_files:
            _apply_label_file(data, label_file, settled)
        if unknown_agent:
            pattern = re.compile(unknown_agent)
            for i, record in enumerate(data.records):
                if pattern.search(record.agent):
                    data.labels[i], settled[i] = None, True
        if rules is not None:
            by_file: dict[str, list[int]] = {}
            for i in range(start, len(data.records)):
                if not settled[i]:
                    by_file.setdefault(data.files[i], []).append(i)
            for indices in by_file.values():  # burst rules look at one log at a time
                for i, (label, _) in zip(indices, rules.label([data.records[i] for i in indices]), strict=True):
                    data.labels[i], data.sources[i] = label, "rules"
        if gray_as == "bad":
            data.labels = ["bad" if lab == "gray" else lab for lab in data.labels]
        elif gray_as == "drop":
            data.labels = [None if lab == "gray" else lab for lab in data.labels]
        return data

    def known(self) -> np.ndarray:
        return np.array([lab is not None for lab in self.labels])


def split_by_client(
    clients: Sequence[str], groups: Sequence[str], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> list[np.ndarray]:
    """Row indices of each part; every client lands in exactly one part.

    Within each group (a log file), clients come in a random order drawn from
    ``seed``, and each goes to the part whose share of that file's lines is
    furthest below its target: a client with most of a file's lines (a
    brute-forcer with 68% of them) overfills one part, and the clients after it
    still fill the others.
    """
    rng = np.random.default_rng(seed)
    shares = np.asarray(fractions, dtype=float) / np.sum(fractions)
    parts: list[list[int]] = [[] for _ in fractions]
    by_group: dict[str, dict[str, list[int]]] = {}
    for i, (client, group) in enumerate(zip(clients, groups, strict=True)):
        by_group.setdefault(group, {}).setdefault(client, []).append(i)
    for group in sorted(by_group):
        members = by_group[group]
        names = sorted(members)
        order = [names[k] for k in rng.permutation(len(names))]
        total = sum(len(v) for v in members.values())
        filled = np.zeros(len(parts))
        for name in order:
            rows = members[name]
            part = int(np.argmax(shares * total - filled))
            parts[part].extend(rows)
            filled[part] += len(rows)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def _apply_label_file(data: LabelledLines, path: str, settled: list[bool]) -> None:
    """The labels of one label file over ``data``'s lines; ``settled`` marks what it decided."""
    kind, mapping, covered = read_label_file(path)
    for i, record in enumerate(data.records):
        name = Path(data.files[i]).name
        key = record.session if kind == "session" else (name, data.numbers[i])
        if key in mapping:
            data.labels[i], data.sources[i], settled[i] = mapping[key], f"truth:{kind}", True
        elif kind == "session" and name in covered:
            data.labels[i], settled[i] = None, True
