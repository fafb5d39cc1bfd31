"""``nnscratch logs``: label, train, classify, evaluate and cross-validate web-log bot detectors."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..features.families import ablation, add_family_options, default_settings, family_settings

__all__ = ["add_logs_parser"]

EPILOG = """examples:
  nnscratch logs train --manifest examples/shared_logs.json -o bots.safetensors
  nnscratch logs crossval --manifest examples/shared_logs.json --seeds 0 1 2 --markdown docs/weblogs-crossval.md
  nnscratch logs label access.log -o labels.tsv
  nnscratch logs train --bad scanner.log --good humans.log -o bots.safetensors
  nnscratch logs train webbot_*.log --labels webbot_session_labels_dev.tsv --bad scanner.log --gray-as bad
  nnscratch logs train access.log --rules --jobs 2 --restarts 4
  nnscratch logs classify bots.safetensors access.log.gz -o labels.csv --ban-list banned.txt --ban-json banned.json
  zcat huge.log.gz | nnscratch logs classify bots.safetensors - --format jsonl > labels.jsonl
  nnscratch logs evaluate bots.safetensors access.log --rules
"""


WATCH_EPILOG = """examples:
  nnscratch logs watch bots.safetensors /var/log/nginx/access.log --nginx /etc/nginx/nnscratch-deny.conf \\
      --nginx-reload 'nginx -s reload' --state /var/lib/nnscratch/watch.sqlite
  nnscratch logs watch bots.safetensors access.log --nft --nft-apply --ban-time 3600 --allowlist allow.txt
  nnscratch logs watch bots.safetensors access.log --dry-run --from-start
  nnscratch logs watch bots.safetensors --journal nginx.service --ipv6-prefix 64 --nft-apply
  nnscratch logs bans --state /var/lib/nnscratch/watch.sqlite
  nnscratch logs bans --unban 203.0.113.7
  nnscratch logs why 203.0.113.7
