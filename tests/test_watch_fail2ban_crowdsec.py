"""The watcher against the real fail2ban and CrowdSec (issue 26): a private ``fail2ban-server``
with a jail of its own, and an offline CrowdSec local API, each in a temporary folder.

``.ci/run`` installs both packages (CrowdSec with the central API declined, as its
README.Debian documents); a machine without them fails here rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.watch_helpers import SCANNER, human_lines, scanner_lines


def _need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.fail(f"{program} is not installed: .ci/run installs it (apt-get install fail2ban crowdsec)")
    return found


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def _watch(model: Path, log: Path, state: Path, events: Path, *actions: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "nnscratch",
        "logs",
        "watch",
        str(model),
        str(log),
        "--state",
        str(state),
        "--ban-private",
        "--poll",
        "0.1",
        "--status-every",
        "1000",
        "--events",
        str(events),
        *actions,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def _events(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [(e["event"], e["address"]) for e in map(json.loads, path.read_text().splitlines())]


# --- fail2ban ------------------------------------------------------------------------------------------------------


@pytest.fixture
def fail2ban(tmp_path: Path) -> Iterator[list[str]]:
    """A running fail2ban-server with jail ``nnscratch`` (no filter matches; its action only
    records), bantime -1 so that lifting is left to the watcher. Yields the client command."""
    _need("fail2ban-client")
    conf = tmp_path / "fail2ban"
    (conf / "filter.d").mkdir(parents=True)
    (conf / "action.d").mkdir()
    sock, record = tmp_path / "f2b.sock", tmp_path / "f2b-actions.txt"
    (conf / "fail2ban.conf").write_text(
        f"[Definition]\nloglevel = INFO\nlogtarget = {tmp_path}/f2b.log\n"
        f"socket = {sock}\npidfile = {tmp_path}/f2b.pid\ndbfile = :memory:\n"
    )
    (tmp_path / "f2b-watched.log").touch()
    (conf / "jail.conf").write_text(
        f"[DEFAULT]\nbackend = polling\n\n[nnscratch]\nenabled = true\nfilter = none\n"
        f"logpath = {tmp_path}/f2b-watched.log\nbantime = -1\naction = record\n"
    )
    (conf / "filter.d" / "none.conf").write_text("[Definition]\nfailregex = ^never matches <HOST>$\n")
    (conf / "action.d" / "record.conf").write_text(f"[Definition]\nactionban = echo ban <ip> >> {record}\n"
                                                   f"actionunban = echo unban <ip> >> {record}\n")  # fmt: skip
    client = ["fail2ban-client", "-c", str(conf), "-s", str(sock)]
    started = subprocess.run([*client, "-p", str(tmp_path / "f2b.pid"), "start"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield client
    finally:
        subprocess.run([*client, "stop"], capture_output=True, timeout=60)


def _jail_banned(client: list[str]) -> list[str]:
    out = subprocess.run([*client, "get", "nnscratch", "banned"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().replace("'", '"') or "[]")


def test_fail2ban_gets_the_ban_lifts_it_on_expiry_and_after_a_restart(watch_model, logs, tmp_path, fail2ban):
    log, state, events = tmp_path / "access.log", tmp_path / "state.sqlite", tmp_path / "events.jsonl"
    log.touch()
    args = ("--fail2ban", "nnscratch", "--fail2ban-client-args", f"-c {fail2ban[2]} -s {fail2ban[4]}")
    scan = scanner_lines(logs, 200)
    # 1. Banned in the jail, and lifted there when the ban ends, while the watcher runs.
    # The lines are written before each start: a watcher still loading its model must not miss them.
    _append(log, human_lines(20) + scan[:60])
    watcher = _watch(watch_model, log, state, events, "--ban-time", "3", "--from-start", *args)
    _until(lambda: SCANNER in _jail_banned(fail2ban), 30, "fail2ban lists the scanner")
    assert _jail_banned(fail2ban) == [SCANNER]  # the person is not banned
    _until(lambda: _jail_banned(fail2ban) == [], 15, "the watcher lifts the expired ban in fail2ban")
    _stop(watcher)
    assert _events(events) == [("ban", SCANNER), ("unban", SCANNER)]
    # 2. A second ban (6 s: a second offence) that ends while the watcher is down is lifted at its restart.
    _append(log, scan[60:120])  # read from where the first run's state left the file
    watcher = _watch(watch_model, log, state, events, "--ban-time", "3", *args)
    _until(lambda: SCANNER in _jail_banned(fail2ban), 30, "fail2ban lists the returning scanner")
    _stop(watcher)
    assert SCANNER in _jail_banned(fail2ban)  # the watcher is down, fail2ban holds the ban
    time.sleep(6.5)
    watcher = _watch(watch_model, log, state, events, "--ban-time", "3", *args)
    _until(lambda: _jail_banned(fail2ban) == [], 30, "the restarted watcher lifts what expired meanwhile")
    _stop(watcher)
    assert _events(events)[2:] == [("ban", SCANNER), ("unban", SCANNER)]  # each expiry once, no ban replayed
    recorded = (tmp_path / "f2b-actions.txt").read_text().split("\n")
    assert recorded[:4] == [f"ban {SCANNER}", f"unban {SCANNER}", f"ban {SCANNER}", f"unban {SCANNER}"]


def test_fail2ban_says_once_that_a_jail_is_missing_or_lifts_bans_too_soon(tmp_path, fail2ban):
    from nnscratch.weblogs.watch.actions import Actions, Change, Fail2ban

    reports: list[str] = []
    client_args = " ".join(fail2ban[1:])
    missing = Actions([Fail2ban("no-such-jail", client_args=client_args)], report=reports.append, retry_after=60)
    missing.apply([Change("ban", "203.0.113.7", 600)], [])
    missing.apply([Change("ban", "203.0.113.8", 600)], [], force=True)
    assert len(reports) == 1 and "fail2ban has no jail 'no-such-jail'" in reports[0] and "jail.local" in reports[0]
    assert subprocess.run([*fail2ban, "set", "nnscratch", "bantime", "60"], capture_output=True).returncode == 0
    reports.clear()
    short = Actions([Fail2ban("nnscratch", client_args=client_args)], report=reports.append)
    short.apply([Change("ban", "203.0.113.9", 600), Change("ban", "203.0.113.10", 600)], [])
    assert _jail_banned(fail2ban) == ["203.0.113.9", "203.0.113.10"]
    assert len(reports) == 1 and "lifts bans after 60 s" in reports[0] and "bantime = -1" in reports[0]


# --- CrowdSec ------------------------------------------------------------------------------------------------------


@pytest.fixture
def crowdsec(tmp_path: Path) -> Iterator[list[str]]:
    """CrowdSec's local API alone (``crowdsec -no-cs``: no log acquisition), offline (no central
    API), on a free loopback port, with a machine registered for cscli. Yields the cscli command."""
    _need("crowdsec")
    _need("cscli")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "crowdsec"
    (folder / "data").mkdir(parents=True)
    (folder / "acquis.yaml").touch()
    config = folder / "config.yaml"
    config.write_text(f"""common:
  daemonize: false
  log_media: file
  log_dir: {folder}
  log_level: info
