"""One decision procedure: classify, evaluate and the live watcher ban the same clients at the same requests."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.watch_helpers import lines_done

from nnscratch.cli import main
from nnscratch.weblogs.features.counts import ClientBook
from nnscratch.weblogs.features.featurizer import Featurizer
from nnscratch.weblogs.features.points import JudgementPoints
from nnscratch.weblogs.features.summary import FEATURES
from nnscratch.weblogs.labels.data import LabelledLines
from nnscratch.weblogs.lines.formats.combined import parse_line
from nnscratch.weblogs.lines.reading import parse_stream
from nnscratch.weblogs.lines.record import client_of
from nnscratch.weblogs.model.weblog import WebLogModel, prepare
from nnscratch.weblogs.serve.decision import Decider

FILES = (
    "scanner_w3af_2016-12-22.log",
    "secrepo_access_2021-10-22.log",
    "webbot_humans_2019-10-28.log",
    "almhuette_2019-10-14_16.log",
)


def _shuffled_within_a_minute(source: Path, target: Path, seed: int = 0) -> None:
    rows = source.read_text(errors="replace").splitlines()
    rng = random.Random(seed)
    keyed = [(int(parse_line(r).time // 60), rng.random(), r) for r in rows]
    target.write_text("".join(r + "\n" for _, _, r in sorted(keyed)))


def _watch(model: Path, log: Path, state: Path, *extra: str) -> subprocess.Popen:
    # --batch 250: the watcher reads in other pieces than classify's chunks
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model), str(log), "--state", str(state),
               "--from-start", "--dry-run", "--ban-private", "--batch", "250", "--poll", "0.05",
               "--status-every", "1000", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _watcher_bans(state: Path) -> set[tuple[str, int, float]]:
    """Each client's first 'would ban' (a client back after going idle is judged afresh and
    may be reported again; classify's ban list keeps each client's first ban)."""
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT address, detail FROM decisions WHERE action = 'dry-run: would ban' "
                          "ORDER BY id").fetchall()  # fmt: skip
    first: dict[str, tuple[str, int, float]] = {}
    for address, d in rows:
        first.setdefault(address, (address, json.loads(d)["request"], json.loads(d)["log_time"]))
    return set(first.values())


def _classify_bans(model: Path, log: Path, tmp_path: Path) -> set[tuple[str, int, float]]:
    bans = tmp_path / f"{log.stem}.bans.json"
    assert main(["logs", "classify", str(model), str(log), "-o", str(tmp_path / "lines.csv"),
                 "--ban-json", str(bans)]) == 0  # fmt: skip
    return {(b["client"], b["ban_request"], b["ban_time"]) for b in json.loads(bans.read_text())}


def test_watch_from_start_bans_exactly_what_classify_bans(watch_model, logs, tmp_path):
    """On shared files, in order and shuffled within a minute: the same clients, at the same
    request and log time, through the real CLI of both (the watcher as its own process)."""
    logs_to_check = [logs / name for name in FILES]
    for name in (FILES[0], FILES[3]):
        shuffled = tmp_path / f"shuffled-{name}"
        _shuffled_within_a_minute(logs / name, shuffled)
        logs_to_check.append(shuffled)
    watchers = {log: _watch(watch_model, log, tmp_path / f"{log.name}.sqlite") for log in logs_to_check}
    try:
        expected = {log: _classify_bans(watch_model, log, tmp_path) for log in logs_to_check}
        for log, proc in watchers.items():
            n = len(log.read_bytes().splitlines())
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and lines_done(tmp_path / f"{log.name}.sqlite") < n:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            assert lines_done(tmp_path / f"{log.name}.sqlite") == n
    finally:
        for proc in watchers.values():
            if proc.poll() is None:
                proc.kill()
    for log in logs_to_check:
        assert _watcher_bans(tmp_path / f"{log.name}.sqlite") == expected[log], log.name
    scan = expected[logs / FILES[0]]
    assert {"192.168.4.163", "192.168.1.20"} <= {client for client, _, _ in scan}  # not vacuous
    assert len(expected[tmp_path / f"shuffled-{FILES[3]}"]) >= 1
    for log, bans in expected.items():  # min_evidence holds: under 5 requests, only with exploit evidence
        early = {client: request for client, request, _ in bans if request < 5}
        assert all(_exploit_among_first(log, client, request) for client, request in early.items()), log.name


def _exploit_among_first(log: Path, client: str, n: int) -> bool:
    featurizer, seen = Featurizer(), 0
    for _, _, r in parse_stream([log]):
        if client_of(r) == client and seen < n:
            seen += 1
            if featurizer.tokens_and_facts(r)[1].exploit:
                return True
    return False


def test_evaluate_rules_where_classify_rules(watch_model, logs):
    """``evaluate`` and ``crossval`` replay a file with the same judgement points: the same
    clients banned at the same requests as ``classify``."""
    from nnscratch.weblogs.serve.classify import ClassifySettings, classify, verdict_rows

    model = WebLogModel.load(watch_model)
    for name in FILES:
        verdicts = []
        classify(model, [str(logs / name)], None, on_verdict=verdicts.append, settings=ClassifySettings(workers=0))
        streamed = {(r["client"], r["ban_request"], r["ban_time"]) for r in verdict_rows(verdicts)}
        data = LabelledLines.gather(logs=[str(logs / name)])
        prepared = prepare(Featurizer.from_config(model.featurizer.get_config()), data)
        replayed = model.client_verdicts(prepared, sorted(prepared.summaries))
        assert {(k.split("|", 1)[1], v.ban_request, v.ban_time) for k, v in replayed.items() if v.ban} == streamed


def test_rulings_do_not_depend_on_how_lines_are_cut(watch_model, logs):
    """Fed one line at a time or in chunks of any size, the held lines released at the end at
    once or 50 at a time, the decider makes the same rulings, also when lines come later than
    the slack (every 40th line logged 400 s late here): the same clients at the same requests
    and times, the same bans, and P(bad) to float32's precision (BLAS may sum a row of a matrix
    product in an order that depends on how many rows are ruled at once, which moves the last
    bits of P(bad))."""
    model = WebLogModel.load(watch_model)
    items = [((src, n), r._replace(time=r.time - 400 * (n % 40 == 0)))
             for src, n, r in parse_stream([logs / "secrepo_access_2021-10-22.log"])]  # fmt: skip
    results = []
    for size in (1, 7, 100, len(items)):
        decider = Decider(model)
        rulings, order = [], []
        for start in range(0, len(items) + 1, size):
            decided = decider.feed(items[start : start + size], end=start + size > len(items))
            rulings += decided.rulings
            order += [key for key, _ in decided.items]
        results.append((order, [(r.client, r.request, r.time, r.ban) for r in rulings],
                        np.array([r.probability for r in rulings])))  # fmt: skip
    decider, rulings, order = Decider(model), [], []  # the end's release cut into pieces of 50 held lines
    for decided in [decider.feed(items)] + [decider.feed([], end=True, most=50) for _ in range(len(items) // 50 + 2)]:
        rulings += decided.rulings
        order += [key for key, _ in decided.items]
    assert not decider.holding
    results.append((order, [(r.client, r.request, r.time, r.ban) for r in rulings],
                    np.array([r.probability for r in rulings])))  # fmt: skip
    assert len(results[0][0]) == len(items) and results[0][1]
    for order, rulings, probability in results[1:]:  # the order the context sees, and every ruling
        assert order == results[0][0] and rulings == results[0][1]
        np.testing.assert_allclose(probability, results[0][2], rtol=0, atol=1e-6)


def test_judgement_points_are_the_log_seconds_a_client_was_active():
    from tests.test_weblogs import record

    points = JudgementPoints(ClientBook(), minimum=2)
    facts = Featurizer().tokens_and_facts(record("/"))[1]
    for t, host in [(0, "a"), (0, "a"), (0, "b"), (1, "a"), (5, "b"), (5, "b")]:
        assert points.add(record("/", host=host, t=t), facts).client == host
    taken = points.take()[0] + points.flush()
    # a: judged after second 0 (2 requests) and 1 (3); b: 1 request at 0 (too few), 3 at 5.
    start = record("/", t=0).time
    assert [(s.client, s.request, s.time - start) for s in taken] == [("a", 2, 0), ("a", 3, 1), ("b", 3, 5)]
    assert ClientBook.summarise([s.counts for s in taken]).shape == (3, len(FEATURES))


@pytest.mark.parametrize("gap", [1799.0, 1801.0])
def test_an_idle_client_starts_a_new_visit_whenever_memory_is_freed(gap):
    from tests.test_weblogs import record

    facts = Featurizer().tokens_and_facts(record("/"))[1]
    kept, freed = ClientBook(), ClientBook()
    for book, free in ((kept, False), (freed, True)):
        book.add(record("/", host="a", t=0), facts)
        if free:
            list(book.finished(gap))
        book.add(record("/", host="a", t=int(gap)), facts)
    assert kept.clients["a"].n == freed.clients["a"].n == (2 if gap < 1800 else 1)


def test_a_client_summary_worked_by_hand():
    """Requests at 0, 0, 10 and 30 s, one of them a 404: every figure by hand."""
    from tests.test_weblogs import record

    f, book = Featurizer(), ClientBook()
    for t, status in ((0, 200), (0, 200), (10, 404), (30, 200)):
        r = record(f"/page{t}", status=status, t=t)
        book.add(r, f.tokens_and_facts(r)[1])
    x = dict(zip(FEATURES, ClientBook.features(next(iter(book.clients.values()))), strict=True))
    # gaps 0, 10, 20: mean 10, variance (0 + 100 + 400) / 3 - 100 = 200 / 3, so cv = sqrt(200 / 3) / 10
    assert x["gap_cv"] == pytest.approx((200 / 3) ** 0.5 / 10, abs=1e-12)
    assert x["same_second_share"] == pytest.approx(1 / 3) and x["share_4xx"] == 0.25
    assert x["log_requests"] == pytest.approx(np.log(5)) and x["log_duration"] == pytest.approx(np.log(31))
    assert x["log_rate_per_minute"] == pytest.approx(np.log1p(4 / 90 * 60))  # 4 requests over 30 s + 60 s
    assert x["distinct_path_share"] == 0.75 and x["agent_browser"] == 1.0


def test_a_library_call_leaves_the_callers_collector_alone(watch_model, logs):
    """The streaming thresholds are set in processes of nnscratch's own (the worker, the
    commands), never by a library call in the caller's process."""
    import gc

    from nnscratch.cli import main
    from nnscratch.weblogs.serve.classify import ClassifySettings, classify
    from nnscratch.weblogs.serve.decision import STREAM_GC_THRESHOLDS

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's defaults, whatever earlier tests did
        model = WebLogModel.load(watch_model)
        n, _ = classify(model, [str(logs / FILES[1])], None, settings=ClassifySettings(workers=1))
        assert n == 644 and gc.get_threshold() == (700, 10, 10) != STREAM_GC_THRESHOLDS
        assert main(["logs", "classify", str(watch_model), str(logs / FILES[1]), "-o", os.devnull]) == 0
        assert gc.get_threshold() == (700, 10, 10)  # the command set them while it ran, then put them back
    finally:
        gc.set_threshold(*before)


