"""The live watcher's parts: following files, the state file, actions, and the watcher itself."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from tests.watch_helpers import HUMAN, SCANNER, human_lines, scanner_lines

from nnscratch.weblogs.watch.actions import (
    Action,
    Actions,
    BanListFile,
    Change,
    CommandHook,
    CrowdsecDecisions,
    Fail2ban,
    IpsetRestore,
    JsonEvents,
    NftablesSet,
    NginxDeny,
)  # fmt: skip
from nnscratch.weblogs.watch.follow import Backfill, Follower, Position
from nnscratch.weblogs.watch.state import Ban, Store
from nnscratch.weblogs.watch.watcher import Allowlist


def test_follower_waits_for_the_file_and_for_whole_lines(tmp_path):
    path = tmp_path / "access.log"
    follower = Follower(path)
    assert follower.read() == [] and follower.position is None
    path.write_bytes(b"one\ntw")  # a file that appears later is read from its first byte
    assert follower.read() == [b"one\n"]
    with path.open("ab") as f:
        f.write(b"o\nthree\n")
    assert follower.read() == [b"two\n", b"three\n"]
    assert follower.position.offset == path.stat().st_size
    existing = Follower(path)  # an existing file is followed from its end
    existing.read()
    with path.open("ab") as f:
        f.write(b"four\n")
    assert existing.read() == [b"four\n"] and Follower(path, from_start=True).read()[0] == b"one\n"


def test_follower_survives_rename_and_copytruncate_rotation(tmp_path):
    path = tmp_path / "access.log"
    path.write_bytes(b"a\n")
    follower = Follower(path, from_start=True, grace=0.3)
    assert follower.read() == [b"a\n"]
    path.rename(tmp_path / "access.log.1")
    with (tmp_path / "access.log.1").open("ab") as f:  # the server writes on until it reopens
        f.write(b"b\n")
    assert follower.read() == [b"b\n"]
    path.write_bytes(b"c\n")
    with (tmp_path / "access.log.1").open("ab") as f:
        f.write(b"late\n")
    assert sorted(follower.read()) == [b"c\n", b"late\n"]
    time.sleep(0.4)
    assert follower.read() == [] and not follower.draining  # the old file, quiet for the grace time, is let go
    with path.open("ab") as f:
        f.write(b"d\n")
    assert follower.read() == [b"d\n"]
    path.write_bytes(b"")  # copy-truncate
    with path.open("ab") as f:
        f.write(b"e\n")
    assert follower.read() == [b"e\n"]


def test_follower_resumes_from_a_saved_position_even_across_a_rotation(tmp_path):
    path = tmp_path / "access.log"
    path.write_bytes(b"1\n2\n")
    first = Follower(path, from_start=True)
    assert first.read() == [b"1\n", b"2\n"]
    saved = first.position
    first.close()
    with path.open("ab") as f:
        f.write(b"3\n")
    again = Follower(path, position=saved)
    assert again.read() == [b"3\n"]
    saved = again.position
    again.close()
    with path.open("ab") as f:
        f.write(b"4\n")
    path.rename(tmp_path / "access.log.1")  # rotated while the watcher was down
    path.write_bytes(b"5\n")
    resumed = Follower(path, position=saved)
    assert resumed.read() == [b"4\n", b"5\n"]  # nothing lost, nothing twice
    assert isinstance(saved, Position)


def test_backfill_reads_a_gzip_log_once(tmp_path):
    import gzip

    path = tmp_path / "old.log.gz"
    path.write_bytes(gzip.compress(b"x\ny\nz"))
    backfill = Backfill(path, chunk=2)
    assert Backfill.is_compressed(path) and backfill.read() == [b"x\n", b"y\n"] and backfill.read() == [b"z\n"]
    assert backfill.read() == []


def test_store_commits_batches_atomically_and_counts_offences(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    assert sqlite3.connect(tmp_path / "state.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    now = time.time()
    store.commit(positions={"/a.log": Position(1, 2, 30)}, counters={"lines": 5},
                 bans=[Ban("8.8.8.8", now, now + 60, "P(bad)=0.99")],
                 decisions=[{"time": now, "address": "8.8.8.8", "action": "ban", "detail": {"x": 1}}])  # fmt: skip
    store.commit(counters={"lines": 7}, unbans=["8.8.8.8"])
    store.commit(bans=[Ban("8.8.8.8", now, now + 120, "again")])
    store.close()
    again = Store(tmp_path / "state.sqlite")
    assert again.positions() == {"/a.log": Position(1, 2, 30)} and again.counter("lines") == 12
    assert [b.reason for b in again.bans()] == ["again"] and again.offenses("8.8.8.8") == 2
    assert again.decisions("8.8.8.8")[0]["detail"] == {"x": 1}
    with pytest.raises(KeyError):  # a batch that fails half-way leaves nothing behind
        again.commit(counters={"lines": 1}, bans=[Ban("9.9.9.9", now, now + 1, "")], decisions=[{"address": "x"}])
    assert again.counter("lines") == 12 and [b.address for b in again.bans()] == ["8.8.8.8"]


def test_file_actions_write_what_their_tools_read(tmp_path):
    now = time.time()
    active = [
        Ban("203.0.113.7", now, now + 300, "P(bad)=0.97 over 40 requests"),
        Ban("2001:db8::1", now, now + 60, "x"),
    ]
    changes = [Change("ban", "203.0.113.7", 300, "P(bad)=0.97"), Change("unban", "192.0.2.1", 0, "expired")]
    BanListFile(tmp_path / "ban.txt").apply(changes, active)
    assert (tmp_path / "ban.txt").read_text() == "2001:db8::1\n203.0.113.7\n"
    NginxDeny(tmp_path / "deny.conf").apply(changes, active)
    deny = (tmp_path / "deny.conf").read_text().splitlines()
    assert deny[1].startswith("deny 2001:db8::1;") and deny[2].startswith("deny 203.0.113.7;")
    IpsetRestore(tmp_path / "ipset.txt").apply(changes, active)
    ipset = (tmp_path / "ipset.txt").read_text().splitlines()
    assert ipset[:2] == ["create nnscratch hash:net timeout 0 -exist", "flush nnscratch"]
    assert ipset[2].startswith("add nnscratch 203.0.113.7 timeout 29")
    # An ipset holds one family: IPv6 bans go to a set of their own, never left out.
    assert ipset[3:5] == ["create nnscratch6 hash:net family inet6 timeout 0 -exist", "flush nnscratch6"]
    assert ipset[5].startswith("add nnscratch6 2001:db8::1 timeout 5") and len(ipset) == 6
    CrowdsecDecisions(tmp_path / "decisions.json").apply(changes, active)
    decisions = json.loads((tmp_path / "decisions.json").read_text())
    assert {d["value"] for d in decisions} == {"203.0.113.7", "2001:db8::1"}
    assert all(d["type"] == "ban" and d["scope"] == "ip" and d["duration"].endswith("s") for d in decisions)
    nft = NftablesSet(script=tmp_path / "nft.txt")
    nft.apply(changes, active)
    assert (tmp_path / "nft.txt").read_text().splitlines() == [
        "add element inet nnscratch banned4 { 203.0.113.7 timeout 300s }",
        "delete element inet nnscratch banned4 { 192.0.2.1 }"]  # fmt: skip
    JsonEvents(str(tmp_path / "events.jsonl")).apply(changes, active)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["address"]) for e in events] == [("ban", "203.0.113.7"), ("unban", "192.0.2.1")]


def test_command_actions_run_real_commands(tmp_path):
    record = tmp_path / "calls.txt"
    script = f"import sys; open({str(record)!r}, 'a').write(' '.join(sys.argv[1:]) + chr(10))"
    hook = CommandHook(shlex.join([sys.executable, "-c", script, "{event}", "{address}", "{seconds}", "{reason}"]))
    hook.apply([Change("ban", "203.0.113.7", 600, "P(bad)=0.9; rm -rf /")], [])
    assert record.read_text() == "ban 203.0.113.7 600 P(bad)=0.9; rm -rf /\n"  # one argument: no shell
    client = tmp_path / "fail2ban-client"
    client.write_text(f"#!{sys.executable}\n{script}\n")
    client.chmod(0o755)
    Fail2ban("nginx-bots", client=str(client)).apply([Change("ban", "203.0.113.7", 600), Change("unban", "1.2.3.4", 0)],
                                                      [])  # fmt: skip
    assert record.read_text().splitlines()[1:] == ["get nginx-bots bantime", "set nginx-bots banip 203.0.113.7",
                                                   "set nginx-bots unbanip 1.2.3.4"]  # fmt: skip


def test_a_failing_action_is_retried_and_never_stops_the_others(tmp_path):
    class Flaky(Action):
        name = "flaky"

        def __init__(self) -> None:
            self.calls, self.got = 0, []

        def apply(self, changes, active):
            self.calls += 1
            if self.calls == 1:
                raise OSError("firewall busy")
            self.got += changes

    flaky, reports = Flaky(), []
    actions = Actions([flaky, BanListFile(tmp_path / "ban.txt")], report=reports.append, retry_after=0.0)
    now = time.time()
    actions.apply([Change("ban", "203.0.113.7", 60)], [Ban("203.0.113.7", now, now + 60, "")])
    assert (tmp_path / "ban.txt").read_text() == "203.0.113.7\n" and "flaky failed" in reports[0]
    actions.apply([Change("unban", "203.0.113.7", 0)], [])
    assert [c.event for c in flaky.got] == ["ban", "unban"] and actions.failures == 1


def test_allowlist_never_bans_private_loopback_or_listed_addresses(tmp_path):
    listed = tmp_path / "allow.txt"
    listed.write_text("# office\n198.18.0.0/15\n8.8.4.4\n")
    allow = Allowlist(listed)
    assert allow.why_not("8.8.8.8") is None and allow.why_not("8.8.4.4") == "allowlisted"
    assert "private" in allow.why_not("127.0.0.3") and "private" in allow.why_not("10.1.2.3")
    assert allow.why_not("abc123session") is None  # a session id: banned by id, address actions skip it
    assert Allowlist(ban_private=True).why_not("127.0.0.3") is None
    listed.write_text("not-an-address\n")
    with pytest.raises(ValueError, match="not an address or CIDR"):
        allow.reload()
    os.environ.get("PATH")  # nothing else to clean up
    assert Path(listed).exists()


# --- the watcher on real log lines -------------------------------------------------------------------------------


def make_watcher(model, log, state, tmp_path, **options):
    """A watcher with a ban list and an event log; ``options`` are ``BanPolicy`` and ``WatchSettings`` fields."""
    import dataclasses

    from nnscratch.weblogs.watch.watcher import BanPolicy, Watcher, WatchSettings

    actions = Actions([BanListFile(tmp_path / "ban.txt"), JsonEvents(str(tmp_path / "events.jsonl"))],
                      report=lambda message: None)  # fmt: skip
    options.setdefault("allowlist", Allowlist(ban_private=True))
    policy_fields = {f.name for f in dataclasses.fields(BanPolicy)}
    policy = BanPolicy(**{k: v for k, v in options.items() if k in policy_fields})
    settings = WatchSettings(**{k: v for k, v in options.items() if k not in policy_fields})
    watcher = Watcher(model, [str(log)], Store(state), actions, policy=policy, settings=settings,
                      report=lambda m: None)  # fmt: skip
    watcher.restore()
    return watcher


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def test_watcher_bans_the_scanner_not_the_person_and_explains_why(watch_model, logs, tmp_path, capsys):
    from nnscratch.cli import main

    log, state = tmp_path / "access.log", tmp_path / "state.sqlite"
    log.touch()
    watcher = make_watcher(watch_model, log, state, tmp_path)
    watcher.step()  # opens the (empty) log at its end
    append(log, human_lines(40) + scanner_lines(logs, 60))
    assert watcher.step() == 100
    assert (tmp_path / "ban.txt").read_text() == SCANNER + "\n"
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["address"]) for e in events] == [("ban", SCANNER)] and events[0]["seconds"] == 600
    watcher.store.close()
    assert main(["logs", "why", SCANNER, "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "ban  P(bad)=" in out and "pushed up by" in out and "w3af.org" in out
    assert main(["logs", "bans", "--state", str(state)]) == 0 and SCANNER in capsys.readouterr().out
    assert main(["logs", "why", HUMAN, "--state", str(state)]) == 1  # never judged bad enough to record


def test_dry_run_decides_and_acts_on_nothing(watch_model, logs, tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path, dry_run=True)
    watcher.step()
    append(log, scanner_lines(logs, 60))
    watcher.step()
    assert not (tmp_path / "ban.txt").exists() and not watcher.bans
    assert watcher.store.decisions(SCANNER)[0]["action"] == "dry-run: would ban"


def test_bans_expire_and_repeat_offenders_stay_out_longer(watch_model, logs, tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path, ban_time=0.5, factor=4.0)
    watcher.step()
    scan = scanner_lines(logs, 400)
    append(log, scan[:60])
    watcher.step()
    first = watcher.bans[SCANNER]
    assert first.until - first.since == pytest.approx(0.5)
    time.sleep(0.6)
    watcher.step()
    assert SCANNER not in watcher.bans and (tmp_path / "ban.txt").read_text() == ""
    append(log, scan[60:120])
    watcher.step()
    second = watcher.bans[SCANNER]
    assert second.until - second.since == pytest.approx(2.0) and watcher.store.offenses(SCANNER) == 2
    events = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events == ["ban", "unban", "ban"]


def test_allowlisted_and_private_clients_are_judged_but_never_banned(watch_model, logs, tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    allow = Allowlist(extra=["203.0.113.0/24"], ban_private=True)
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path, allowlist=allow)
    watcher.step()
    append(log, scanner_lines(logs, 60) + scanner_lines(logs, 60, host="10.9.8.7"))
    watcher.step()
    assert list(watcher.bans) == ["10.9.8.7"]  # --ban-private: the private one may go
    assert watcher.store.decisions(SCANNER)[0]["action"] == "not banned: allowlisted"
    private = make_watcher(watch_model, log, tmp_path / "other.sqlite", tmp_path, allowlist=Allowlist())
    private.step()
    append(log, scanner_lines(logs, 60, host="10.9.8.7"))
    private.step()
    assert not private.bans and "private" in private.store.decisions("10.9.8.7")[0]["action"]


def test_a_restart_resumes_after_the_last_line_and_restores_bans(watch_model, logs, tmp_path):
    log, state = tmp_path / "access.log", tmp_path / "state.sqlite"
    lines = human_lines(30) + scanner_lines(logs, 60)
    log.write_text("")
    first = make_watcher(watch_model, log, state, tmp_path)
    first.step()
    append(log, lines[:50])
    first.step()
    append(log, lines[50:70])
    first.step()
    first.store.close()
    (tmp_path / "ban.txt").unlink(missing_ok=True)
    append(log, lines[70:])  # written while the watcher was down
    second = make_watcher(watch_model, log, state, tmp_path)
    second.step()
    assert second.lines == len(lines) == second.store.counter("lines")
    assert SCANNER in second.bans and (tmp_path / "ban.txt").read_text() == SCANNER + "\n"  # restored
    second.store.commit(unbans=[SCANNER])  # as `nnscratch logs bans --unban` does
    second.step()
    assert SCANNER not in second.bans and (tmp_path / "ban.txt").read_text() == ""


@pytest.fixture(scope="module")
def behaviour_model(logs, tmp_path_factory):
    """A model that reads the context tokens (client windows, site-relative evidence)."""
    from nnscratch.weblogs.features.featurizer import Featurizer
    from nnscratch.weblogs.labels.data import LabelledLines
    from nnscratch.weblogs.labels.rules import RuleLabeler
    from nnscratch.weblogs.model.weblog import TrainSettings, WebLogModel

    data = LabelledLines.gather(bad=[str(logs / "scanner_w3af_2016-12-22.log")], unknown_agent="Firefox/",
                                logs=[str(logs / "secrepo_access_2021-10-22.log")], rules=RuleLabeler(),
                                gray_as="bad")  # fmt: skip
    model, _, _ = WebLogModel.train(data, featurizer=Featurizer(behaviour=True, window=120),
                                    settings=TrainSettings(restarts=1, epochs=2))  # fmt: skip
    return model.save(tmp_path_factory.mktemp("behaviour") / "model.safetensors")


def _judged(model, log, state, folder, stops: list[int], wipe: bool = False) -> tuple[list, dict, list]:
    """Watch ``log`` from its start in steps of 97 lines, stopping dead (no last step, as
    ``kill -9`` does) after each count of steps in ``stops`` and starting again on the same
    state file; ``wipe``: forget the clients' evidence at each stop (what a restart did before).
    Returns the bans decided (client, P(bad), request), the memory the state file ends with,
    and how many lines it held for time order at each stop."""
    folder.mkdir()
    held = []
    for stop in [*stops, None]:
        watcher = make_watcher(model, log, state, folder, dry_run=True, from_start=True, batch=97)
        steps = 0
        while stop is None or steps < stop:
            steps += 1
            if watcher.step() == 0 and stop is None:
                break
        held.append(len(watcher.store.memory().get("held", {})))
        watcher.store.close()
        if wipe:
            with sqlite3.connect(state) as db:
                db.execute("DELETE FROM memory")
    with sqlite3.connect(state) as db:
        bans = db.execute("SELECT address, probability, requests FROM decisions WHERE action LIKE 'dry-run%' "
                          "ORDER BY id").fetchall()  # fmt: skip
    store = Store(state)
    try:
        return bans, store.memory(), held[:-1]
    finally:
        store.close()


@pytest.mark.parametrize("context", [False, True], ids=["counts", "context-tokens"])
def test_a_watcher_stopped_dead_and_restarted_judges_as_one_that_never_stopped(
    context, watch_model, behaviour_model, logs, tmp_path
):  # fmt: skip
    """Issue 26, fault 3: each client's evidence (its counts and window, the site's pace and
    context, the lines held for time order) is committed with the positions, so a watcher
    killed after any commit, mid-catch-up with lines held, decides what one that never
    stopped decides, and its state file ends the same, byte for byte."""
    model = behaviour_model if context else watch_model
    log = tmp_path / "access.log"
    sample = (logs / "secrepo_access_2021-10-22.log").read_text().splitlines()[:1500]
    log.write_text("".join(line + "\n" for line in sample))
    whole, whole_memory, _ = _judged(model, log, tmp_path / "whole.sqlite", tmp_path / "whole", [])
    cut, cut_memory, held = _judged(model, log, tmp_path / "cut.sqlite", tmp_path / "cut", [3, 2])
    assert len(whole) >= 8 and cut == whole and cut_memory == whole_memory
    assert min(held) > 0 and {"client", "stream"} <= whole_memory.keys() and ("path" in whole_memory) == context
    forgetful, _, _ = _judged(model, log, tmp_path / "wiped.sqlite", tmp_path / "wiped", [3, 2], wipe=True)
    assert forgetful != whole  # the evidence matters on this log: a restart that forgot it judged otherwise


def _watch_process(model, log, state, ban_list, *extra):
    import subprocess

    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model), str(log), "--state", str(state),
               "--ban-list", str(ban_list), "--ban-private", "--from-start", "--batch", "300", "--poll", "0.05",
               "--status-every", "1000", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _lines_done(state: Path) -> int:
    if not state.exists():
        return 0
    store = Store(state)
    try:
        return store.counter("lines")
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_and_restart_count_every_line_once_and_restore_bans(watch_model, logs, tmp_path):
    """Kill the watcher with SIGKILL at random moments while it works through a log, restart
    it each time: in the end every line was counted exactly once, and the ban survives."""
    import random
    import signal

    log, state, ban_list = tmp_path / "access.log", tmp_path / "state.sqlite", tmp_path / "ban.txt"
    lines = (human_lines(300) + scanner_lines(logs, 1500)) * 12
    log.write_text("".join(line + "\n" for line in lines))
    rng = random.Random(4)
    kills = 0
    for fraction in sorted(rng.uniform(0.05, 0.9) for _ in range(6)):  # kill as the count passes each
        proc = _watch_process(watch_model, log, state, ban_list)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and _lines_done(state) < fraction * len(lines):
            time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    proc = _watch_process(watch_model, log, state, ban_list)
    deadline = time.time() + 60
    while time.time() < deadline and _lines_done(state) < len(lines):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    store = Store(state)
    assert store.counter("lines") == len(lines) and kills == 6
    assert [b.address for b in store.bans()] == [SCANNER] and ban_list.read_text() == SCANNER + "\n"
    assert sum(d["action"] == "ban" for d in store.decisions(SCANNER, 100)) == 1  # banned once, never again


def test_signals_stop_and_reload(watch_model, logs, tmp_path):
    import signal

    allow_file = tmp_path / "allow.txt"
    allow_file.write_text("")
    log = tmp_path / "access.log"
    log.write_text("")
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path,
                           allowlist=Allowlist(allow_file, ban_private=True))  # fmt: skip
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        watcher.install_signals()
        allow_file.write_text(SCANNER + "\n")
        os.kill(os.getpid(), signal.SIGHUP)
        watcher.step()
        assert watcher.policy.allowlist.why_not(SCANNER) == "allowlisted" and not watcher.reloading
        os.kill(os.getpid(), signal.SIGTERM)
        assert watcher.stopping
        append(log, scanner_lines(logs, 60))
        watcher.run()  # returns at once: it was told to stop, and judges what it read first
        assert watcher.lines == 60 and not watcher.bans
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def test_standard_input_is_followed(watch_model, logs, tmp_path):
    import signal
    import subprocess

    state = tmp_path / "state.sqlite"
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(watch_model), "-", "--state", str(state),
               "--ban-private", "--ban-list", str(tmp_path / "ban.txt"), "--poll", "0.05"]  # fmt: skip
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("".join(line + "\n" for line in scanner_lines(logs, 60)).encode())
    proc.stdin.close()
    deadline = time.time() + 30
    while time.time() < deadline and not (tmp_path / "ban.txt").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.stdin = None  # already closed: communicate must not flush it
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert (tmp_path / "ban.txt").read_text() == SCANNER + "\n" and b"stopped after 60 lines" in err


def test_gray_clients_go_to_the_challenge_file(watch_model, logs, tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    challenge = tmp_path / "challenge.txt"
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path, challenge=challenge,
                           challenge_threshold=0.5)  # fmt: skip
    watcher.model.client_model.threshold = 0.999  # nobody is bad enough to ban: the scanner is gray
    watcher.step()
    append(log, scanner_lines(logs, 60) + human_lines(30))
    watcher.step()
    assert not watcher.bans and challenge.read_text() == SCANNER + "\n"
    assert watcher.store.decisions(SCANNER)[0]["action"] == "challenge"


def test_actions_declare_their_options_and_build_themselves(watch_model, tmp_path, capsys):
    """The registry drives the CLI: every action kind is in ``ACTIONS`` with its options in
    ``logs watch --help``; ``cmd_watch`` names no action; a half-given action is refused."""
    import inspect

    from nnscratch.cli import main
    from nnscratch.weblogs.cli import commands as cli
    from nnscratch.weblogs.watch import actions

    kinds = {c for c in vars(actions).values() if inspect.isclass(c) and issubclass(c, Action) and c is not Action}
    assert kinds == set(actions.ACTIONS)
    with pytest.raises(SystemExit):
        main(["logs", "watch", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for kind in actions.ACTIONS for option in kind.options)
    assert not [k.__name__ for k in actions.ACTIONS if k.__name__ in inspect.getsource(cli.cmd_watch)]
    log = tmp_path / "access.log"
    log.write_text("")
    base = ["logs", "watch", str(watch_model), str(log), "--state", str(tmp_path / "s.sqlite")]
    assert main(base) == 2
    assert "choose at least one action (--ban-list, --nginx, --nft-apply, --nft-script" in capsys.readouterr().err
    assert main([*base, "--nft"]) == 2
    assert "--nft needs a way to reach nftables: --nft-apply (run nft now) or --nft-script FILE" in (
        capsys.readouterr().err)  # fmt: skip
    assert main([*base, "--nginx-reload", "nginx -s reload"]) == 2
    assert "give the include with --nginx FILE" in capsys.readouterr().err
    assert main([*base, "--fail2ban-client-args", "-s /run/f2b.sock"]) == 2
    assert "name its jail with --fail2ban JAIL" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()  # refused before any state is made
    args = argparse.Namespace(ban_list=None, nginx=None, nginx_reload=None, nft=True, nft_table="t", nft_apply=False,
                              nft_script=str(tmp_path / "nft.txt"), ipset=None, fail2ban="sshd",
                              fail2ban_client_args="", crowdsec=None, cscli=None,
                              exec=["echo {address}", "logger {event}"], events="-")  # fmt: skip
    built = actions.actions_from_args(args)
    assert [type(a).__name__ for a in built] == ["NftablesSet", "Fail2ban", "CommandHook", "CommandHook", "JsonEvents"]


def test_address_actions_skip_session_clients_and_say_so_once(tmp_path):
    """A log without addresses bans by session id: the event log and commands get it; the ban
    list (and every action that needs an address) skips it, and one note says so."""
    reports: list[str] = []
    events, ban_list = tmp_path / "events.jsonl", tmp_path / "ban.txt"
    actions = Actions([BanListFile(ban_list), JsonEvents(str(events))], report=reports.append)
    now = time.time()
    session, address = "crv8slnnov42i8mci4ppsrou68", "203.0.113.9"
    bans = [Ban(session, now, now + 60, "r"), Ban(address, now, now + 60, "r")]
    actions.apply([Change("ban", session, 60.0, "r"), Change("ban", address, 60.0, "r")], bans)
    actions.apply([Change("extend", session, 120.0, "r")], bans)
    assert ban_list.read_text() == address + "\n"
    assert [json.loads(line)["address"] for line in events.read_text().splitlines()] == [session, address, session]
    assert len(reports) == 1 and "session id" in reports[0] and "ban list" in reports[0] and "--events" in reports[0]


def test_a_restart_lifts_what_expired_meanwhile_and_restores_the_rest_as_restore_events(watch_model, logs, tmp_path):
    """A ban that expired while the watcher was down reaches every action as an unban at the
    next start; an active one is applied again as a ``restore`` event, never a second ``ban``."""
    log, state = tmp_path / "access.log", tmp_path / "state.sqlite"
    log.write_text("")
    first = make_watcher(watch_model, log, state, tmp_path, ban_time=0.5)
    first.step()
    append(log, scanner_lines(logs, 60) + scanner_lines(logs, 60, host="203.0.113.51"))
    first.step()
    assert set(first.bans) == {SCANNER, "203.0.113.51"}
    first.store.commit(bans=[Ban(SCANNER, time.time(), time.time() + 3600, "kept")])  # one ban lasts longer
    first.store.close()
    time.sleep(0.6)  # the other expires while nobody watches
    second = make_watcher(watch_model, log, state, tmp_path, ban_time=0.5)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["address"]) for e in events][-2:] == [("unban", "203.0.113.51"), ("restore", SCANNER)]
    assert events[-2]["reason"] == "expired while the watcher was down" and events[-1]["seconds"] > 3000
    assert [e["event"] for e in events].count("ban") == 2  # the two bans, once each
    assert (tmp_path / "ban.txt").read_text() == SCANNER + "\n" and set(second.bans) == {SCANNER}
    assert second.store.decisions("203.0.113.51")[0]["action"] == "unban"


def test_repeatable_options_are_safe_before_the_positionals(watch_model, tmp_path, monkeypatch):
    """``--allow CIDR`` before the model and the logs takes one value and leaves them alone."""
    from nnscratch.cli import main
    from nnscratch.weblogs.watch import watcher as watcher_module

    log = tmp_path / "access.log"
    log.write_text("")
    seen, original = {}, watcher_module.Watcher.run

    def run_once(self, until=None):
        seen["allow"] = [str(n) for n in self.policy.allowlist.networks]
        return original(self, until=lambda: True)

    monkeypatch.setattr(watcher_module.Watcher, "run", run_once)
    import signal

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    assert main(["logs", "watch", "--allow", "10.0.0.0/8", "--allow", "192.0.2.1", str(watch_model), str(log),
                 "--state", str(tmp_path / "s.sqlite"), "--dry-run"]) == 0  # fmt: skip
    assert seen["allow"] == ["10.0.0.0/8", "192.0.2.1/32"]
    # The command puts the process's handlers back: a later fork must not inherit a SIGTERM
    # that only sets a flag (a pool worker that then cannot be terminated hangs its parent).
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_broken_action_is_reported_once_backs_off_and_says_when_it_works_again(tmp_path):
    """Issue 26: a missing fail2ban jail gave the same error every 2 s forever. Now it is said
    once, with the fix, retries wait twice as long each time (at most max_retry_after), and the
    recovery is said too; the changes missed meanwhile all arrive."""
    fake = tmp_path / "fail2ban-client"
    calls = tmp_path / "calls.txt"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nif [ -e {tmp_path}/jail ]; then exit 0; fi\n'
                    "echo \"Sorry but the jail 'sshd' does not exist\" >&2\nexit 255\n")  # fmt: skip
    fake.chmod(0o755)
    reports: list[str] = []
    actions = Actions([Fail2ban("sshd", client=str(fake))], report=reports.append, retry_after=0.05,
                      max_retry_after=0.2)  # fmt: skip
    now = time.time()
    active = [Ban("203.0.113.7", now, now + 60, "")]
    actions.apply([Change("ban", "203.0.113.7", 60)], active)
    for _ in range(40):  # 40 steps: retried 0.05, 0.1, 0.2, 0.2, ... s apart, not at every step
        actions.apply([], active)
        time.sleep(0.02)
    tries = len(calls.read_text().splitlines())
    assert 3 <= tries < 20, tries
    assert len(reports) == 1 and "fail2ban has no jail 'sshd'" in reports[0] and "jail.local" in reports[0]
    assert actions.delay[0] == 0.2
    (tmp_path / "jail").touch()  # the operator creates the jail
    actions.apply([Change("ban", "203.0.113.8", 60)], active)
    time.sleep(0.25)
    actions.apply([], active)
    assert "works again" in reports[-1] and not actions.pending
    assert calls.read_text().splitlines()[-2:] == ["set sshd banip 203.0.113.7", "set sshd banip 203.0.113.8"]


def test_crowdsec_through_cscli_gets_bans_and_unbans_without_duplicates(tmp_path):
    """Issue 26: re-importing the decisions file duplicated decisions and unbans never reached
    CrowdSec. --cscli drives ``cscli decisions add/delete`` (a stand-in cscli records them)."""
    from nnscratch.weblogs.watch.actions import CrowdsecCscli

    fake, calls = tmp_path / "cscli", tmp_path / "calls.txt"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    action, now = CrowdsecCscli(str(fake)), time.time()
    action.apply([Change("ban", "203.0.113.7", 600, "P(bad)=0.97")], [Ban("203.0.113.7", now, now + 600, "")])
    action.apply([Change("extend", "203.0.113.7", 1200, "again")], [Ban("203.0.113.7", now, now + 1200, "")])
    action.apply([Change("unban", "203.0.113.7", 0, "expired")], [])
    assert calls.read_text().splitlines() == [
        "decisions add --ip 203.0.113.7 --duration 600s --type ban --reason nnscratch: P(bad)=0.97",
        "decisions delete --ip 203.0.113.7",
        "decisions add --ip 203.0.113.7 --duration 1200s --type ban --reason nnscratch: again",
        "decisions delete --ip 203.0.113.7",
    ]


def test_bans_by_hand_reach_every_action_once_and_are_explained(watch_model, tmp_path, capsys):
    """Issue 26: ``logs bans --add`` bans an address or a CIDR range by hand; the running watcher
    applies it as a ``ban`` through its actions (not a second offence), and lifts it like others."""
    from nnscratch.cli import main

    log, state = tmp_path / "access.log", tmp_path / "state.sqlite"
    log.touch()
    watcher = make_watcher(watch_model, log, state, tmp_path)
    watcher.step()
    hand = ["192.0.2.1", "198.51.100.0/24", "2001:db8:1::/64"]
    assert main(["logs", "bans", "--state", str(state), "--add", *hand, "--for", "10m", "--reason", "abuse desk"]) == 0
    assert "banned 3 by hand for 600 s" in capsys.readouterr().out
    watcher.step()
    watcher.step()
    assert sorted((tmp_path / "ban.txt").read_text().split()) == sorted(hand)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted(e["address"] for e in events) == sorted(hand) and {e["event"] for e in events} == {"ban"}
    assert {e["reason"] for e in events} == {"manual: abuse desk"} and all(590 < e["seconds"] <= 600 for e in events)
    assert [watcher.store.offenses(a) for a in hand] == [1, 1, 1]
    assert main(["logs", "why", "198.51.100.0/24", "--state", str(state)]) == 0
    assert "ban  P(bad)=-" in capsys.readouterr().out
    assert main(["logs", "bans", "--state", str(state), "--unban", "198.51.100.0/24"]) == 0
    watcher.step()
    assert sorted((tmp_path / "ban.txt").read_text().split()) == ["192.0.2.1", "2001:db8:1::/64"]
    assert NftablesSet(script=tmp_path / "nft.txt").commands([Change("ban", "198.51.100.0/24", 60)]) == [
        "add element inet nnscratch banned4 { 198.51.100.0/24 timeout 60s }"
    ]
    watcher.store.close()
    for bad, said in ((["--add", "not-an-ip"], "--add takes IP addresses or CIDR networks"),
                      (["--add", "192.0.2.9", "--for", "0"], "expected a duration such as 600, 90s, 10m"),
                      (["--add", "192.0.2.9", "--for", "1x"], "got '1x'")):  # fmt: skip
        try:
            code = main(["logs", "bans", "--state", str(state), *bad])
        except SystemExit as exit:  # argparse refuses a bad --for
            code = exit.code
        assert code == 2 and said in capsys.readouterr().err
    assert main(["logs", "bans", "--state", str(tmp_path / "none.sqlite"), "--add", "192.0.2.9"]) != 0
    assert not (tmp_path / "none.sqlite").exists()


def test_metrics_endpoint_counts_lines_bans_actions_and_latency(watch_model, logs, tmp_path, capsys):
    """Issue 26: ``--metrics`` serves Prometheus metrics on loopback: lines, judgements, bans by
    reason, what each action carried out, and the deciding line's latency to its ban."""
    import socket
    import urllib.request

    from nnscratch.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log, state = tmp_path / "access.log", tmp_path / "state.sqlite"
    lines = human_lines(20) + scanner_lines(logs, 60)
    log.write_text("".join(line + "\n" for line in lines))
    watcher = _watch_process(watch_model, log, state, tmp_path / "ban.txt", "--metrics", str(port))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ban.txt").exists() or not (tmp_path / "ban.txt").read_text():
            assert time.monotonic() < deadline and watcher.poll() is None, watcher.stderr.read().decode()
            time.sleep(0.1)
        time.sleep(0.5)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        text = opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()  # loopback only
    finally:
        watcher.terminate()
        _, err = watcher.communicate(timeout=30)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err.decode()
    assert f"nnscratch_lines_read_total {len(lines)}.0" in text
    assert f"nnscratch_lines_parsed_total {len(lines)}.0" in text
    assert 'nnscratch_ban_changes_total{event="ban",reason="model"} 1.0' in text
    assert f'nnscratch_action_changes_total{{action="ban list {tmp_path / "ban.txt"}",event="ban"}} 1.0' in text
    assert 'nnscratch_ban_latency_seconds_count{action="ban list' in text and "nnscratch_active_bans 1.0" in text
    assert "nnscratch_judgements_total" in text and "nnscratch_clients_tracked" in text
    with socket.socket() as busy:  # a port in use, or no port at all, is refused before any state is made
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        for bad, code, said in ((str(taken), 1, "--metrics cannot listen on 127.0.0.1:"),
                                (f"localhost:{port}", 2, f"Received: 'localhost:{port}'")):  # fmt: skip
            assert main(["logs", "watch", str(watch_model), str(log), "--state", str(tmp_path / "new.sqlite"),
                         "--dry-run", "--metrics", bad]) == code  # fmt: skip
            assert said in capsys.readouterr().err and not (tmp_path / "new.sqlite").exists()


