"""Labels for log lines: good, bad or gray (or unknown).

Three sources, as the classic design and the shared data offer:

* **class files**: every line of a file is good, bad or gray (``--good``,
  ``--bad``, ``--gray``);
* **label files**: a TSV with a ``session_id`` and ``label`` column (one label
  per session; lines without a session are unknown) or with ``file``, ``line``
  and ``label`` columns (one label per line). ``human`` means good;
  ``*bot*`` means bad;
* **rules** (``RuleLabeler``): a documented, configurable rule set, to bootstrap
  labels for logs without ground truth. Heuristic labels are not ground truth:
  a model trained on them mostly re-learns the rules.

Rule order follows the shared data's README: per line, the first matching rule
wins (R1c malformed request, R1b unusual method, R1a attack or probe target,
R2a attack-tool user agent, R2b aggressive SEO/AI crawler, R4 missing user
agent, R3 declared crawler or monitor, R4 scripted client, R0 good); then the
burst rules R5 (a client with >= 20 4xx answers within 10 minutes: those lines
become bad) and R6 (>= 300 requests within 10 minutes) apply to every line not
already bad. Patterns are case-insensitive and matched against the raw target
and its twice URL-decoded form.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..evidence.vocabulary import (
    ATTACK_AGENTS,
    ATTACK_TARGETS,
    CRAWLER_AGENTS,
    MONITOR_AGENTS,
    SCRIPT_AGENTS,
    SEO_AGENTS,
    UNUSUAL_METHODS,
    decode_twice,
)
from ..lines.reading import read_text
from ..lines.record import LogRecord, client_of

__all__ = ["CLASSES", "RuleLabeler", "read_label_file", "normalise_label"]

CLASSES = ("good", "gray", "bad")


def normalise_label(text: str) -> str | None:
    """Map a label as written in a file to good/gray/bad (None: unknown)."""
    t = text.strip().lower()
    if t in ("good", "human", "benign", "normal", "0"):
        return "good"
    if t in ("bad", "bot", "malicious", "attack", "1") or "bot" in t:
        return "bad"
    if t in ("gray", "grey", "suspicious", "captcha"):
        return "gray"
    return None


def read_label_file(path: str | Path) -> tuple[str, dict, set[str]]:
    """``("session", {session_id: label}, files)`` or ``("line", {(file_name, line): label}, files)``.

    ``files`` names the log files the label file covers (its ``file`` column,
    if it has one): in those files, a line the label file does not label is
    *unknown*, and rules do not label it either. A label of ``unknown`` (or
    anything not recognised) marks a line or session unknown on purpose.
    """
    rows = list(csv.DictReader(io.StringIO(read_text(path, "label file"), newline=""), delimiter="\t"))
    if not rows:
        raise ValueError(f"{path} has no rows.")
    columns = set(rows[0])
    files = {Path(r["file"]).name for r in rows if r.get("file")} if "file" in columns else set()
    if {"session_id", "label"} <= columns:
        return "session", {r["session_id"]: normalise_label(r["label"]) for r in rows}, files
    if {"file", "line", "label"} <= columns:
        return "line", {(Path(r["file"]).name, int(r["line"])): normalise_label(r["label"]) for r in rows}, files
    raise ValueError(f"{path}: expected columns session_id+label or file+line+label; found {sorted(columns)}.")


def session_splits(path: str | Path) -> dict[str, str]:
    """``{session_id: label_source}`` of a per-session label file that has a ``label_source``
    column (e.g. the Web Bot data's ``annotation_train``); empty when it has none."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["session_id"]: r["label_source"] for r in rows if r.get("session_id") and r.get("label_source")}


def _any(words: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(words), re.IGNORECASE)


def _prefix(words: Sequence[str]) -> re.Pattern[str]:
    return re.compile("^(?:" + "|".join(words) + ")", re.IGNORECASE)


@dataclass
class RuleLabeler:
    """The rule set, with its thresholds as settings.

    ``gray`` decides what gray lines become: ``"gray"`` (a class of its own) or
    ``"bad"`` (the two-class setting).
    """

    burst_4xx: int = 20
    burst_requests: int = 300
    window: float = 600.0
    seo_is_bad: bool = True
    gray: str = "gray"
    attack_targets: re.Pattern[str] = field(default_factory=lambda: _any(ATTACK_TARGETS), repr=False)
    attack_agents: re.Pattern[str] = field(default_factory=lambda: _any(ATTACK_AGENTS), repr=False)
    seo_agents: re.Pattern[str] = field(default_factory=lambda: _any(SEO_AGENTS), repr=False)
    crawler_agents: re.Pattern[str] = field(default_factory=lambda: _any(CRAWLER_AGENTS + MONITOR_AGENTS),
                                            repr=False)  # fmt: skip
    script_agents: re.Pattern[str] = field(default_factory=lambda: _prefix(SCRIPT_AGENTS), repr=False)

    def line_rule(self, r: LogRecord) -> tuple[str, str]:
        """``(label, rule)`` from the per-line rules."""
        request = r.request
        if request in ("", "-"):
            return ("gray", "R4c") if r.status == 408 else ("bad", "R1c")
        if not r.request_ok or "\\x" in request:
            return "bad", "R1c"
        if r.method.upper() in UNUSUAL_METHODS:
            return "bad", "R1b"
        target = r.target
        decoded = decode_twice(target)
        if self.attack_targets.search(target) or self.attack_targets.search(decoded):
            return "bad", "R1a"
        agent = r.agent
        if self.attack_agents.search(agent):
            return "bad", "R2a"
        if self.seo_agents.search(agent):
            return ("bad" if self.seo_is_bad else "gray"), "R2b"
        if agent in ("", "-"):
            return "gray", "R4"
        if self.crawler_agents.search(agent):
            return "gray", "R3"
        if self.script_agents.search(agent):
            return "gray", "R4s"
        return "good", "R0"

    def label(self, records: Iterable[LogRecord]) -> list[tuple[str, str]]:
        """``(label, rule)`` for every record (in order), burst rules included."""
        records = list(records)
        # A line's own rules read its request, status and user agent only: floods repeat them.
        seen: dict[tuple[str, int, str], tuple[str, str]] = {}
        out = []
        for r in records:
            key = (r.request, r.status, r.agent)
            answer = seen.get(key)
            if answer is None:
                answer = self.line_rule(r)
                if len(seen) < 200_000:
                    seen[key] = answer
            out.append(answer)
        order = sorted(range(len(records)), key=lambda i: records[i].time)
        for rule, limit, pick in (("R5", self.burst_4xx, lambda r: 400 <= r.status < 500),
                                  ("R6", self.burst_requests, lambda r: True)):  # fmt: skip
            # Per client, its lines in the last ``window`` seconds and how many of the oldest of
            # them are already marked: each line is marked once, so a flood of 200,000 lines
            # costs linear time, not a rescan of its window per line.
            windows: dict[str, tuple[deque, list[int]]] = {}
            for i in order:
                r = records[i]
                if not pick(r):
                    continue
                queue, marked = windows.setdefault(client_of(r), (deque(), [0]))
                queue.append(i)
                while records[queue[0]].time < r.time - self.window:
                    queue.popleft()
                    marked[0] = max(marked[0] - 1, 0)
                if len(queue) >= limit:
                    for j in itertools.islice(reversed(queue), len(queue) - marked[0]):
                        if out[j][0] != "bad":
                            out[j] = ("bad", rule)
                    marked[0] = len(queue)
        if self.gray == "bad":
            out = [("bad", rule) if label == "gray" else (label, rule) for label, rule in out]
        return out