def test_ipv6_prefix_judges_and_bans_a_network_alike_in_classify_and_watch(watch_model, logs, tmp_path, capsys):
    """Issue 26: with --ipv6-prefix 64 a scanner that takes a new address of its /64 for every
    other request is one client, banned as the network by classify and by the watcher (same
    request, same log time) and handed to the actions as a range; IPv4 clients and IPv4
    addresses seen through an IPv6 socket stay one address each."""
    from tests.watch_helpers import human_lines, scanner_lines

    scan = scanner_lines(logs, 120)
    rotating = [f"2001:db8:7:9::{i // 2 + 1:x}" + line[line.index(" ") :] for i, line in enumerate(scan)]
    people = human_lines(40, host="2001:db8:aa:1::20") + human_lines(40, host="::ffff:198.51.100.21")
    log = tmp_path / "access.log"
    log.write_text("".join(line + "\n" for line in rotating + people))

    def classified(*extra: str) -> set[tuple[str, int, float]]:
        bans = tmp_path / "bans.json"
        assert main(["logs", "classify", str(watch_model), str(log), "-o", os.devnull, "--ban-json", str(bans),
                     *extra]) == 0  # fmt: skip
        return {(b["client"], b["ban_request"], b["ban_time"]) for b in json.loads(bans.read_text())}

    by_address, by_network = classified(), classified("--ipv6-prefix", "64")
    assert {client for client, _, _ in by_network} == {"2001:db8:7:9::/64"}
    assert all(request <= 2 for _, request, _ in by_address)  # each address alone made two requests
    state, ban_list = tmp_path / "state.sqlite", tmp_path / "ban.txt"
    proc = _watch(watch_model, log, state, "--ipv6-prefix", "64")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and lines_done(state) < len(rotating + people):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert _watcher_bans(state) == by_network
    assert main(["logs", "why", "2001:db8:7:9::3a", "--state", str(state)]) == 0
    assert "2001:db8:7:9::3a is judged as a part of 2001:db8:7:9::/64 (--ipv6-prefix 64)" in capsys.readouterr().out
    acting = [sys.executable, "-m", "nnscratch", "logs", "watch", str(watch_model), str(log), "--from-start",
              "--state", str(tmp_path / "acting.sqlite"), "--ban-list", str(ban_list), "--ipv6-prefix", "64",
              "--ban-private", "--poll", "0.05", "--status-every", "1000"]  # fmt: skip
    proc = subprocess.Popen(acting, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (ban_list.exists() and ban_list.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0 and ban_list.read_text() == "2001:db8:7:9::/64\n"
    for bad in ("0", "129", "sixty-four"):
        with pytest.raises(SystemExit):
            main(["logs", "classify", str(watch_model), str(log), "--ipv6-prefix", bad])
        assert "--ipv6-prefix takes a prefix length from 1 to 128" in capsys.readouterr().err