"""


def _data(args: argparse.Namespace) -> Any:
    from ..labels.data import LabelledLines
    from ..labels.rules import RuleLabeler

    _with_format(args)
    if args.manifest:
        from ..model.crossval import load_sources, read_manifest

        if args.good or args.bad or args.gray or args.logs or args.labels or args.rules:
            raise ValueError("--manifest names the files and their labels; give it alone, without LOG files, "
                             "--good/--bad/--gray, --labels or --rules.")  # fmt: skip
        sources, gray_as = read_manifest(args.manifest, args.root, args.format, args.ipv6_prefix)
        data, _ = load_sources(sources, args.gray_as or gray_as)
        data.stats.check_readable()
        data.stats.check_parsed()
        return data
    if not (args.good or args.bad or args.gray or args.logs):
        raise ValueError("give log files: --manifest FILE, --good/--bad/--gray FILE, or LOG files with --labels "
                         "FILE and/or --rules.")  # fmt: skip
    if args.logs and not (args.labels or args.rules):
        raise ValueError("LOG files need labels: add --labels FILE (per line or per session) or --rules.")
    data = LabelledLines.gather(good=args.good, bad=args.bad, gray=args.gray, logs=args.logs,
                                label_files=args.labels, rules=RuleLabeler() if args.rules else None,
                                gray_as=args.gray_as or "gray", unknown_agent=args.unknown_agent)  # fmt: skip
    data.stats.check_readable()
    data.stats.check_parsed()
    return data


def _needs_weblogs_extra() -> None:
    """Refuse, before any file is read or written, a command whose model needs the extra
    ``weblogs`` (SciPy's sparse matrices, scikit-learn) when it is not installed."""
    from ...extras import require_installed

    require_installed("scipy.sparse", "weblogs")
    require_installed("sklearn", "weblogs")  # imported where it is used (training, the metrics)


def cmd_label(args: argparse.Namespace) -> int:
    """Apply the rule set to logs and write a per-line label file (TSV)."""
    from ..labels.rules import RuleLabeler
    from ..lines.reading import ParseStats, parse_stream

    _with_format(args)
    if args.output:  # before a line is read: -o over a log would empty it
        from ...cli.args import check_writable, written_by_us

        check_writable(args.output, "-o", inputs=args.logs, force=args.force, example="labels.tsv",
                       ours=written_by_us("file\tline\tlabel\t"))  # fmt: skip
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
                if label == "gray" and args.gray_as == "drop":
                    counts[("dropped", rule)] += 1
                    continue
                out.write(f"{Path(path).name}\t{number}\t{label}\t{rule}\n")
                counts[(label, rule)] += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(stats.summary(), file=sys.stderr)
    for (label, rule), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(f"  {rule:<4} {label:<7} {n:>8,}", file=sys.stderr)
    return _unreadable_exit(stats)


def _unreadable_exit(stats: Any) -> int:
    """0, or 1 after one error line per log that was cut short (its readable lines were processed),
    or after saying that almost none of the lines parsed (``ParseStats.check_parsed``)."""
    for problem in stats.unreadable:
        print(f"error: {problem}", file=sys.stderr)
    try:
        stats.check_parsed()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 1 if stats.unreadable else 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the line model (several networks, the best kept) and the client model on labelled logs
    (split by client), and report test metrics."""
    _needs_weblogs_extra()
    from ...cli.args import check_writable
    from ..features.featurizer import Featurizer
    from ..model.weblog import TrainSettings, WebLogModel

    inputs = [*args.logs, *args.good, *args.bad, *args.gray, *args.labels, args.manifest]
    # Before the work, so a trained model is never lost to a bad path.
    check_writable(args.output, "-o", model=True, inputs=inputs, force=args.force)
    data = _data(args)
    print(data.stats.summary())
    labelled = Counter(label for label in data.labels if label is not None)
    print("labels: " + ", ".join(f"{k} {v:,}" for k, v in sorted(labelled.items())))
    featurizer = Featurizer(**family_settings(args), hashing=args.hashing, min_count=args.min_count,
                            max_features=args.max_features)  # fmt: skip
    settings = TrainSettings(
        svd=args.svd, hidden=args.hidden, epochs=args.epochs, learning_rate=args.lr, restarts=args.restarts,
        n_jobs=args.jobs, backend="dask" if args.scheduler else "loky", scheduler=args.scheduler, seed=args.seed,
        progress=not args.quiet, line_threshold=args.line_threshold, ban_threshold=args.ban_threshold,
        min_evidence=args.min_evidence, members=args.members, target_rate=args.target_rate,
    )  # fmt: skip
    model, report, info = WebLogModel.train(data, featurizer=featurizer, settings=settings)
    print(info["selection"])
    reduced = f" -> {info['inputs']} SVD components" if info["inputs"] != info["features"] else ""
    print(f"{info['features']:,} features{reduced}, {info['hidden']} hidden units; lines train/validation/test "
          f"{info['lines']['train']:,}/{info['lines']['validation']:,}/{info['lines']['test']:,} "
          f"from {info['clients']['train']}/{info['clients']['validation']}/{info['clients']['test']} clients; "
          f"feature cache hit rate {info['cache_hit_rate']:.1%}")  # fmt: skip
    print(f"client model: {model.client_model!r}" if model.client_model else
          "client model: none (no bad and not-bad clients to learn from); bans need --ban-rule count")  # fmt: skip
    print("Test metrics:")
    print(report.format())
    model.save(args.output)
    print(f"Model saved to {args.output}")
    return 0


def _load_model(args: argparse.Namespace) -> Any:
    from ..model.weblog import WebLogModel

    model = WebLogModel.load(args.model)
    if args.line_threshold is not None:
        model.line_threshold = args.line_threshold
    if model.client_model is not None:
        if args.ban_threshold is not None:
            model.client_model.threshold = args.ban_threshold
        if args.min_evidence is not None:
            model.client_model.min_evidence = args.min_evidence
    return model


def cmd_classify(args: argparse.Namespace) -> int:
    """Label every line (CSV or JSON lines) and judge every client: the ban list."""
    _needs_weblogs_extra()
    from ..serve.decision import collector_for_streams

    _with_format(args)
    if _on_cluster(args):
        if args.ban_rule == "count" or "-" in args.logs:
            raise ValueError("--scheduler and --jobs run on a Dask cluster, which needs log files (not -) and the "
                             "client model (not --ban-rule count); leave them out for this run.")  # fmt: skip
    with collector_for_streams():  # the collector as streaming wants it, while the command runs
        return _classify(args)


def _on_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on Dask (``--scheduler``, or ``--jobs`` above 1); if so, the
    extra it needs is checked now, before anything is read or written."""
    if not (args.scheduler or args.jobs != 1):
        return False
    from ...extras import require

    require("distributed", "dask")
    return True


def _is_ban_line(line: str) -> bool:
    """A line of a ban list: an address or a network (or nothing)."""
    try:
        ipaddress.ip_network(line.strip(), strict=False)
    except ValueError:
        return not line.strip()
    return True


def _written_by_classify(option: str) -> Any:
    from ...cli.args import written_by_us

    if option == "--ban-list":
        return written_by_us(lines=_is_ban_line)
    starts = {"-o": ("file,line,client,time,label", '{"file": '), "--ban-json": ("[",),
              "--ban-csv": ("client,ban_request,",)}  # fmt: skip
    return written_by_us(*starts[option])


def _classify(args: argparse.Namespace) -> int:
    from ...cli.args import check_writable
    from ..lines.reading import ParseStats
    from ..serve.classify import ClassifySettings, ClientTally, classify, verdict_rows

    outputs = (("-o", args.output, "lines.csv"), ("--ban-list", args.ban_list, "bans.txt"),
               ("--ban-json", args.ban_json, "bans.json"), ("--ban-csv", args.ban_csv, "bans.csv"))  # fmt: skip
    for option, out, name in outputs:
        if out not in (None, "-"):  # never over a log or the model, nor over a file this command did not write
            check_writable(out, option, inputs=[args.model, *args.logs], example=name, force=args.force,
                           ours=_written_by_classify(option))  # fmt: skip
    model = _load_model(args)
    tally = ClientTally(args.ban_count, args.ban_minutes) if args.ban_rule == "count" else None
    if tally is None and model.client_model is None:
        raise ValueError(f"{args.model} has no client model (it was trained without bad clients); "
                         "use --ban-rule count.")  # fmt: skip
    verdicts: list = []  # the banning ones: a busy log has far more visits than bans
    clients: set[str] = set()
    visits = 0

    def keep(verdict: Any) -> None:
        nonlocal visits
        visits += 1
        clients.add(verdict.client)
        if verdict.ban:
            verdicts.append(verdict)

    stats = ParseStats()
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    start = time.perf_counter()
    try:
        settings = ClassifySettings(output_format=args.output_format, tally=tally, scheduler=args.scheduler,
                                    jobs=args.jobs)  # fmt: skip
        n, counts = classify(model, args.logs, out, on_verdict=keep, stats=stats, settings=settings)
    finally:
        if out is not sys.stdout:
            out.close()
    seconds = time.perf_counter() - start
    banned = verdict_rows(verdicts)
    if args.ban_list:
        Path(args.ban_list).write_text("".join(row["client"] + "\n" for row in banned), encoding="utf-8")
    if args.ban_json:
        Path(args.ban_json).write_text(json.dumps(banned, indent=2), encoding="utf-8")
    if args.ban_csv:
        Path(args.ban_csv).write_text(_ban_csv(banned), encoding="utf-8")
    report = sys.stderr
    print(stats.summary(), file=report)
    print(f"{n:,} lines in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f} lines/s; feature cache hit rate "
          f"{model.featurizer.cache_hit_rate:.1%}); "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())), file=report)  # fmt: skip
    rule = (f">= {args.ban_count} bad lines within {args.ban_minutes:g} minutes" if tally is not None else
            f"client model, P(bad) >= {model.client_model.threshold:.3g} and evidence >= "
            f"{model.client_model.min_evidence}")  # fmt: skip
    print(f"{len(banned)} of {len(clients):,} client(s) banned ({rule}; {visits:,} visit(s) judged)"
          + (f" -> {args.ban_list}" if args.ban_list else ""), file=report)  # fmt: skip
    for row in banned[:10]:
        print(f"  {row['client']}: {row['reason']}; {row['bad_lines']} bad line(s)", file=report)
    return _unreadable_exit(stats)


