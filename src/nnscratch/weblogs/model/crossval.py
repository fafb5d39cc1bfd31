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
from ..lines.reading import LogPath
from ..lines.record import LogRecord
from .metrics import Judgement, Report
from .weblog import Prepared, TrainSettings, WebLogModel, prepare

__all__ = ["Source", "read_manifest", "load_sources", "rename_site", "crossval", "format_markdown"]

_SOURCE_KEYS = {"name", "good", "bad", "gray", "logs", "labels", "rules", "unknown_agent", "folds", "format", "note"}


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


def default_root() -> Path | None:
    """``$NNSCRATCH_DATA/logs``, where the shared sample lives, if the variable is set."""
    data = os.environ.get("NNSCRATCH_DATA")
    return Path(data) / "logs" if data else None


def read_manifest(path: str | Path, root: str | Path | None = None,
                  log_format: str = "auto") -> tuple[list[Source], str]:  # fmt: skip
    """The sources of a manifest with paths made absolute against ``root``, and its ``gray_as``.

    ``root`` defaults to ``$NNSCRATCH_DATA/logs``, then the manifest's folder. A source's
    logs are read in its ``"format"`` (a name from ``lines.formats``), else ``log_format``
    (``auto``: detected from each file's first lines).
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
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
            files = {key: [str(base / f) if key == "labels" else LogPath(base / f, fmt) for f in item.get(key, [])]
                     for key in ("good", "bad", "gray", "logs", "labels")}  # fmt: skip
        except ValueError as err:
            raise ValueError(f"{path}: source {item['name']!r}: {err}") from None
        for name in (f for key in files for f in files[key]):
            if not Path(name).is_file():
                raise FileNotFoundError(f"{path}: source {item['name']!r} names {name}, which does not exist "
                                        f"(files are relative to --root, here {base}).")  # fmt: skip
        sources.append(Source(item["name"], **files, rules=bool(item.get("rules")),
                              unknown_agent=item.get("unknown_agent"), folds=int(item.get("folds", 0))))  # fmt: skip
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
                   false_bans=c.false_bans, good_clients=c.n - c.bad)  # fmt: skip
    return out


def crossval(
    sources: Sequence[Source], *, gray_as: str = "bad", seeds: Sequence[int] = (0, 1, 2),
    featurizer_settings: dict[str, Any] | None = None, rename: bool = True, progress: Any = None,
    settings: TrainSettings | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Leave-one-source-out (and folds, and renamed sites) for each seed.

    ``settings`` train every model (default: one restart, 10 epochs; the seed is each run's).
    Returns ``{"runs": [{seed, protocol, source, renamed, lines, precision, recall,
    f1, fpr, clients, ban_precision, ban_recall, false_bans, ...}], "settings": ...}``.
    """
    featurizer_settings = dict(featurizer_settings or {})
    settings = settings or TrainSettings(restarts=1, epochs=10)
    fit_settings = {"restarts": settings.restarts, "epochs": settings.epochs}
    data, names = load_sources(sources, gray_as)
    data.stats.check_readable()  # a log cut short would be measured as if it were whole
    prepared = prepare(Featurizer(**featurizer_settings), data)
    labels = [lab for lab in data.labels if lab is not None]
    classes = [c for c in CLASSES if c in set(labels)]
    renamed_cache: dict[str, Prepared] = {}
    runs = []

    def fit(train_rows: np.ndarray, seed: int) -> WebLogModel:
        fit_rows, val_rows = _split_train(prepared, train_rows, seed)
        model, _ = WebLogModel.fit(prepared, fit_rows, val_rows, featurizer=Featurizer(**featurizer_settings),
                                   classes=classes, settings=dataclasses.replace(settings, seed=seed))  # fmt: skip
        return model

    for seed in seeds:
        for source in sources:
            test = np.flatnonzero(names == source.name)
            if progress:
                progress(f"seed {seed}: leave out {source.name}")
            try:
                model = fit(np.flatnonzero(names != source.name), seed)
            except ValueError as err:  # e.g. the other sources hold one class only
                runs.append({"seed": seed, "protocol": "leave-one-source-out", "source": source.name,
                             "renamed": False, "lines": len(test), "error": str(err)})  # fmt: skip
                continue
            runs.append({"seed": seed, "protocol": "leave-one-source-out", "source": source.name, "renamed": False,
                         **_line_result(model.judge(prepared, test).report(pooled=True))})  # fmt: skip
            if rename:
                if source.name not in renamed_cache:
                    renamed_cache[source.name] = _renamed(data, test, featurizer_settings)
                report = model.judge(renamed_cache[source.name], np.arange(len(test))).report(pooled=True)
                runs.append({"seed": seed, "protocol": "leave-one-source-out", "source": source.name,
                             "renamed": True, **_line_result(report)})  # fmt: skip
            if source.folds:
                runs.append(_folds(prepared, names, source, seed, fit, progress))
    return {"runs": runs, "settings": {"featurizer": featurizer_settings, "fit": fit_settings, "gray_as": gray_as,
                                       "seeds": list(seeds)}}  # fmt: skip


