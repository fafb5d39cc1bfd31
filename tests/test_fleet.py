"""A fleet of watchers on one real PostgreSQL database: shared bans, pushed to every host."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.watch_helpers import BROWSER, HUMAN, SCANNER, get, human_lines, scanner_lines, start_nginx, stop_nginx

from nnscratch.weblogs.watch.fleet import PostgresStore, is_database_url, open_store
from nnscratch.weblogs.watch.follow import Position
from nnscratch.weblogs.watch.state import Ban, StateFileError, Store


@pytest.fixture
def database(postgres_url):
    """The session's server, emptied of the fleet's tables before each test."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        for table in ("positions", "counters", "bans", "offenders", "decisions", "evidence", "memory"):
            db.execute(f"DROP TABLE IF EXISTS nnscratch_{table}")
    return postgres_url


def test_the_fleet_store_keeps_what_the_file_store_keeps_per_host_and_shared(database, tmp_path):
    """Positions and line counts are each host's; bans, offences and decisions the fleet's;
    a commit is one transaction; ``wait`` wakes on another host's ban within the poll."""
    assert is_database_url(database) and isinstance(open_store(str(tmp_path / "s.sqlite")), Store)
    a, b = PostgresStore(database, host="a"), PostgresStore(database, host="b")
    try:
        a.commit(positions={"/var/log/x": Position(1, 2, 300)}, counters={"lines": 10})
        b.commit(positions={"/var/log/x": Position(1, 2, 50)}, counters={"lines": 4})
        assert a.positions()["/var/log/x"].offset == 300 and b.positions()["/var/log/x"].offset == 50
        assert (a.counter("lines"), b.counter("lines")) == (10, 4)
        assert not b.wait(0.1)  # nothing happened
        started = time.monotonic()
        a.commit(bans=[Ban("203.0.113.9", 1.0, 2e9, "test")], decisions=[{"time": 1.0, "address": "203.0.113.9",
                 "action": "ban", "probability": 0.99, "requests": 7, "reason": "test"}])  # fmt: skip
        assert b.wait(5.0) and time.monotonic() - started < 2.0  # pushed, not polled
        assert [x.address for x in b.bans()] == ["203.0.113.9"] and b.offenses("203.0.113.9") == 1
        assert b.decisions("203.0.113.9")[0]["detail"]["host"] == "a"
        b.commit(bans=[Ban("203.0.113.9", 3.0, 2e9, "again")])  # both ban at once: one row, one offence
        assert len(a.bans()) == 1 and a.offenses("203.0.113.9") == 1
        b.commit(unbans=["203.0.113.9"])
        b.commit(bans=[Ban("203.0.113.9", 4e9, 5e9, "back later")])  # a new ban after the first: a second offence
        assert a.offenses("203.0.113.9") == 2
        import psycopg

        with pytest.raises(psycopg.Error):  # a failing batch leaves nothing behind
            a.commit(positions={"/var/log/x": Position(9, 9, 9)}, decisions=[{"time": "not a time", "address": "x",
                     "action": "ban"}])  # fmt: skip
        assert a.positions()["/var/log/x"].offset == 300
    finally:
        a.close()
        b.close()