def _ban_csv(banned: list[dict[str, Any]]) -> str:
    """The banned clients as CSV: when and how sure the ruling that banned each was."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["client", "ban_request", "ban_time", "ban_time_utc", "p_bad", "requests", "bad_lines", "reason"])
    for row in banned:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row["ban_time"]))
        writer.writerow([row["client"], row["ban_request"], f"{row['ban_time']:.0f}", when, f"{row['probability']:.4f}",
                         row["requests"], row["bad_lines"], row["reason"]])  # fmt: skip
    return out.getvalue()


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a saved model on labelled logs (every labelled line is test data)."""
    _needs_weblogs_extra()
    import numpy as np

    from ..model.weblog import prepare

    model = _load_model(args)
    data = _data(args)
    if not data.records:
        raise ValueError(f"the logs hold no line to evaluate on ({data.stats.summary().splitlines()[0]}): check the "
                         "files, or name their format with --format.")  # fmt: skip
    if "gray" not in model.classes and "gray" in data.labels:
        raise ValueError(f"the labels include gray lines, but {args.model} has no gray class (it was trained with "
                         "--gray-as bad or drop): pass the same --gray-as here.")  # fmt: skip
    print(model.report(prepare(model.featurizer, data), np.arange(len(data.records))).format())
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    """Leave-one-source-out, folds within sources, renamed sites, several seeds: the honest figures."""
    _needs_weblogs_extra()
    from ...cli.args import check_writable, written_by_us
    from ..model.crossval import crossval, format_markdown, read_manifest
    from ..model.weblog import TrainSettings

    for option, out, starts in (
        ("--markdown", args.markdown, "<!-- generated by: nnscratch logs crossval"),
        ("--json", args.json, "["),
    ):  # before hours of work, not after
        if out:
            check_writable(out, option, inputs=[args.manifest], force=args.force, ours=written_by_us(starts))
    sources, gray_as = read_manifest(args.manifest, args.root, args.format, args.ipv6_prefix)
    cluster = _on_cluster(args)
    fit = TrainSettings(epochs=args.epochs, restarts=args.restarts, n_jobs=args.jobs, backend="dask" if cluster else
                        "loky", scheduler=(args.scheduler or "local") if cluster else None)  # fmt: skip
    sections = []
    base = family_settings(args)
    variants = [("the chosen features" if base != default_settings() else "the default features", base)]
    if args.ablation:
        variants += ablation(base)
    results = []
    for title, settings in variants:
        start = time.perf_counter()
        progress = None if args.quiet else (lambda m, t=title: print(f"[{t}] {m}", file=sys.stderr, flush=True))
        result = crossval(sources, gray_as=args.gray_as or gray_as, seeds=args.seeds, featurizer_settings=settings,
                          rename=not args.no_rename, progress=progress, settings=fit)  # fmt: skip
        result["title"], result["seconds"] = title, time.perf_counter() - start
        results.append(result)
        sections.append(f"### {title}\n\n{format_markdown(result)}\n")
    text = "\n".join(sections)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(
            "<!-- generated by: nnscratch logs crossval " + " ".join(sys.argv[3:]) + " -->\n\n" + text,
            encoding="utf-8")  # fmt: skip
    if args.json:
        for result in results:
            for run in result["runs"]:
                run.pop("p_bad", None)
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def _checked_actions(args: argparse.Namespace) -> list:
    """The actions the options choose (at least one, unless --dry-run); an action's file is its
    own (or empty), or it is refused before any state is made."""
    from ...cli.args import check_writable, written_by_us
    from ..watch import actions

    chosen = actions.actions_from_args(args)
    if not chosen and not args.dry_run:
        raise ValueError(f"choose at least one action ({actions.action_options()}) or --dry-run.")
    for action in chosen:
        if action.writes is not None:
            check_writable(action.writes, action.options[-1], inputs=[args.model, *args.logs], force=args.force,
                           ours=written_by_us(lines=action.own_line))  # fmt: skip
    return chosen


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow live access logs (like tail -F), judge clients with the model's client verdicts, and ban
    and unban them through the chosen actions; state survives restarts."""
    _needs_weblogs_extra()
    from ..serve.decision import collector_for_streams, tune_collector_for_streams
    from ..watch import actions as a
    from ..watch.fleet import open_store
    from ..watch.journal import JOURNAL
    from ..watch.watcher import Allowlist, BanPolicy, Watcher, WatchSettings

    if not args.logs and not args.journal:
        raise ValueError("give the log files to follow (or - for standard input), or --journal UNIT for a systemd "
                         "unit's journal.")  # fmt: skip
    args.logs = [*args.logs, *(JOURNAL + unit for unit in args.journal)]
    _with_format(args)
    for path in args.logs:  # refused before any state is made; a file that does not exist yet is waited for
        if Path(path).is_dir():
            raise IsADirectoryError(21, "is a directory, not a log file (give the files inside it)", str(path))
    tune_collector_for_streams()  # this command's own process

    chosen = _checked_actions(args)
    with contextlib.ExitStack() as cleanup:  # whatever fails, the port, the lock and the file are let go
        _without_kernels(cleanup)
        metrics = None
        if args.metrics:  # listening first: a busy port is refused before any state is touched
            from ..watch.metrics import WatchMetrics

            metrics = WatchMetrics()
            cleanup.callback(metrics.serve(args.metrics).shutdown)
        policy = BanPolicy(args.ban_time, args.ban_factor, args.max_ban_time,
                           Allowlist(args.allowlist, args.allow, ban_private=args.ban_private))  # fmt: skip
        store = open_store(args.state, args.fleet_host)  # after every check that needs no state
        cleanup.callback(store.close)
        store.lock()  # one watcher per state file (per host of a fleet)
        challenge = Path(args.challenge) if args.challenge else None
        settings = WatchSettings(from_start=args.from_start, dry_run=args.dry_run, challenge=challenge,
                                 poll=args.poll, max_clients=args.max_clients, status_every=args.status_every,
                                 batch=args.batch, journalctl=args.journalctl)  # fmt: skip
        watcher = Watcher(args.model, args.logs, store, a.Actions(chosen), policy=policy, settings=settings,
                          metrics=metrics)  # fmt: skip
        client_model = watcher.model.client_model
        if args.ban_threshold is not None:
            client_model.threshold = args.ban_threshold
        if args.min_evidence is not None:
            client_model.min_evidence = args.min_evidence
        # main() called from Python leaves no handler behind
        cleanup.callback(watcher.restore_signals, watcher.install_signals())
        where = f"; metrics on {metrics.url}" if metrics is not None else ""
        print(
            f"watching {', '.join(args.logs)}; state in {args.state}; actions: "
            + (", ".join(x.name for x in chosen) or "none (dry run)")
            + where,
            file=sys.stderr,
            flush=True,
        )
        with collector_for_streams():  # the collector as streaming wants it, while the watcher runs
            watcher.run()
    print(f"stopped after {watcher.lines:,} lines in all; {len(watcher.bans)} active ban(s)", file=sys.stderr)
    return 0


def _without_kernels(cleanup: contextlib.ExitStack) -> None:
    """The watcher predicts with the NumPy reference while it runs: the fused kernels give the
    same numbers bit for bit and no measurable speed to a watcher, and their compiler (numba,
    LLVM) would keep about 60 MB in a long-running process."""
    from ... import kernels

    kernels.use_kernels(False)
    cleanup.callback(kernels.use_kernels, None)


def _existing_store(path: str) -> Any:
    """The state file of a watcher that has run (never a new, empty one), or a fleet's database."""
    from ..watch.fleet import PostgresStore, is_database_url
    from ..watch.state import Store

    if is_database_url(path):
        return PostgresStore(path)
    if Path(path).is_dir():
        raise IsADirectoryError(21, "is a folder, not a watcher's state file: give --state the file the watcher "
                                "was started with (e.g. /var/lib/nnscratch/watch.sqlite)", path)  # fmt: skip
    if not Path(path).is_file():
        raise FileNotFoundError(2, "no such state file (start 'nnscratch logs watch --state FILE' first)", path)
    return Store(path)