def test_metrics_without_prometheus_client_names_the_extra_before_any_state(tmp_path, watch_model, capsys,
                                                                            monkeypatch):  # fmt: skip
    from nnscratch.cli import main

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an install without the extra sees
    log = tmp_path / "access.log"
    log.write_text("")
    state = tmp_path / "state.sqlite"
    assert main(["logs", "watch", str(watch_model), str(log), "--state", str(state), "--dry-run",
                 "--metrics", "127.0.0.1:0"]) == 1  # fmt: skip
    assert 'pip install "nnscratch[metrics]"' in capsys.readouterr().err and not state.exists()


def test_an_action_never_replaces_a_file_of_another_program(tmp_path, watch_model, capsys):
    """Issue 29, class 3: `--nginx nginx.conf` would have replaced the server's configuration
    with deny lines, `--nft-script notes` appended to any file. Each file action now takes
    only a file it wrote (or an empty one) unless --force, refused before any state."""
    from nnscratch.cli import main

    log = tmp_path / "access.log"
    log.write_text("")
    state = tmp_path / "state.sqlite"
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes auto;\nevents { worker_connections 768; }\n")
    for option in ("--nginx", "--ban-list", "--ipset", "--crowdsec", "--nft-script", "--events"):
        assert main(["logs", "watch", str(watch_model), str(log), "--state", str(state), option, str(conf)]) == 1
        err = capsys.readouterr().err
        assert f"exists and is not a file this command wrote: {option} would replace it" in err, err
        assert "worker_processes" in conf.read_text() and not state.exists()
    own = tmp_path / "deny.conf"  # what the action wrote before is its own: taken without --force
    own.write_text("# managed by nnscratch logs watch\ndeny 203.0.113.9;  # until 2026-12-03T10:00:00Z\n")
    bans = tmp_path / "bans.txt"
    bans.write_text("203.0.113.9\n2001:db8::/64\n")
    from nnscratch.weblogs.watch import actions

    for option, path in (("--nginx", own), ("--ban-list", bans)):
        parser = argparse.ArgumentParser()
        actions.add_action_options(parser)
        chosen = actions.actions_from_args(parser.parse_args([option, str(path)]))
        assert chosen[0].writes == path
        assert all(chosen[0].own_line(line) for line in path.read_text().splitlines()), option


