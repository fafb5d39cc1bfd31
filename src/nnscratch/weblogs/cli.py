"""``nnscratch logs``: label, train, classify and evaluate web-log bot detectors."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["add_logs_parser"]

EPILOG = """examples:
  nnscratch logs label access.log -o labels.tsv
  nnscratch logs train --bad scanner.log --good humans.log --no-user-agent --behaviour -o bots.safetensors
  nnscratch logs train webbot_*.log --labels webbot_session_labels_dev.tsv --bad scanner.log --gray-as bad
  nnscratch logs train access.log --rules --jobs 2 --restarts 4
  nnscratch logs classify bots.safetensors access.log.gz -o labels.csv --ban-list banned.txt --ban-json banned.json
  zcat huge.log.gz | nnscratch logs classify bots.safetensors - --format jsonl > labels.jsonl
  nnscratch logs evaluate bots.safetensors access.log --rules
"""


def _data(args: argparse.Namespace) -> Any:
    from .data import LabelledLines
    from .labels import RuleLabeler

    rules = RuleLabeler(gray="gray") if args.rules else None
    if not (args.good or args.bad or args.gray or args.logs):
        raise ValueError("give log files: --good/--bad/--gray FILE, or LOG files with --labels FILE and/or --rules.")
    if args.logs and not (args.labels or args.rules):
        raise ValueError("LOG files need labels: add --labels FILE (per line or per session) or --rules.")
    return LabelledLines.gather(good=args.good, bad=args.bad, gray=args.gray, logs=args.logs,
                                label_files=args.labels, rules=rules, gray_as=args.gray_as)  # fmt: skip


def cmd_label(args: argparse.Namespace) -> int:
    """Apply the rule set to logs and write a per-line label file (TSV)."""
    from .labels import RuleLabeler
    from .parse import ParseStats, parse_stream

    labeler = RuleLabeler(gray=args.gray_as if args.gray_as != "drop" else "gray", burst_4xx=args.burst_4xx,
                          burst_requests=args.burst_requests, window=args.window * 60)  # fmt: skip
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    counts: Counter = Counter()
    stats = ParseStats()
    try:
        out.write("file\tline\tlabel\trule\n")
        for path in args.logs:
            items = list(parse_stream([path], stats))
            for (_, number, _), (label, rule) in zip(items, labeler.label([r for _, _, r in items]), strict=True):
                out.write(f"{Path(path).name}\t{number}\t{label}\t{rule}\n")
                counts[(label, rule)] += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(stats.summary(), file=sys.stderr)
    for (label, rule), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(f"  {rule:<4} {label:<5} {n:>8,}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train several networks on labelled logs (split by client), keep the best, report test metrics."""
    from .model import WebLogModel

    data = _data(args)
    print(data.stats.summary())
    labelled = Counter(label for label in data.labels if label is not None)
    print("labels: " + ", ".join(f"{k} {v:,}" for k, v in sorted(labelled.items())))
    model, report, info = WebLogModel.train(
        data, user_agent=not args.no_user_agent, behaviour=args.behaviour, hashing=args.hashing,
        min_count=args.min_count, max_features=args.max_features, svd=args.svd, hidden=args.hidden, epochs=args.epochs,
        learning_rate=args.lr, restarts=args.restarts, n_jobs=args.jobs, backend="dask" if args.dask else "loky",
        scheduler=args.dask, seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    print(info["selection"])
    reduced = f" -> {info['inputs']} SVD components" if info["inputs"] != info["features"] else ""
    print(f"{info['features']:,} features{reduced}, {info['hidden']} hidden units; lines train/validation/test "
          f"{info['lines']['train']:,}/{info['lines']['validation']:,}/{info['lines']['test']:,} "
          f"from {info['clients']['train']}/{info['clients']['validation']}/{info['clients']['test']} clients; "
          f"feature cache hit rate {info['cache_hit_rate']:.1%}")  # fmt: skip
    print("Test metrics:")
    print(report.format())
    model.save(args.output)
    print(f"Model saved to {args.output}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    """Label every line (CSV or JSON lines) and list clients with >= N bad requests within X minutes."""
    from .classify import ClientTally, classify
    from .model import WebLogModel
    from .parse import ParseStats

    model = WebLogModel.load(args.model)
    tally = ClientTally(args.ban_threshold, args.ban_minutes)
    stats = ParseStats()
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    start = time.perf_counter()
    try:
        n, counts = classify(model, args.logs, out, args.format, tally, stats=stats)
    finally:
        if out is not sys.stdout:
            out.close()
    seconds = time.perf_counter() - start
    banned = tally.banned()
    if args.ban_list:
        Path(args.ban_list).write_text("".join(row["client"] + "\n" for row in banned))
    if args.ban_json:
        Path(args.ban_json).write_text(json.dumps(banned, indent=2))
    report = sys.stderr
    print(stats.summary(), file=report)
    print(f"{n:,} lines in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f} lines/s; feature cache hit rate "
          f"{model.featurizer.cache_hit_rate:.1%}); "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())), file=report)  # fmt: skip
    print(f"{len(banned)} client(s) with >= {args.ban_threshold} bad requests within {args.ban_minutes:g} minutes"
          + (f" -> {args.ban_list}" if args.ban_list else ""), file=report)  # fmt: skip
    for row in banned[:10]:
        print(f"  {row['client']}: {row['bad_in_window']} bad in window, {row['bad_total']} bad of {row['requests']}",
              file=report)  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a saved model on labelled logs (every labelled line is test data)."""
    import numpy as np

    from .model import WebLogModel, evaluate

    model = WebLogModel.load(args.model)
    data = _data(args)
    keep = np.flatnonzero(data.known())
    records = [data.records[i] for i in keep]
    tokens = WebLogModel.token_lists(model.featurizer, records, [data.files[i] for i in keep])
    proba = model.network.predict(model.inputs(model.featurizer.transform(tokens)))
    predicted = np.array(model.classes)[proba.argmax(axis=1)]
    truth = np.array([data.labels[i] for i in keep])
    unknown = sorted(set(truth) - set(model.classes))
    if unknown:
        raise ValueError(f"the labels include {unknown}, which the model does not know (it has {model.classes}).")
    sources = np.array([data.sources[i] for i in keep])
    report = evaluate(model.classes, truth, predicted,
                      {"ground truth": sources == "truth", "rule-labelled": sources == "rules"})  # fmt: skip
    print(report.format())
    return 0


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("logs", nargs="*", help="log files labelled by --labels and/or --rules (gzip is fine)")
    p.add_argument("--good", nargs="+", default=[], metavar="FILE", help="files whose every line is good")
    p.add_argument("--bad", nargs="+", default=[], metavar="FILE", help="files whose every line is bad")
    p.add_argument("--gray", nargs="+", default=[], metavar="FILE", help="files whose every line is gray")
    p.add_argument("--labels", nargs="+", default=[], metavar="TSV", help="per-line or per-session label files")
    p.add_argument("--rules", action="store_true", help="label what is still unlabelled with the rule set")
    p.add_argument("--gray-as", choices=["gray", "bad", "drop"], default="gray", help="keep gray, map it, or drop it")


def add_logs_parser(sub: Any, parser_class: Any, formatter: Any) -> None:
    from ..cli import positive_float, positive_int

    logs = sub.add_parser("logs", help="bot detection on web-server access logs", description=__doc__,
                          formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    commands = logs.add_subparsers(dest="logs_command", metavar="COMMAND", required=True, parser_class=parser_class)

    p = commands.add_parser("label", help="apply the rule set, write a label file", description=cmd_label.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("logs", nargs="+")
    p.add_argument("-o", "--output", help="TSV to write (default: standard output)")
    p.add_argument("--gray-as", choices=["gray", "bad", "drop"], default="gray")
    p.add_argument("--burst-4xx", type=positive_int, default=20, help="R5: 4xx answers per client per window")
    p.add_argument("--burst-requests", type=positive_int, default=300, help="R6: requests per client per window")
    p.add_argument("--window", type=positive_float, default=10.0, help="burst window in minutes")
    p.set_defaults(func=cmd_label)

    p = commands.add_parser("train", help="train and keep the best of several networks", description=cmd_train.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    _label_options(p)
    p.add_argument("-o", "--output", default="weblogs.safetensors", help="model file to write")
    p.add_argument("--no-user-agent", action="store_true", help="leave user-agent tokens out")
    p.add_argument("--behaviour", action="store_true", help="add per-client sliding-window behaviour tokens")
    p.add_argument("--hashing", type=positive_int, help="hash tokens into N columns instead of a vocabulary")
    p.add_argument("--min-count", type=positive_int, default=2)
    p.add_argument("--max-features", type=positive_int, default=50_000)
    p.add_argument("--svd", type=positive_int, metavar="K", help="reduce the features to K truncated-SVD components")
    p.add_argument("--hidden", type=positive_int, help="hidden units (default: twice the inputs, at most 256)")
    p.add_argument("--epochs", type=positive_int, default=15)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--restarts", type=positive_int, default=3, help="networks to train; the best on validation wins")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--dask", metavar="ADDRESS", help="train on a Dask scheduler, or 'local'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("classify", help="label lines, list clients to ban", description=cmd_classify.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("model")
    p.add_argument("logs", nargs="+", help="log files (gzip is fine), or - for standard input")
    p.add_argument("-o", "--output", help="per-line labels (default: standard output)")
    p.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    p.add_argument("--ban-threshold", type=positive_int, default=10, help="N: bad requests that get a client banned")
    p.add_argument("--ban-minutes", type=positive_float, default=10.0, help="X: ... within this many minutes")
    p.add_argument("--ban-list", help="write banned clients here, one per line")
    p.add_argument("--ban-json", help="write banned clients with counts and time spans as JSON")
    p.set_defaults(func=cmd_classify)

    p = commands.add_parser("evaluate", help="metrics of a model on labelled logs", description=cmd_evaluate.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("model")
    _label_options(p)
    p.set_defaults(func=cmd_evaluate)