def cmd_bans(args: argparse.Namespace) -> int:
    """List the active bans of a watcher's state file, ban by hand (an address or a CIDR range), or
    lift bans; a running watcher applies the change through its actions within a second."""
    if args.add:
        return _ban_by_hand(args)
    store = _existing_store(args.state)
    try:
        if args.unban:
            known = {b.address for b in store.bans()}
            missing = [address for address in args.unban if address not in known]
            if missing:
                raise ValueError(f"not banned: {', '.join(missing)}. Active bans: {len(known)}; list them with "
                                 "'nnscratch logs bans'.")  # fmt: skip
            store.commit(unbans=args.unban,
                         decisions=[{"time": time.time(), "address": address, "action": "unban",
                                     "reason": "lifted by hand"} for address in args.unban])  # fmt: skip
            print(f"lifted {len(args.unban)} ban(s)")
            return 0
        bans = store.bans()
        if args.json:
            print(json.dumps([{**b.__dict__, "remaining": round(b.remaining(), 1)} for b in bans], indent=1))
            return 0
        print(f"{len(bans)} active ban(s)")
        for b in bans:
            print(f"  {b.address:<43} {b.remaining():>9,.0f} s left  offence {store.offenses(b.address)}  {b.reason}")
    finally:
        store.close()
    return 0


