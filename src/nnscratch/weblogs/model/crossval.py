"""Honest evaluation: leave-one-source-out, session folds, renamed sites, several seeds.

A detector is meant for sites it has never seen, so it is measured that way:

* **leave-one-source-out**: for each source (a site, or one scanner run), train
  on every other source and test on this one;
* **folds** within a source that asks for them (``"folds": k`` in the
  manifest): its clients are dealt into k folds; each fold is tested by a
  model trained on the other folds *and* every other source;
* **renamed site**: the left-out source again, with its path names and
  referrer hosts rewritten by a consistent random mapping (query strings and
  anything carrying a payload untouched), to show whether the model learned
  the site's words;
* **seeds**: everything above for several seeds, reported as the mean and the
  spread (largest minus smallest).

Sources and their labels come from a manifest (JSON), e.g.
``examples/shared_logs.json`` for the shared sample::

    {"gray_as": "bad", "sources": [
      {"name": "w3af", "bad": ["scanner.log"], "unknown_agent": "Firefox/"},
      {"name": "webbot", "logs": ["humans.log", "bots.log"], "labels": ["sessions.tsv"], "folds": 5},
      {"name": "elastic", "logs": ["elastic.log"], "rules": true}]}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..features.featurizer import Featurizer
from ..labels.data import LabelledLines, split_by_client
from ..labels.rules import CLASSES, RuleLabeler
from ..lines.reading import LogPath, read_text
from ..lines.record import LogRecord
from .metrics import Judgement, Report
from .weblog import Prepared, TrainSettings, WebLogModel, prepare

__all__ = ["Source", "read_manifest", "load_sources", "rename_site", "crossval", "format_markdown"]

_SOURCE_KEYS = {"name", "good", "bad", "gray", "logs", "labels", "rules", "unknown_agent", "folds", "format", "note",
                "paper_split"}  # fmt: skip


@dataclass
class Source:
    """One source of a manifest: its files and how they are labelled."""

    name: str
    good: list[str]
    bad: list[str]
    gray: list[str]
    logs: list[str]
    labels: list[str]
    rules: bool = False
    unknown_agent: str | None = None
    folds: int = 0
    paper_split: str | None = None  # the label_source of the paper's train split: its protocol runs on those


def default_root() -> Path | None:
    """``$NNSCRATCH_DATA/logs``, where the shared sample lives, if the variable is set."""
    data = os.environ.get("NNSCRATCH_DATA")
    return Path(data) / "logs" if data else None


def read_manifest(path: str | Path, root: str | Path | None = None, log_format: str = "auto",
                  ipv6_prefix: int | None = None) -> tuple[list[Source], str]:  # fmt: skip
    """The sources of a manifest with paths made absolute against ``root``, and its ``gray_as``.

    ``root`` defaults to ``$NNSCRATCH_DATA/logs``, then the manifest's folder. A source's
    logs are read in its ``"format"`` (a name from ``lines.formats``), else ``log_format``
    (``auto``: detected from each file's first lines), their IPv6 clients named by
    ``ipv6_prefix`` (``lines.record.by_ipv6_prefix``).
    """
    path = Path(path)
    try:
        manifest = json.loads(read_text(path, "manifest"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), list) or not manifest["sources"]:
        raise ValueError(f"{path}: expected an object with a non-empty list 'sources'.")
    base = Path(root) if root is not None else default_root() or path.parent
    sources = []
    for i, item in enumerate(manifest["sources"]):
        unknown = set(item) - _SOURCE_KEYS if isinstance(item, dict) else set()
        if not isinstance(item, dict) or "name" not in item or unknown:
            raise ValueError(f"{path}: source {i} must be an object with a 'name' and only the keys "
                             f"{sorted(_SOURCE_KEYS)}. Received: {item!r}.")  # fmt: skip
        try:
            fmt = item.get("format", log_format)
            files = {key: [str(base / f) if key == "labels" else LogPath(base / f, fmt, ipv6_prefix)
                         for f in item.get(key, [])]
                     for key in ("good", "bad", "gray", "logs", "labels")}  # fmt: skip
        except ValueError as err:
            raise ValueError(f"{path}: source {item['name']!r}: {err}") from None
        if not any(files[key] for key in ("good", "bad", "gray", "logs")):
            raise ValueError(f"{path}: source {item['name']!r} names no log file (give it 'logs', 'good', 'bad' or "
                             "'gray').")  # fmt: skip
        for name in (f for key in files for f in files[key]):
            if not Path(name).is_file():
                raise FileNotFoundError(f"{path}: source {item['name']!r} names {name}, which does not exist "
                                        f"(files are relative to --root, here {base}).")  # fmt: skip
        sources.append(Source(item["name"], **files, rules=bool(item.get("rules")),
                              unknown_agent=item.get("unknown_agent"), folds=int(item.get("folds", 0)),
                              paper_split=item.get("paper_split")))  # fmt: skip
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: source names must differ. Received: {names}.")
    return sources, manifest.get("gray_as", "gray")


def load_sources(sources: Sequence[Source], gray_as: str = "gray") -> tuple[LabelledLines, np.ndarray]:
    """Every source's lines, labelled as the manifest says, and each line's source name."""
    data = LabelledLines()
    names: list[str] = []
    for source in sources:
        part = LabelledLines.gather(
            good=source.good, bad=source.bad, gray=source.gray, logs=source.logs, label_files=source.labels,
            rules=RuleLabeler() if source.rules else None, gray_as=gray_as, unknown_agent=source.unknown_agent,
        )  # fmt: skip
        for name in ("records", "labels", "sources", "files", "numbers"):
            getattr(data, name).extend(getattr(part, name))
        data.stats.merge(part.stats)
        names += [source.name] * len(part.records)
    return data, np.array(names)


def _renamer(seed: int) -> Any:
    rng = random.Random(seed)
    mapping: dict[str, str] = {}

    def word(text: str) -> str:
        if text not in mapping:
            mapping[text] = "".join(rng.choice(string.ascii_lowercase) for _ in range(max(len(text), 3)))
        return mapping[text]

    def segment(seg: str) -> str:
        stem, dot, ext = seg.rpartition(".") if "." in seg[1:] else (seg, "", "")
        if not stem.replace("-", "").replace("_", "").isalnum() or stem.isdigit():
            return seg  # numbers, encodings and payloads stay as they are
        return word(stem.lower()) + dot + ext

    def path(p: str) -> str:
        return "/".join(segment(s) if s else s for s in p.split("/"))

    return word, path


def rename_site(records: Sequence[LogRecord], seed: int = 0) -> list[LogRecord]:
    """The records with path segments and referrer hosts rewritten by one random mapping.

    A word is always mapped to the same random word, so the site keeps its
    structure (which pages exist, which link to which); extensions, numbers,
    query strings and segments with anything but letters, digits, ``-`` and
    ``_`` (payloads, encodings) stay as they are.
    """
    word, path = _renamer(seed)
    out = []
    for r in records:
        if r.request_ok:
            target_path, q, query = r.target.partition("?")
            target = path(target_path) + q + query
            request = f"{r.method} {target}" + (f" {r.version}" if r.version else "")
            r = r._replace(target=target, request=request)
        scheme, sep, rest = r.referrer.partition("://")
        if sep:
            host, slash, ref_path = rest.partition("/")
            ref_path, q, query = ref_path.partition("?")
            new_host = ".".join(word(part) if not part.isdigit() else part for part in host.split("."))
            r = r._replace(referrer=f"{scheme}://{new_host}{slash}{path(ref_path)}{q}{query}")
        out.append(r)
    return out


def _split_train(prepared: Prepared, rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows into fit and validation parts (85/15), by client."""
    rows = rows[[prepared.data.labels[i] is not None for i in rows]]
    fit, val = split_by_client(list(prepared.clients[rows]), [prepared.data.files[i] for i in rows], (0.85, 0.15),
                               seed)  # fmt: skip
    return rows[fit], rows[val]


def _fold_of(clients: np.ndarray, k: int, seed: int) -> np.ndarray:
    names = sorted(set(clients))
    order = np.random.default_rng(seed).permutation(len(names))
    fold = {names[j]: n % k for n, j in enumerate(order)}
    return np.array([fold[c] for c in clients])


def _result(judgement: Judgement) -> dict[str, Any]:
    """A run's figures (``_line_result``) and, for the stability figure, the whole-visit P(bad)
    of each client with at least 20 requests and whether it was banned."""
    out = _line_result(judgement.report(pooled=True))
    sessions = judgement.sessions or {}
    out["p_bad"] = {
        k: (p, judgement.verdicts[k].ban) for k, p in sessions.items() if judgement.verdicts[k].requests >= 20
    }
    return out


def _line_result(report: Report) -> dict[str, Any]:
    (section,) = report.sections.values()
    bad = section.per_class["bad"]
    out = {"lines": section.n, "precision": bad.precision, "recall": bad.recall, "f1": bad.f1,
           "fpr": section.fpr_bad}  # fmt: skip
    if report.line_only is not None:
        (alone,) = report.line_only.sections.values()
        out.update(line_model_recall=alone.per_class["bad"].recall, line_model_fpr=alone.fpr_bad)
    if report.clients:
        c = report.clients
        out.update(clients=c.n, bad_clients=c.bad, ban_precision=c.precision, ban_recall=c.recall,
                   false_bans=c.false_bans, good_clients=c.n - c.bad, small_banned=c.small_banned,
                   small_precision=c.small_precision)  # fmt: skip
        if c.ban_requests:
            out.update(ban_request_median=float(np.median(c.ban_requests)), ban_request_max=c.ban_requests[-1])
        if c.session_accuracy is not None:
            out.update(session_accuracy=c.session_accuracy, session_recall=c.session_recall,
                       session_false_bans=c.session_false_bans)  # fmt: skip
    return out


def crossval(
    sources: Sequence[Source], *, gray_as: str = "bad", seeds: Sequence[int] = (0, 1, 2),
    featurizer_settings: dict[str, Any] | None = None, rename: bool = True, progress: Any = None,
    settings: TrainSettings | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Leave-one-source-out (and folds, and renamed sites) for each seed.

    ``settings`` train every model (default: one restart, 10 epochs; the seed is each run's).
    With ``settings.backend`` ``"dask"`` (``settings.scheduler``: a scheduler's address, or
    ``"local"`` for a local cluster of ``settings.n_jobs`` workers) each file is prepared and
    each (seed, left-out source) run on a worker of its own, with the same figures.
    Returns ``{"runs": [{seed, protocol, source, renamed, lines, precision, recall, f1, fpr,
    clients, ban_precision, ban_recall, false_bans, ...}], "settings": ...}``.
    """
    featurizer_settings = dict(featurizer_settings or {})
    settings = settings or TrainSettings(restarts=1, epochs=10)
    fit_settings = {"restarts": settings.restarts, "epochs": settings.epochs}
    data, names = load_sources(sources, gray_as)
    data.stats.check_readable()  # a log cut short would be measured as if it were whole
    work = [(seed, source) for seed in seeds for source in sources]
    with contextlib.ExitStack() as stack:
        client = None
        if settings.backend == "dask":
            from ...selection import dask_session

            client = stack.enter_context(dask_session(settings.scheduler, settings.n_jobs))
            settings = dataclasses.replace(settings, backend="loky", n_jobs=1, scheduler=None)  # each run in its task
        prepared = prepare(Featurizer(**featurizer_settings), data, client)
        classes = [c for c in CLASSES if c in {label for label in data.labels if label is not None}]
        renamed = {source.name: _renamed(data, np.flatnonzero(names == source.name), featurizer_settings)
                   for source in sources if rename}  # fmt: skip
        study = _Study(prepared, names, classes, settings, featurizer_settings, renamed)
        if client is not None:
            results = _on_cluster(study, work, client, progress)
        else:
            results = [study.runs(seed, source, progress) for seed, source in work]
    return {"runs": [run for runs in results for run in runs],
            "settings": {"featurizer": featurizer_settings, "fit": fit_settings, "gray_as": gray_as,
                         "seeds": list(seeds)}}  # fmt: skip


@dataclass
class _Study:
    """What every run of one ``crossval`` reads: the prepared sources, each line's source name,
    the classes, how to train, and each source renamed (empty: no renamed runs)."""

    prepared: Prepared
    names: np.ndarray
    classes: list[str]
    settings: TrainSettings
    featurizer_settings: dict[str, Any]
    renamed: dict[str, Prepared]

    def fit(self, train_rows: np.ndarray, seed: int) -> WebLogModel:
        fit_rows, val_rows = _split_train(self.prepared, train_rows, seed)
        featurizer, settings = Featurizer(**self.featurizer_settings), dataclasses.replace(self.settings, seed=seed)
        model, _ = WebLogModel.fit(self.prepared, fit_rows, val_rows, featurizer=featurizer, classes=self.classes,
                                   settings=settings)  # fmt: skip
        return model

    def runs(self, seed: int, source: Source, progress: Any = None) -> list[dict[str, Any]]:
        """The runs that leave ``source`` out with ``seed``: the left-out source (and renamed),
        its folds and the paper's protocol where the manifest asks for them."""
        prepared, names = self.prepared, self.names
        test = np.flatnonzero(names == source.name)
        if progress:
            progress(f"seed {seed}: leave out {source.name}")
        head = {"seed": seed, "protocol": "leave-one-source-out", "source": source.name, "renamed": False}
        try:
            model = self.fit(np.flatnonzero(names != source.name), seed)
        except ValueError as err:  # e.g. the other sources hold one class only
            return [{**head, "lines": len(test), "error": str(err)}]
        out = [{**head, **_result(model.judge(prepared, test))}]
        if source.name in self.renamed:
            judgement = model.judge(self.renamed[source.name], np.arange(len(test)))
            out.append({**head, "renamed": True, **_result(judgement)})
        if source.folds:
            out.append(_folds(prepared, names, source, seed, self.fit, progress))
        if source.paper_split:
            out.append(_folds(prepared, names, source, seed, self.fit, progress, _paper_rows(prepared, names, source)))
        return out


def _study_runs(study: _Study, seed: int, source: Source) -> list[dict[str, Any]]:
    return study.runs(seed, source)


def _on_cluster(study: _Study, work: list[tuple[int, Source]], client: Any,
                progress: Any) -> list[list[dict[str, Any]]]:  # fmt: skip
    """``study.runs`` for each ``(seed, source)`` of ``work``, one Dask task each, in order."""
    from distributed import as_completed

    shared = client.scatter(study, broadcast=True)
    tasks = [client.submit(_study_runs, shared, seed, source, pure=False) for seed, source in work]
    where = {task.key: (seed, source.name) for task, (seed, source) in zip(tasks, work, strict=True)}
    for task in as_completed(tasks):
        if progress:
            seed, name = where[task.key]
            progress(f"seed {seed}: {name} done{'' if task.status == 'finished' else ' (' + task.status + ')'}")
    return client.gather(tasks)


def _renamed(data: LabelledLines, rows: np.ndarray, featurizer_settings: dict[str, Any]) -> Prepared:
    """The lines ``rows`` with their site renamed (``rename_site``), prepared for judging."""
    renamed = LabelledLines(rename_site([data.records[i] for i in rows], seed=1234), [data.labels[i] for i in rows],
                            [data.sources[i] for i in rows], [data.files[i] for i in rows],
                            [data.numbers[i] for i in rows])  # fmt: skip
    return prepare(Featurizer(**featurizer_settings), renamed)


def _paper_rows(prepared: Prepared, names: np.ndarray, source: Source) -> np.ndarray:
    """The rows of ``source`` whose session is in the paper's train split (``paper_split``)."""
    from ..labels.rules import session_splits

    split = {s for path in source.labels for s, kind in session_splits(path).items() if kind == source.paper_split}
    return np.array([i for i in np.flatnonzero(names == source.name) if prepared.data.records[i].session in split],
                    dtype=np.int64)  # fmt: skip


def _folds(prepared: Prepared, names: np.ndarray, source: Source, seed: int, fit: Any, progress: Any,
           paper: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """k-fold by client within ``source``, the other sources always in training; pooled metrics.
    With ``paper`` (rows of the paper's train split), the paper's protocol: folds over those
    sessions only (5 if the source asks for none), the rest of the source left out."""
    inside = np.flatnonzero(names == source.name) if paper is None else paper
    k_folds = source.folds or 5
    fold = _fold_of(prepared.clients[inside], k_folds, seed)
    parts = []
    for k in range(k_folds):
        if progress:
            progress(f"seed {seed}: {source.name} {'paper protocol ' if paper is not None else ''}fold {k + 1} of "
                     f"{k_folds}")  # fmt: skip
        model = fit(np.concatenate([np.flatnonzero(names != source.name), inside[fold != k]]), seed)
        parts.append(model.judge(prepared, inside[fold == k]))
    protocol = (f"{k_folds}-fold by client" if paper is None else
                f"paper: {source.paper_split} sessions, {k_folds}-fold by session")  # fmt: skip
    return {"seed": seed, "protocol": protocol, "source": source.name, "renamed": False,
            **_result(Judgement.pool(parts))}  # fmt: skip


FIGURES = (
    "precision", "recall", "f1", "fpr", "ban_precision", "ban_recall", "false_bans", "line_model_recall",
    "line_model_fpr", "small_banned", "small_precision", "ban_request_median", "ban_request_max",
    "session_accuracy", "session_recall", "session_false_bans",
)  # fmt: skip


def _stability(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How far seeds move the verdicts on clients with at least 20 requests: the largest spread
    of a client's whole-visit P(bad), and how many of them are banned in some seeds, not all."""
    per_client: dict[str, list[tuple[float, bool]]] = {}
    for m in members:
        for client, value in m.get("p_bad", {}).items():
            per_client.setdefault(client, []).append(tuple(value))
    shared = [v for v in per_client.values() if len(v) == len(members)]
    if len(members) < 2 or not shared:
        return {}
    return {"p_spread_20": max(max(p for p, _ in v) - min(p for p, _ in v) for v in shared),
            "ban_flips_20": sum(len({b for _, b in v}) > 1 for v in shared)}  # fmt: skip


def summarise(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, source, renamed): each figure's mean and spread over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["protocol"], run["source"], run["renamed"]), []).append(run)
    rows = []
    for (protocol, source, renamed), members in groups.items():
        row: dict[str, Any] = {"protocol": protocol, "source": source, "renamed": renamed,
                               "lines": members[0]["lines"], "seeds": len(members)}  # fmt: skip
        errors = sorted({m["error"] for m in members if "error" in m})
        if errors:
            row["error"] = "; ".join(errors)
        for figure in ("clients", "bad_clients", "good_clients"):
            if figure in members[0]:
                row[figure] = members[0][figure]
        for figure in FIGURES:
            values = [m[figure] for m in members if figure in m]
            if values:
                row[figure] = (float(np.mean(values)), float(np.max(values) - np.min(values)))
        row.update(_stability(members))
        rows.append(row)
    return rows


def _number(value: float | None) -> str:
    """A figure of the tables, or nothing where there is none (one seed: no spread)."""
    return "" if value is None else f"{value:.3f}"


def format_markdown(result: dict[str, Any]) -> str:
    """The cross-validation tables as Markdown (means over seeds, spread in brackets): the line
    and ban figures, then the bans in time (clients of 1-4 requests, the request number of the
    bans) and the whole-session rulings of the Web Bot paper's protocol."""
    rows = summarise(result["runs"])

    def cell(row: dict[str, Any], figure: str, digits: int = 3) -> str:
        if figure not in row:
            return ""
        mean, spread = row[figure]
        return f"{mean:.{digits}f} ({spread:.{digits}f})"

    def name(row: dict[str, Any]) -> str:
        return f"| {row['protocol']} | {row['source']} | {'renamed' if row['renamed'] else 'as is'} |"

    out = [
        "| protocol | source | site | lines | precision | recall | F1 | FPR | clients bad/good | ban precision | "
        "ban recall | good clients banned |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            out.append(f"{name(row)} {row['lines']:,} | {row['error']} |  |  |  |  |  |  |  |")
            continue
        clients = f"{row.get('bad_clients', 0)}/{row.get('good_clients', 0)}"
        out.append(f"{name(row)} {row['lines']:,} | {cell(row, 'precision')} | {cell(row, 'recall')} | "
                   f"{cell(row, 'f1')} | {cell(row, 'fpr')} | {clients} | {cell(row, 'ban_precision')} | "
                   f"{cell(row, 'ban_recall')} | {cell(row, 'false_bans', 1)} |")  # fmt: skip
    out += [
        "", "| protocol | source | site | clients of 1-4 requests banned | their ban precision | bad clients banned "
        "at request (median) | (latest) | whole sessions: accuracy | bad found | good said bad | seeds move "
        "P(bad) of clients of 20+ requests by at most | banned in some seeds only |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for row in rows:
        if "error" not in row:
            out.append(f"{name(row)} {cell(row, 'small_banned', 1)} | {cell(row, 'small_precision')} | "
                       f"{cell(row, 'ban_request_median', 1)} | {cell(row, 'ban_request_max', 1)} | "
                       f"{cell(row, 'session_accuracy')} | {cell(row, 'session_recall')} | "
                       f"{cell(row, 'session_false_bans', 1)} | {_number(row.get('p_spread_20'))} | "
                       f"{row.get('ban_flips_20', '')} |")  # fmt: skip
    settings = result["settings"]
    features = settings["featurizer"] or "defaults"
    out.append("")
    out.append(f"Seeds {settings['seeds']}; each figure is the mean over seeds, the spread (largest minus smallest) "
               f"in brackets. Gray counted as {settings['gray_as']}. Bans are counted the watcher's way: a client "
               "is banned if any of its judgements bans it. Whole sessions: each client's whole visit ruled on once "
               f"at P(bad) 0.5, as the Web Bot paper classifies sessions. Features: {features}; "
               f"fit: {settings['fit']}.")  # fmt: skip
    return "\n".join(out)