def test_an_allowlist_that_cannot_be_read_is_named_before_any_state(tmp_path, watch_model, capsys):
    """Issue 29, class 1: a missing --allowlist was "[Errno 2] No such file or directory" after the
    state file had been made, and one of other bytes a bare codec error."""
    from nnscratch.cli import main

    log, state, binary = tmp_path / "access.log", tmp_path / "state.sqlite", tmp_path / "allow.bin"
    log.write_text("")
    binary.write_bytes(bytes(range(256)))
    for allowlist, said in (
        (tmp_path / "missing.txt", "missing.txt: cannot read the --allowlist file"),
        (binary, "allow.bin, line 2: byte 0x80 is not UTF-8; a --allowlist file is UTF-8 text"),
    ):
        assert main(["logs", "watch", str(watch_model), str(log), "--dry-run", "--state", str(state),
                     "--allowlist", str(allowlist)]) != 0  # fmt: skip
        assert said in capsys.readouterr().err and not state.exists()


def test_metrics_count_an_action_failure_and_what_it_carries_out_after(tmp_path):
    from nnscratch.weblogs.watch.metrics import WatchMetrics

    class Flaky(Action):
        name = "flaky"

        def __init__(self) -> None:
            self.calls = 0

        def apply(self, changes, active):
            self.calls += 1
            if self.calls == 1:
                raise OSError("firewall busy")

    metrics, actions = WatchMetrics(), Actions([Flaky()], report=lambda m: None, retry_after=0.0)
    metrics.watch_actions(actions)
    actions.apply([Change("ban", "203.0.113.7", 60, log_time=time.time() - 2)], [])
    actions.apply([], [])
    value = metrics.registry.get_sample_value
    assert value("nnscratch_action_failures_total", {"action": "flaky"}) == 1.0
    assert value("nnscratch_action_changes_total", {"action": "flaky", "event": "ban"}) == 1.0
    assert value("nnscratch_ban_latency_seconds_count", {"action": "flaky"}) == 1.0
    assert value("nnscratch_ban_latency_seconds_bucket", {"action": "flaky", "le": "1.0"}) == 0.0