def _ban_by_hand(args: argparse.Namespace) -> int:
    """``logs bans --add``: each address or CIDR network banned for ``--for`` seconds, recorded
    (``logs why`` explains it) and applied by the watcher through every action it runs."""
    from ..watch.actions import ip_target
    from ..watch.state import MANUAL, Ban

    if args.unban:
        raise ValueError("--add and --unban cannot be combined: ban by hand first, lift later.")
    targets = []
    for text in args.add:
        try:
            target = ip_target(text)
        except ValueError:
            raise ValueError(f"--add takes IP addresses or CIDR networks (203.0.113.7, 203.0.113.0/24, "
                             f"2001:db8::/64). Received: {text!r}.") from None  # fmt: skip
        targets.append(str(target))
    store = _existing_store(args.state)
    now, reason = time.time(), MANUAL + (args.reason or "banned by hand")
    try:
        store.commit(bans=[Ban(t, now, now + args.for_, reason) for t in targets],
                     decisions=[{"time": now, "address": t, "action": "ban", "reason": reason,
                                 "detail": {"seconds": args.for_, "manual": True}} for t in targets])  # fmt: skip
    finally:
        store.close()
    print(f"banned {len(targets)} by hand for {args.for_:,.0f} s: {', '.join(targets)}")
    return 0


def cmd_why(args: argparse.Namespace) -> int:
    """Explain the watcher's latest decisions about one address: counts, score, what pushed it up, examples."""
    from ..lines.record import ipv6_network

    store = _existing_store(args.state)
    try:
        decisions = store.decisions(args.address, args.last)
        # A watcher with --ipv6-prefix judges an IPv6 address as part of its network.
        for prefix in range(127, 0, -1) if not decisions and ":" in args.address else ():
            network = ipv6_network(args.address, prefix)
            decisions = store.decisions(network, args.last) if network != args.address else []
            if decisions:
                print(f"{args.address} is judged as a part of {network} (--ipv6-prefix {prefix}):")
                break
    finally:
        store.close()
    if not decisions:
        print(f"no decision about {args.address} in {args.state} (it was never judged with enough requests)")
        return 1
    for d in decisions:
        detail = d["detail"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["time"]))
        p = "-" if d["probability"] is None else f"{d['probability']:.3f}"
        print(f"{when}  {d['action']}  P(bad)={p}  {d['requests']} requests  ({d['reason']})")
        if detail.get("log_time") is not None:
            at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(detail["log_time"]))
            print(f"  judged at request {detail['request']} of the visit, log time {at}")
        if detail.get("first_seen"):
            span = detail["last_seen"] - detail["first_seen"]
            bad = detail.get("bad_lines") or 0
            print(f"  window: {span:,.0f} s of log time, {bad} line(s) the line model called bad")
        for name, value, change in detail.get("pushed_up", []):
            print(f"  pushed up by {name} = {value:.3g} (P(bad) falls by {change:.3f} at the training average)")
        for example in detail.get("examples", []):
            print(f"  e.g. {example}")
    return 0


def _with_format(args: argparse.Namespace) -> None:
    """Every log file the command was given, as a ``LogPath`` carrying ``--format``."""
    from ..lines.reading import LogPath

    for name in ("logs", "good", "bad", "gray"):
        paths = getattr(args, name, None)
        if paths:
            setattr(args, name, [LogPath(path, args.format, args.ipv6_prefix) for path in paths])


