"""End to end against the real thing: nginx serves a site on 127.0.0.1 and writes its access log,
a person browses from 127.0.0.2 and a scanner from 127.0.0.3, and ``nnscratch logs watch`` bans
the scanner through an nginx include (then through an nftables set of its own). Traffic goes only
to loopback addresses, bounded in count and time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.watch_helpers import BROWSER, get, scanner_lines, start_nginx, stop_nginx

from nnscratch.weblogs.watch.state import Store

pytestmark = pytest.mark.slow


def _need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        message = f"{tool} is not installed (Debian package {'nftables' if tool == 'nft' else tool})"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    return path


@pytest.fixture
def nginx(tmp_path):
    server = start_nginx(_need("nginx"), tmp_path)
    yield server
    stop_nginx(server)


def watch(model: Path, log: Path, state: Path, *actions: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model), str(log), "--state", str(state),
               "--ban-private", "--ban-time", "6", "--poll", "0.05", "--status-every", "1000", *actions]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    return err.decode()


def scanner_targets(logs: Path, n: int) -> list[str]:
    return [line.split('"')[1].split(" ")[1] for line in scanner_lines(logs, 400) if '"GET ' in line][:n]


def test_nginx_bans_the_scanner_keeps_the_person_and_survives_rotation(nginx, watch_model, logs):
    port, folder = nginx["port"], nginx["dir"]
    watcher = watch(watch_model, nginx["log"], folder / "state.sqlite", "--nginx", str(folder / "deny.conf"),
                    "--nginx-reload", " ".join([*nginx["control"], "-s", "reload"]),
                    "--events", str(folder / "events.jsonl"))  # fmt: skip
    # The watcher opens the log at its end at its first step, right after it says it is watching
    # (a fixed sleep raced a slow model load on a busy machine: the first page's lines were missed).
    assert b"watching" in watcher.stderr.readline()
    time.sleep(0.5)
    pages = ["/index.html", "/about.html", "/news.html", "/contact.html"]
    human: list[int] = []

    def browse(k: int) -> None:
        page = pages[k % len(pages)]
        human.append(get(port, "127.0.0.2", page, BROWSER, f"http://127.0.0.1:{port}/"))
        for asset in ("/style.css", "/app.js"):
            human.append(get(port, "127.0.0.2", asset, BROWSER, f"http://127.0.0.1:{port}{page}"))

    for k in range(4):
        browse(k)
        time.sleep(0.7)
    start, banned_after, scanner = time.time(), None, []
    for target in scanner_targets(logs, 300):  # at most 300 requests, 20 a second
        status = get(port, "127.0.0.3", target, "w3af.org")
        scanner.append(status)
        if status == 403:
            banned_after = time.time() - start
            break
        time.sleep(0.05)
    assert banned_after is not None and banned_after < 15, scanner[-5:]
    for k in range(4, 8):  # the person goes on browsing, and the log is rotated meanwhile
        browse(k)
        if k == 5:
            os.rename(nginx["log"], folder / "access.log.1")
            subprocess.run([*nginx["control"], "-s", "reopen"], check=True, timeout=10)
        time.sleep(0.7)
    assert set(human) == {200}, human
    assert "deny 127.0.0.3;" in (folder / "deny.conf").read_text()
    time.sleep(7.0)  # the 6-second ban runs out (a banned client that keeps knocking would be extended)
    assert get(port, "127.0.0.3", "/index.html", "w3af.org") == 200
    time.sleep(1.5)
    stop(watcher)
    written = sum(len(p.read_text().splitlines()) for p in (folder / "access.log.1", nginx["log"]))
    store = Store(folder / "state.sqlite")
    assert store.counter("lines") == written  # the rotation lost no line and repeated none
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["address"]) for e in events][:2] == [("ban", "127.0.0.3"), ("unban", "127.0.0.3")]
    assert "127.0.0.2" not in {e["address"] for e in events}


def test_nftables_set_drops_the_scanner(nginx, watch_model, logs):
    nft = _need("nft")
    probe = subprocess.run([nft, "list", "tables"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"nftables cannot run here: {probe.stderr.strip()}")
    port, folder, table = nginx["port"], nginx["dir"], f"nnscratch_test_{os.getpid()}"
    watcher = watch(watch_model, nginx["log"], folder / "nft.sqlite", "--nft", "--nft-apply", "--nft-table", table)
    try:
        time.sleep(1.5)
        statuses = []
        for target in scanner_targets(logs, 300):
            status = get(port, "127.0.0.4", target, "w3af.org", timeout=1.0)
            statuses.append(status)
            if status == 0:  # dropped: nothing answers
                break
            time.sleep(0.05)
        assert statuses[-1] == 0 and len(statuses) < 300, statuses[-5:]
        listed = subprocess.run([nft, "list", "set", "inet", table, "banned4"], capture_output=True, text=True)
        assert "127.0.0.4" in listed.stdout and "timeout" in listed.stdout
        assert get(port, "127.0.0.2", "/index.html", BROWSER) == 200  # others still get through
        stop(watcher)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        subprocess.run([nft, "delete", "table", "inet", table], capture_output=True)


def test_ipset_restore_loads_both_families_into_the_real_ipset(watch_model, tmp_path):
    """The --ipset file, handed to the real ``ipset restore`` in a private network namespace:
    the IPv4 set and the IPv6 set hold their bans, with their timeouts."""
    ipset, unshare = _need("ipset"), _need("unshare")
    from nnscratch.weblogs.watch.actions import IpsetRestore
    from nnscratch.weblogs.watch.state import Ban

    now = time.time()
    path = tmp_path / "ipset.txt"
    IpsetRestore(path).apply([], [Ban("203.0.113.7", now, now + 300, "x"), Ban("2001:db8::7", now, now + 60, "x"),
                                  Ban("198.51.100.0/24", now, now + 300, "manual: x")])  # fmt: skip
    script = f"{ipset} restore -f {path} && {ipset} list nnscratch && {ipset} list nnscratch6"
    run = subprocess.run([unshare, "-n", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    if run.returncode != 0 and "Operation not permitted" in run.stderr:
        pytest.skip(f"no network namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    v4, v6 = run.stdout.split("Name: nnscratch6")
    assert "203.0.113.7 timeout 29" in v4 and "family inet" in v4 and "198.51.100.0/24 timeout 29" in v4
    assert "2001:db8::7 timeout 5" in v6 and "family inet6" in v6


def test_nftables_commands_load_into_the_real_nft_with_range_bans(tmp_path):
    """The nft action's commands (table, interval sets, drop chain, then single-address and range
    bans of both families) handed to the real ``nft -f`` in a private network namespace."""
    nft, unshare = _need("nft"), _need("unshare")
    from nnscratch.weblogs.watch.actions import Change, NftablesSet

    action = NftablesSet("nnscratch_ranges")
    changes = [Change("ban", "203.0.113.7", 300), Change("ban", "198.51.100.0/24", 300),
               Change("ban", "2001:db8:1::/64", 60), Change("extend", "203.0.113.7", 600)]  # fmt: skip
    script = tmp_path / "nft.txt"
    script.write_text("\n".join(action.setup_commands() + action.commands(changes)) + "\n")
    listing = f"{nft} -f {script} && {nft} list table inet nnscratch_ranges"
    run = subprocess.run([unshare, "-n", "sh", "-c", listing], capture_output=True, text=True, timeout=30)
    if run.returncode != 0 and "Operation not permitted" in run.stderr:
        pytest.skip(f"no network namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert "198.51.100.0/24 timeout 5m" in run.stdout and "2001:db8:1::/64 timeout 1m" in run.stdout
    assert "203.0.113.7 timeout 10m" in run.stdout and "flags interval,timeout" in run.stdout