def test_hosts_that_ban_a_client_at_the_same_moment_make_one_offence(database):
    """Two hosts commit the ban of the same new client at once, 25 clients in a row: each is
    one offence and one ban row (without a lock, both transactions would find no ban yet)."""
    import threading

    def ban(store: PostgresStore, start: threading.Barrier, address: str, now: float) -> None:
        start.wait()
        store.commit(bans=[Ban(address, now, now + 60, "test")])

    stores = [PostgresStore(database, host=h) for h in ("a", "b")]
    try:
        for i in range(25):
            start, now = threading.Barrier(2), time.time()
            threads = [threading.Thread(target=ban, args=(store, start, f"198.51.100.{i}", now)) for store in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert [stores[0].offenses(f"198.51.100.{i}") for i in range(25)] == [1] * 25
        assert len(stores[1].bans()) == 25
    finally:
        for store in stores:
            store.close()


def test_a_database_that_cannot_be_reached_is_one_sentence(tmp_path):
    with pytest.raises(StateFileError, match="the fleet database postgresql://nnscratch:\\*\\*\\*@127.0.0.1:1/x cannot "
                                             "be used"):  # fmt: skip
        PostgresStore("postgresql://nnscratch:secret@127.0.0.1:1/x")


def _watch(model: Path, log: Path, url: str, host: str, ban_list: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model), str(log), "--state", url,
               "--fleet-host", host, "--ban-list", str(ban_list), "--ban-private", "--poll", "5",
               "--status-every", "1000"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _listed(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def _started(url: str) -> set[str]:
    """The hosts whose watcher has committed a first step (it has opened its log at its end)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        try:
            return {row[0] for row in db.execute("SELECT host FROM nnscratch_counters WHERE name = 'lines'")}
        except psycopg.errors.UndefinedTable:
            return set()


def _stop(watchers: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every watcher still running, then wait for each (killed after 60 s)."""
    for proc in watchers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in watchers.values():
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _until(condition, seconds: float) -> float | None:
    """Seconds until ``condition()`` held (None: it did not within ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def test_a_ban_on_one_host_reaches_every_host_within_two_seconds(database, watch_model, logs, tmp_path):
    """Three watchers, one database. The scanner's requests reach one host; the watcher there
    bans it, and the other two hosts' actions list it within 2 s (pushed by NOTIFY while they
    sleep out a poll of 5 s: only a push can be that fast); the person browsing all three is never banned. An unban with
    ``logs bans --unban`` on the shared state lifts it everywhere; a watcher killed with
    ``kill -9`` and restarted resumes after its last committed line."""
    from nnscratch.cli import main

    hosts = ["web1", "web2", "web3"]
    logs_of = {h: tmp_path / f"{h}.log" for h in hosts}
    lists = {h: tmp_path / f"{h}.ban.txt" for h in hosts}
    for h in hosts:
        logs_of[h].write_text("")
    watchers = {h: _watch(watch_model, logs_of[h], database, h, lists[h]) for h in hosts}
    try:
        assert _until(lambda: _started(database) == set(hosts), 90) is not None  # each has opened its log
        for h in hosts:
            with logs_of[h].open("a") as f:
                f.write("".join(line + "\n" for line in human_lines(30, start=hosts.index(h) * 300)))
        with logs_of["web1"].open("a") as f:
            f.write("".join(line + "\n" for line in scanner_lines(logs, 80)))
        assert _until(lambda: SCANNER in _listed(lists["web1"]), 60) is not None
        late = [_until(lambda h=h: SCANNER in _listed(lists[h]), 10) for h in ("web2", "web3")]
        assert all(t is not None and t < 2.0 for t in late), late
        assert all(HUMAN not in _listed(lists[h]) for h in hosts)
        assert main(["logs", "bans", "--state", database, "--unban", SCANNER]) == 0
        assert all(_until(lambda h=h: SCANNER not in _listed(lists[h]), 10) is not None for h in hosts)
        watchers["web2"].send_signal(signal.SIGKILL)
        watchers["web2"].wait(timeout=30)
        with logs_of["web2"].open("a") as f:
            f.write("".join(line + "\n" for line in human_lines(5, start=9000)))
        watchers["web2"] = _watch(watch_model, logs_of["web2"], database, "web2", lists["web2"])
        store = PostgresStore(database, host="web2")
        try:
            assert _until(lambda: store.counter("lines") == 35, 60) is not None, store.counter("lines")
        finally:
            store.close()
    finally:
        _stop(watchers)


def test_one_watcher_per_host_of_the_fleet(database):
    """A second watcher with the same --fleet-host is refused while the first holds its place;
    another host is not; the place is free again when the first goes."""
    first, second, other = (PostgresStore(database, host=h) for h in ("web1", "web1", "web2"))
    try:
        first.lock()
        with pytest.raises(StateFileError, match="another watcher runs as host 'web1'"):
            second.lock()
        other.lock()
        first.close()
        second.lock()
    finally:
        for store in (second, other):
            store.close()


def test_a_database_outage_is_survived_judged_locally_and_caught_up(postgres, database, watch_model, logs, tmp_path):
    """The database stops mid-run: the watcher says so once, goes on reading and banning on its
    own host, and when the database is back commits what it decided, every line counted once."""
    log, ban_list = tmp_path / "web1.log", tmp_path / "web1.ban.txt"
    log.write_text("")
    proc = _watch(watch_model, log, database, "web1", ban_list)
    try:
        assert _until(lambda: _started(database) == {"web1"}, 90) is not None
        with log.open("a") as f:
            f.write("".join(line + "\n" for line in human_lines(20)))
        store = PostgresStore(database, host="web1")
        assert _until(lambda: store.counter("lines") == 20, 60) is not None
        store.close()
        postgres.stop()
        try:
            with log.open("a") as f:
                f.write("".join(line + "\n" for line in scanner_lines(logs, 80)))
            assert _until(lambda: SCANNER in _listed(ban_list), 60) is not None  # banned here, database or not
        finally:
            postgres.start()
        store = PostgresStore(database, host="web1")
        try:
            assert _until(lambda: store.counter("lines") == 100, 60) is not None, store.counter("lines")
            assert SCANNER in {b.address for b in store.bans()}
        finally:
            store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert b"unreachable" in err and b"is back" in err, err.decode()[-2000:]


PROBES = ["/wp-login.php", "/xmlrpc.php", "/phpmyadmin/index.php", "/administrator/index.php",
          "/wp-admin/setup-config.php", "/pma/index.php", "/myadmin/index.php", "/mysqladmin/index.php",
          "/user/register", "/admin.php", "/adminer.php", "/wp-content/plugins/x/readme.txt"]  # fmt: skip
PROBER = "203.0.113.77"


def _probe(i: int) -> str:
    return (
        f'{PROBER} - - [22/Dec/2016:21:30:{i:02d} +0300] "GET {PROBES[i]} HTTP/1.1" 404 209 "-" "Mozilla/5.0 '
        '(Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"'
    )


def test_a_prober_spread_over_three_hosts_is_banned_on_the_pooled_evidence(database, watch_model, tmp_path):
    """12 CMS probes, round-robin over three hosts: each host sees 4, too little evidence to judge
    (``classify`` bans nobody on any host's log alone), while one host seeing all 12 bans at its
    5th request. The fleet pools each client's evidence from every host: the prober is banned
    at its 5th to 8th request across the fleet (give or take a judgement step: the hosts judge
    on the others' last commits), on every host, as one offence."""
    import json

    from nnscratch.cli import main

    hosts = ["web1", "web2", "web3"]
    logs_of = {h: tmp_path / f"{h}.log" for h in hosts}
    lists = {h: tmp_path / f"{h}.ban.txt" for h in hosts}
    share = {h: [_probe(i) for i in range(k, 12, 3)] for k, h in enumerate(hosts)}
    for h in hosts:  # the control: each host's share alone is banned nowhere, all of it at request 5
        logs_of[h].write_text("".join(line + "\n" for line in share[h]))
        assert main(["logs", "classify", str(watch_model), str(logs_of[h]), "-o", str(tmp_path / "o.csv"),
                     "--ban-json", str(tmp_path / "b.json")]) == 0  # fmt: skip
        assert json.loads((tmp_path / "b.json").read_text()) == []
    whole = tmp_path / "whole.log"
    whole.write_text("".join(_probe(i) + "\n" for i in range(12)))
    assert main(["logs", "classify", str(watch_model), str(whole), "-o", str(tmp_path / "o.csv"), "--ban-json",
                 str(tmp_path / "b.json")]) == 0  # fmt: skip
    assert [b["ban_request"] for b in json.loads((tmp_path / "b.json").read_text())] == [5]
    for h in hosts:
        logs_of[h].write_text("")
    watchers = {h: _watch(watch_model, logs_of[h], database, h, lists[h]) for h in hosts}
    try:
        assert _until(lambda: _started(database) == set(hosts), 90) is not None
        for round_ in (share[h][:2] for h in hosts), (share[h][2:] for h in hosts):
            for h, lines in zip(hosts, round_, strict=True):
                with logs_of[h].open("a") as f:
                    f.write("".join(line + "\n" for line in lines))
            time.sleep(8)  # every host judges and commits its round (a poll is at most 5 s)
        assert all(_until(lambda h=h: PROBER in _listed(lists[h]), 20) is not None for h in hosts)
        store = PostgresStore(database)
        try:
            bans = [d for d in store.decisions(PROBER, limit=50) if d["action"] == "ban"]
            # The first ban comes at the fleet's 5th to 8th request (one host with all the traffic bans
            # at its 5th; a host judges on the others' last commits); a host that had not heard of it
            # yet may ban too, on all 12.
            assert bans and min(d["requests"] for d in bans) <= 8 and all(d["requests"] >= 5 for d in bans), bans
            assert store.offenses(PROBER) == 1  # however many hosts banned it at once
        finally:
            store.close()
    finally:
        for proc in watchers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in watchers.values():
            proc.communicate(timeout=60)


def _fleet_judged(url: str | None, model: Path, log: Path, folder: Path, stops: list[int]) -> tuple[list, dict]:
    """A fleet host watching ``log`` in steps of 97 lines (each step's commit overlapping the
    next step's reading), stopped dead after each count of steps in ``stops`` and started
    again: its dry-run bans and the memory it ends with. ``url`` None: one host's SQLite file."""
    from nnscratch.weblogs.watch.actions import Actions
    from nnscratch.weblogs.watch.watcher import Allowlist, BanPolicy, Watcher, WatchSettings

    def opened() -> Any:
        return PostgresStore(url, host="h") if url else Store(folder / "state.sqlite")

    for stop in [*stops, None]:
        store = opened()
        watcher = Watcher(model, [str(log)], store, Actions([], report=lambda m: None),
                          policy=BanPolicy(allowlist=Allowlist(ban_private=True)), report=lambda m: None,
                          settings=WatchSettings(from_start=True, dry_run=True, batch=97))  # fmt: skip
        watcher.restore()
        steps = 0
        while stop is None or steps < stop:
            steps += 1
            if watcher.step() == 0 and stop is None:
                break
        store.close()
    store = opened()
    try:
        bans = [(d["requests"], d["probability"]) for d in store.decisions(SCANNER, 100) if "dry-run" in d["action"]]
        return bans, store.memory()
    finally:
        store.close()


def test_a_fleet_host_stopped_dead_keeps_its_evidence_in_the_database(database, watch_model, logs, tmp_path):
    """Issue 26, fault 3, on PostgreSQL: a host's evidence is committed with its positions, so
    stopped dead twice mid-log it ends with the bans and the memory of an unbroken run."""
    import psycopg

    log = tmp_path / "access.log"
    lines = human_lines(200) + scanner_lines(logs, 400)
    log.write_text("".join(line + "\n" for line in sorted(lines, key=lambda r: r.split("[", 1)[1][:26])))
    whole = _fleet_judged(database, watch_model, log, tmp_path, [])
    with psycopg.connect(database, autocommit=True) as db:
        for table in ("positions", "counters", "bans", "offenders", "decisions", "evidence", "memory"):
            db.execute(f"DELETE FROM nnscratch_{table}")
    cut = _fleet_judged(database, watch_model, log, tmp_path, [2, 3])
    assert whole[0] and cut == whole and "client" in whole[1]
    assert _fleet_judged(None, watch_model, log, tmp_path, [])[0] == whole[0]  # one host's file: the same bans


def test_a_fleet_url_that_cannot_be_used_is_one_line_without_its_password(capsys):
    """Issue 29, class 1: a database that refuses, or a URL that does not parse ("Invalid IPv6
    URL", naming nothing), is one line that names the URL with its password hidden."""
    from nnscratch.cli import main

    for url in ("postgresql://watcher:secret@127.0.0.1:1/fleet", "postgresql://watcher:secret@[::1:5432/fleet"):
        assert main(["logs", "bans", "--state", url]) != 0
        err = capsys.readouterr().err
        assert "cannot be used" in err and "Check the --state URL" in err and len(err.strip().splitlines()) == 1, err
        assert "secret" not in err and "watcher:***@" in err
    assert main(["logs", "bans", "--state", "mysql://watcher:secret@db/fleet"]) == 2  # never a file of that name
    err = capsys.readouterr().err
    assert "--state takes an SQLite file or a postgresql:// URL" in err and "secret" not in err


@pytest.mark.slow
def test_three_nginx_one_database_the_scanner_is_refused_everywhere_the_person_never(
    database, watch_model, logs, tmp_path
):  # fmt: skip
    """Three real nginx servers on loopback ports, each writing its own access log, and a
    watcher on each acting through its nginx include; one PostgreSQL database. A person
    browses all three; a scanner spreads its requests over all three, round-robin. The
    scanner is refused by all three within 2 s of the line that decided its ban; the person
    never is; one watcher killed with ``kill -9`` mid-run and restarted loses no line."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed (Debian package nginx); .ci/run installs it")
    hosts = ["web1", "web2", "web3"]
    servers = {}
    for h in hosts:
        (tmp_path / h).mkdir()
        servers[h] = start_nginx(binary, tmp_path / h)
    watchers: dict[str, subprocess.Popen] = {}

    def watch(h: str) -> subprocess.Popen:
        server = servers[h]
        command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(watch_model), str(server["log"]), "--state",
                   database, "--fleet-host", h, "--nginx", str(server["dir"] / "deny.conf"), "--nginx-reload",
                   " ".join([*server["control"], "-s", "reload"]), "--ban-private", "--poll", "0.2",
                   "--status-every", "1000"]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    try:
        watchers = {h: watch(h) for h in hosts}
        assert _until(lambda: _started(database) == set(hosts), 90) is not None
        ports = [servers[h]["port"] for h in hosts]
        person: list[int] = []
        pages = ["/index.html", "/about.html", "/news.html", "/contact.html"]
        for k in range(9):  # a page and its assets from each server in turn
            port, page = ports[k % 3], pages[k % 4]
            person.append(get(port, "127.0.0.2", page, BROWSER, f"http://127.0.0.1:{port}/"))
            for asset in ("/style.css", "/app.js"):
                person.append(get(port, "127.0.0.2", asset, BROWSER, f"http://127.0.0.1:{port}{page}"))
            if k == 4:  # web2's watcher dies mid-run and comes back
                watchers["web2"].send_signal(signal.SIGKILL)
                watchers["web2"].wait(timeout=30)
                watchers["web2"] = watch("web2")
            time.sleep(0.4)
        refused: dict[str, float] = {}
        targets = [line.split('"')[1].split(" ")[1] for line in scanner_lines(logs, 600) if '"GET ' in line]
        for i, target in enumerate(targets[:450]):  # at most 450 requests, about 20 a second
            h = hosts[i % 3]
            if get(servers[h]["port"], "127.0.0.3", target, "w3af.org") == 403:
                refused.setdefault(h, time.time())
            if len(refused) == 3:
                break
            time.sleep(0.05)
        assert set(refused) == set(hosts), refused
        store = PostgresStore(database, host="web1")
        try:
            decided = min(d["time"] for d in store.decisions("127.0.0.3", limit=20) if d["action"] == "ban")
        finally:
            store.close()
        # Log times have whole seconds: the deciding line was logged in [decided, decided + 1).
        late = {h: t - (decided + 1) for h, t in refused.items()}
        print(f"refused after the deciding line's second: {late}; scanner requests sent: {i + 1}")
        assert all(seconds <= 2.0 for seconds in late.values()), late
        assert set(person) == {200}, person
        time.sleep(1.0)  # the last lines reach the watchers
    finally:
        _stop(watchers)
        for server in servers.values():
            stop_nginx(server)
    for h in hosts:  # every line counted once on its host, across web2's kill -9
        store = PostgresStore(database, host=h)
        try:
            assert store.counter("lines") == len(servers[h]["log"].read_text().splitlines()), h
        finally:
            store.close()
        assert "127.0.0.2" not in (servers[h]["dir"] / "deny.conf").read_text()