def _log_format(text: str) -> str:
    from ..lines.formats import FORMATS

    if text in ("csv", "jsonl"):
        raise argparse.ArgumentTypeError(f"--format names the log format now ({', '.join(FORMATS)} or auto); "
                                         f"for per-line output as {text}, use --output-format {text}")  # fmt: skip
    if text != "auto" and text not in FORMATS:
        raise argparse.ArgumentTypeError(f"unknown log format {text!r}: choose from {', '.join(FORMATS)} or auto "
                                         "(detected from each file's first lines)")  # fmt: skip
    return text


def _ipv6_prefix(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 128:
        raise argparse.ArgumentTypeError(f"--ipv6-prefix takes a prefix length from 1 to 128 (64: one client per /64, "
                                         f"as CrowdSec groups them). Received: {text!r}")  # fmt: skip
    return value


def _format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", type=_log_format, default="auto", metavar="NAME",
                   help="the logs' format: combined (Apache/nginx, also common and the Web Bot variant), json "
                        "(nginx escape=json, Caddy, Traefik), w3c (IIS), or auto: detected from each file's "
                        "first lines (the default)")  # fmt: skip
    p.add_argument("--ipv6-prefix", type=_ipv6_prefix, metavar="N",
                   help="judge and ban IPv6 clients by their /N network (64 is usual: a device may take a new "
                        "address of its /64 for every connection); IPv4 clients stay one address each")  # fmt: skip


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("logs", nargs="*", help="log files labelled by --labels and/or --rules (gzip, bzip2, xz fine)")
    p.add_argument("--manifest", metavar="JSON", help="sources and their labels in one file "
                   "(examples/shared_logs.json: the shared sample)")  # fmt: skip
    p.add_argument("--root", metavar="DIR", help="folder the manifest's files are in (default: $NNSCRATCH_DATA/logs)")
    p.add_argument("--good", nargs="+", default=[], metavar="FILE", help="files whose every line is good")
    p.add_argument("--bad", nargs="+", default=[], metavar="FILE", help="files whose every line is bad")
    p.add_argument("--gray", nargs="+", default=[], metavar="FILE", help="files whose every line is gray")
    p.add_argument(
        "--labels",
        nargs="+",
        default=[],
        metavar="TSV",
        help="per-line or per-session label files; they override class files, 'unknown' is allowed",
    )
    p.add_argument(
        "--unknown-agent",
        metavar="REGEX",
        help="lines whose user agent matches are unknown (e.g. an operator's browser in a scan file)",
    )
    p.add_argument("--rules", action="store_true", help="label what is still unlabelled with the rule set")
    _format_option(p)
    p.add_argument("--gray-as", choices=["gray", "bad", "drop"], help="keep gray, map it, or drop it "
                   "(default: the manifest's, else gray)")  # fmt: skip


def _decision_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    from ...cli.args import positive_int
    from ..features.summary import EXPLOIT_WEIGHT

    def probability(text: str) -> float:
        value = float(text)
        if not 0.0 < value <= 1.0:
            raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text}")
        return value

    p.add_argument(
        "--line-threshold",
        type=probability,
        default=0.5 if defaults else None,
        help="a line is bad when P(bad) reaches this" + ("" if defaults else " (default: the model's)"),
    )
    p.add_argument("--ban-threshold", type=probability, default=None,
                   help="ban a client when the client model's P(bad) reaches this"
                        + (" (default: chosen by cross-fitting for --target-rate)" if defaults
                           else " (default: the model's)"))  # fmt: skip
    p.add_argument(
        "--min-evidence",
        type=positive_int,
        default=5 if defaults else None,
        help=f"... and its evidence reaches this: one per request, {EXPLOIT_WEIGHT} per request with unambiguous "
        "exploit evidence" + ("" if defaults else " (default: the model's)"),
    )
    if defaults:
        p.add_argument("--target-rate", type=probability, default=0.01,
                       help="the ban threshold is the lowest at which at most this share of each training file's "
                            "good clients would ever have been banned (held out, by cross-fitting)")  # fmt: skip
        p.add_argument(
            "--members",
            type=positive_int,
            default=5,
            help="client networks in the ensemble (the clients are dealt into as many folds, and each "
            "network is trained without one)",
        )