def _renamed(data: LabelledLines, rows: np.ndarray, featurizer_settings: dict[str, Any]) -> Prepared:
    """The lines ``rows`` with their site renamed (``rename_site``), prepared for judging."""
    renamed = LabelledLines(rename_site([data.records[i] for i in rows], seed=1234), [data.labels[i] for i in rows],
                            [data.sources[i] for i in rows], [data.files[i] for i in rows],
                            [data.numbers[i] for i in rows])  # fmt: skip
    return prepare(Featurizer(**featurizer_settings), renamed)


def _folds(prepared: Prepared, names: np.ndarray, source: Source, seed: int, fit: Any,
           progress: Any) -> dict[str, Any]:  # fmt: skip
    """k-fold by client within ``source``, the other sources always in training; pooled metrics."""
    inside = np.flatnonzero(names == source.name)
    fold = _fold_of(prepared.clients[inside], source.folds, seed)
    parts = []
    for k in range(source.folds):
        if progress:
            progress(f"seed {seed}: {source.name} fold {k + 1} of {source.folds}")
        model = fit(np.concatenate([np.flatnonzero(names != source.name), inside[fold != k]]), seed)
        parts.append(model.judge(prepared, inside[fold == k]))
    return {"seed": seed, "protocol": f"{source.folds}-fold by client", "source": source.name, "renamed": False,
            **_line_result(Judgement.pool(parts).report(pooled=True))}  # fmt: skip


FIGURES = (
    "precision",
    "recall",
    "f1",
    "fpr",
    "ban_precision",
    "ban_recall",
    "false_bans",
    "line_model_recall",
    "line_model_fpr",
)


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
        rows.append(row)
    return rows


def format_markdown(result: dict[str, Any]) -> str:
    """The cross-validation tables as Markdown (means over seeds, spread in brackets)."""
    rows = summarise(result["runs"])

    def cell(row: dict[str, Any], figure: str, digits: int = 3) -> str:
        if figure not in row:
            return ""
        mean, spread = row[figure]
        return f"{mean:.{digits}f} ({spread:.{digits}f})" if figure != "false_bans" else f"{mean:.1f} ({spread:.0f})"

    out = [
        "| protocol | source | site | lines | precision | recall | F1 | FPR | clients bad/good | ban precision | "
        "ban recall | good clients banned |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            out.append(f"| {row['protocol']} | {row['source']} | as is | {row['lines']:,} | {row['error']} "
                       "|  |  |  |  |  |  |  |")  # fmt: skip
            continue
        clients = f"{row.get('bad_clients', 0)}/{row.get('good_clients', 0)}"
        out.append(f"| {row['protocol']} | {row['source']} | {'renamed' if row['renamed'] else 'as is'} | "
                   f"{row['lines']:,} | {cell(row, 'precision')} | {cell(row, 'recall')} | {cell(row, 'f1')} | "
                   f"{cell(row, 'fpr')} | {clients} | {cell(row, 'ban_precision')} | {cell(row, 'ban_recall')} | "
                   f"{cell(row, 'false_bans')} |")  # fmt: skip
    settings = result["settings"]
    out.append("")
    out.append(f"Seeds {settings['seeds']}; each figure is the mean over seeds, the spread (largest minus smallest) "
               f"in brackets. Gray counted as {settings['gray_as']}. Features: {settings['featurizer'] or 'defaults'}; "
               f"fit: {settings['fit']}.")  # fmt: skip
    return "\n".join(out)