def test_a_named_pipe_is_followed_without_blocking_and_nothing_sent_is_lost(watch_model, logs, tmp_path):
    """Issue 29, class 5: a FIFO with no writer yet neither hangs the watcher nor makes it
    refuse (a pipe cannot be sought); SIGTERM stops it at once; each writer's lines are read,
    the second writer's on the same pipe, and a last line without its newline too."""
    import signal
    import subprocess

    fifo, state = tmp_path / "access.fifo", tmp_path / "state.sqlite"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(watch_model), str(fifo), "--state", str(state),
               "--ban-list", str(tmp_path / "ban.txt"), "--ban-private", "--poll", "0.05",
               "--status-every", "1000"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert b"watching" in proc.stderr.readline()  # the model loaded, the pipe opened with no writer
        lines = human_lines(20) + scanner_lines(logs, 60)
        with open(fifo, "w") as writer:  # would block if nobody had the pipe open for reading
            writer.write("".join(line + "\n" for line in lines[:50]))
        with open(fifo, "w") as writer:
            writer.write("".join(line + "\n" for line in lines[50:-1]) + lines[-1])  # no newline at the end
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert _lines_done(state) == len(lines) and (tmp_path / "ban.txt").read_text() == SCANNER + "\n"
    idle = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # nobody ever writes
    assert b"watching" in idle.stderr.readline()
    time.sleep(1)
    idle.send_signal(signal.SIGTERM)
    assert idle.wait(timeout=10) == 0


def test_the_watch_command_keeps_no_compiler_nor_scikit_learn_in_its_process(watch_model, logs, tmp_path):
    """A long-running watcher imports what it uses: scikit-learn (to train, not to judge) and
    the fused kernels' compiler (numba: the watcher predicts with the NumPy reference, the same
    numbers bit for bit) stay out of its process, and it still bans the scanner."""
    import subprocess

    log = tmp_path / "access.log"
    log.write_text("".join(line + "\n" for line in human_lines(30) + scanner_lines(logs, 200)))
    argv = ["logs", "watch", str(watch_model), str(log), "--state", str(tmp_path / "s.sqlite"), "--from-start",
            "--dry-run", "--ban-private"]  # fmt: skip
    script = ("import os, signal, sys, threading\nfrom nnscratch.cli import main\n"
              "threading.Timer(8, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
              f"code = main({argv!r})\n"
              "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'numba', 'pandas'}))\n"
              )  # fmt: skip
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout
    assert f"dry run: would ban {SCANNER}" in run.stderr, run.stderr