def add_logs_parser(sub: Any, parser_class: Any, formatter: Any) -> None:
    """``nnscratch logs``: one subcommand per ``_add_*`` below."""
    logs = sub.add_parser("logs", help="bot detection on web-server access logs", description=__doc__,
                          formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    commands = logs.add_subparsers(dest="logs_command", metavar="COMMAND", required=True, parser_class=parser_class)
    for add in (_add_label, _add_train, _add_classify, _add_evaluate, _add_watch, _add_bans, _add_why, _add_crossval):
        add(commands, formatter)


def _add_label(commands: Any, formatter: Any) -> None:
    from ...cli.args import positive_float, positive_int

    p = commands.add_parser("label", help="apply the rule set, write a label file", description=cmd_label.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("logs", nargs="+")
    p.add_argument("-o", "--output", help="TSV to write (default: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing -o that is not a label file")
    _format_option(p)
    p.add_argument(
        "--gray-as",
        choices=["gray", "bad", "drop"],
        default="gray",
        help="keep gray lines, write them as bad, or leave them out",
    )
    p.add_argument("--burst-4xx", type=positive_int, default=20, help="R5: 4xx answers per client per window")
    p.add_argument("--burst-requests", type=positive_int, default=300, help="R6: requests per client per window")
    p.add_argument("--window", type=positive_float, default=10.0, help="burst window in minutes")
    p.set_defaults(func=cmd_label)


def _add_train(commands: Any, formatter: Any) -> None:
    from ...cli.args import jobs_count, positive_float, positive_int, seed

    p = commands.add_parser("train", help="train the line and client models", description=cmd_train.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    _label_options(p)
    add_family_options(p)
    _decision_options(p, defaults=True)
    p.add_argument("-o", "--output", default="weblogs.safetensors", help="model file to write")
    p.add_argument("--force", action="store_true", help="replace -o even if it is not an nnscratch model")
    p.add_argument("--hashing", type=positive_int, help="hash tokens into N columns instead of a vocabulary")
    p.add_argument("--min-count", type=positive_int, default=2, help="tokens seen fewer times are dropped")
    p.add_argument("--max-features", type=positive_int, default=50_000, help="the most frequent tokens kept")
    p.add_argument("--svd", type=positive_int, metavar="K", help="reduce the features to K truncated-SVD components")
    p.add_argument("--hidden", type=positive_int, help="hidden units (default: twice the inputs, at most 256)")
    p.add_argument("--epochs", type=positive_int, default=15, help="passes over the training lines")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--restarts", type=positive_int, default=3, help="networks to train; the best on validation wins")
    p.add_argument("--jobs", type=jobs_count, default=1, help="parallel workers for the restarts (-1: all cores)")
    p.add_argument("--scheduler", "--dask", dest="scheduler", metavar="ADDRESS",
                   help="train the restarts on this Dask scheduler (tcp://host:8786), or 'local' for a local cluster "
                   "of --jobs workers; the model is the one-process model")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="seed of the split and the networks")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _cluster_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--scheduler`` and ``--jobs``: run ``what`` on Dask workers, with the one-process result."""
    from ...cli.args import jobs_count

    p.add_argument("--scheduler", metavar="ADDRESS", help=f"run {what} on this Dask scheduler (tcp://host:8786), "
                   "whose workers see the same files; the result is the one-process result")  # fmt: skip
    p.add_argument("--jobs", type=jobs_count, default=1, help="with N > 1 and no --scheduler, a local Dask cluster of "
                   "N worker processes on loopback (-1: one per core)")  # fmt: skip


def _add_classify(commands: Any, formatter: Any) -> None:
    from ...cli.args import positive_float, positive_int

    p = commands.add_parser("classify", help="label lines, judge clients, write the ban list",
                            description=cmd_classify.__doc__, formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("model")
    p.add_argument("logs", nargs="+", help="log files (gzip, bzip2 and xz are fine), or - for standard input")
    p.add_argument("-o", "--output", help="per-line labels (default: standard output)")
    p.add_argument("--output-format", choices=["csv", "jsonl"], default="csv", help="per-line output format")
    _format_option(p)
    _decision_options(p, defaults=False)
    p.add_argument(
        "--ban-rule",
        choices=["model", "count"],
        default="model",
        help="judge clients with the client model, or the classic 'N bad lines within X minutes'",
    )
    p.add_argument("--ban-count", type=positive_int, default=10, help="N, with --ban-rule count")
    p.add_argument("--ban-minutes", type=positive_float, default=10.0, help="X, with --ban-rule count")
    p.add_argument("--ban-list", help="write banned clients here, one per line")
    p.add_argument("--force", action="store_true", help="replace an output file this command did not write")
    p.add_argument("--ban-json", help="write banned clients with their evidence as JSON")
    p.add_argument("--ban-csv", help="write banned clients as CSV: the request number, log time and P(bad) of "
                   "the ruling that banned each")  # fmt: skip
    _cluster_options(p, "pieces of the logs and buckets of clients")
    p.set_defaults(func=cmd_classify)


def _add_evaluate(commands: Any, formatter: Any) -> None:
    p = commands.add_parser("evaluate", help="metrics of a model on labelled logs", description=cmd_evaluate.__doc__,
                            formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("model")
    _label_options(p)
    _decision_options(p, defaults=False)
    p.set_defaults(func=cmd_evaluate)


def _state_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--state", default="nnscratch-watch.sqlite", help=help)


def _add_watch(commands: Any, formatter: Any) -> None:
    from ...cli.args import positive_float, positive_int

    p = commands.add_parser("watch", help="follow live logs, ban and unban clients", description=cmd_watch.__doc__,
                            formatter_class=formatter, epilog=WATCH_EPILOG)  # fmt: skip
    p.add_argument("model")
    p.add_argument("logs", nargs="*", help="log files to follow (rotation survived), or - for standard input")
    p.add_argument("--journal", action="append", default=[], metavar="UNIT",
                   help="follow this systemd unit's journal (journalctl --unit UNIT --follow), resuming after its "
                        "last line on restart; repeat for more, in any position")  # fmt: skip
    p.add_argument(
        "--journalctl",
        default="journalctl",
        metavar="COMMAND",
        help="the journalctl to run, with options of its own (e.g. 'journalctl --directory DIR')",
    )
    _state_option(
        p,
        "SQLite state file (bans, offsets, decisions), or postgresql://... to share bans and "
        "decisions with a fleet of watchers (the extra 'fleet')",
    )
    p.add_argument(
        "--fleet-host",
        metavar="NAME",
        help="this watcher's name in a fleet's database (its positions and "
        "line counts; default: this machine's host name)",
    )
    p.add_argument("--from-start", action="store_true", help="read the files from their start (gzip, bzip2, xz too)")
    _format_option(p)
    _decision_options(p, defaults=False)
    p.add_argument("--ban-time", type=positive_float, default=600.0, help="seconds of a first ban")
    p.add_argument("--ban-factor", type=positive_float, default=2.0, help="each earlier offence multiplies it")
    p.add_argument("--max-ban-time", type=positive_float, default=7 * 86400.0, help="the longest ban, seconds")
    p.add_argument("--allowlist", metavar="FILE", help="addresses and CIDR networks never banned (SIGHUP reloads)")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR",
                   help="an address or network never banned (repeat for more; any position)")  # fmt: skip
    p.add_argument("--ban-private", action="store_true", help="also ban loopback and private addresses")
    p.add_argument("--dry-run", action="store_true", help="decide and report, act on nothing")
    p.add_argument("--force", action="store_true", help="let an action replace a file that is not its own")
    p.add_argument("--challenge", metavar="FILE", help="write gray clients here (to send to a captcha)")
    from ..watch.actions import add_action_options

    add_action_options(p)
    p.add_argument("--status-every", type=positive_float, default=60.0, help="seconds between status lines")
    p.add_argument(
        "--metrics",
        metavar="[ADDRESS:]PORT",
        help="serve Prometheus metrics here (loopback unless an address is given; the extra 'metrics')",
    )
    p.add_argument("--poll", type=positive_float, default=0.2, help="seconds between reads when idle")
    p.add_argument("--batch", type=positive_int, default=20_000, help="most lines a step reads (and commits)")
    p.add_argument(
        "--max-clients",
        type=positive_int,
        default=100_000,
        help="clients kept in memory (about 1.3 KB each); the longest-known leave first",
    )
    p.set_defaults(func=cmd_watch)


def _add_bans(commands: Any, formatter: Any) -> None:
    p = commands.add_parser("bans", help="list, add or lift a watcher's bans", description=cmd_bans.__doc__,
                            formatter_class=formatter, epilog=WATCH_EPILOG)  # fmt: skip
    _state_option(p, "the watcher's state file")
    from ...cli.args import duration

    p.add_argument("--unban", nargs="+", metavar="ADDRESS", help="lift these bans")
    p.add_argument("--add", nargs="+", metavar="ADDRESS", help="ban these addresses or CIDR networks by hand")
    p.add_argument("--for", dest="for_", type=duration, default=3600.0, metavar="DURATION",
                   help="how long a ban by hand lasts: seconds, or 90s, 10m, 1h, 2d, 1w (default 1h)")  # fmt: skip
    p.add_argument("--reason", metavar="TEXT", help="why, recorded with a ban by hand")
    p.add_argument("--json", action="store_true", help="list the bans as JSON")
    p.set_defaults(func=cmd_bans)


def _add_why(commands: Any, formatter: Any) -> None:
    from ...cli.args import positive_int

    p = commands.add_parser("why", help="explain a watcher's decisions about an address", description=cmd_why.__doc__,
                            formatter_class=formatter, epilog=WATCH_EPILOG)  # fmt: skip
    p.add_argument("address")
    _state_option(p, "the watcher's state file")
    p.add_argument("--last", type=positive_int, default=3, help="how many decisions to show")
    p.set_defaults(func=cmd_why)


def _add_crossval(commands: Any, formatter: Any) -> None:
    from ...cli.args import positive_int, seed

    p = commands.add_parser("crossval", help="leave-one-source-out, renamed sites, several seeds",
                            description=cmd_crossval.__doc__, formatter_class=formatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("--manifest", required=True, metavar="JSON", help="the sources and their labels")
    p.add_argument("--root", metavar="DIR", help="folder the manifest's files are in (default: $NNSCRATCH_DATA/logs)")
    p.add_argument("--gray-as", choices=["gray", "bad", "drop"], help="default: the manifest's")
    _format_option(p)
    add_family_options(p)
    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="every run is repeated for each")
    p.add_argument("--epochs", type=positive_int, default=10, help="line-model epochs per fit")
    p.add_argument("--restarts", type=positive_int, default=1, help="line networks per fit; the best is kept")
    p.add_argument("--no-rename", action="store_true", help="skip the renamed-site runs")
    p.add_argument("--ablation", action="store_true", help="also run with each feature family changed")
    p.add_argument("--markdown", metavar="FILE", help="write the tables here too")
    p.add_argument("--json", metavar="FILE", help="write every run's figures here")
    p.add_argument("--force", action="store_true", help="replace a --markdown or --json this command did not write")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _cluster_options(p, "each (seed, left-out source)")
    p.set_defaults(func=cmd_crossval)