config_paths:
  config_dir: {folder}/
  data_dir: {folder}/data/
  simulation_path: {folder}/simulation.yaml
  hub_dir: {folder}/hub/
  index_path: {folder}/hub/.index.json
  notification_dir: {folder}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: {folder}/acquis.yaml
db_config:
  type: sqlite
  db_path: {folder}/data/crowdsec.db
  use_wal: true
api:
  client:
    credentials_path: {folder}/local_api_credentials.yaml
  server:
    listen_uri: 127.0.0.1:{port}
    profiles_path: /etc/crowdsec/profiles.yaml
prometheus:
  enabled: false
""")
    (folder / "simulation.yaml").write_text("simulation: off\n")
    cscli = ["cscli", "-c", str(config)]
    added = subprocess.run(
        [*cscli, "machines", "add", "nnscratch-test", "--auto", "-f", str(folder / "local_api_credentials.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    server = subprocess.Popen(["crowdsec", "-c", str(config), "-no-cs"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        _until(listening, 30, "CrowdSec's local API listens")
        yield cscli
    finally:
        server.terminate()
        server.wait(timeout=30)


def _decisions(cscli: list[str]) -> list[tuple[str, str]]:
    out = subprocess.run([*cscli, "decisions", "list", "-a", "-o", "json"], capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout or "null") or []
    return sorted((d["value"], d["origin"]) for a in alerts for d in a.get("decisions") or [])


def test_crowdsec_gets_bans_once_and_loses_them_when_lifted(watch_model, logs, tmp_path, crowdsec):
    log, state, events = tmp_path / "access.log", tmp_path / "state.sqlite", tmp_path / "events.jsonl"
    log.touch()
    args = ("--cscli", " ".join(crowdsec), "--ban-time", "600")
    _append(log, human_lines(20) + scanner_lines(logs, 60))
    watcher = _watch(watch_model, log, state, events, "--from-start", *args)
    _until(lambda: _decisions(crowdsec) == [(SCANNER, "cscli")], 30, "CrowdSec holds the scanner's decision")
    _stop(watcher)
    watcher = _watch(watch_model, log, state, events, *args)  # the restart applies the ban again: no duplicate
    _until(lambda: ("restore", SCANNER) in _events(events), 30, "the restart restores the ban")
    assert _decisions(crowdsec) == [(SCANNER, "cscli")]
    lifted = subprocess.run([sys.executable, "-m", "nnscratch", "logs", "bans", "--state", str(state), "--unban",
                             SCANNER], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert lifted.returncode == 0, lifted.stderr
    _until(lambda: _decisions(crowdsec) == [], 20, "the lifted ban leaves CrowdSec (600 s before it would expire)")
    _stop(watcher)
    assert _events(events) == [("ban", SCANNER), ("restore", SCANNER), ("unban", SCANNER)]
