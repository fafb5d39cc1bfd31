"""``logs watch --journal UNIT`` against a real systemd-journald and journalctl.

Each test starts a journald of its own in a journal namespace (``systemd-journald NAME``, as
``systemd-journald@NAME.service`` runs it), so the machine's own journal is never touched;
entries are sent to its socket with the native protocol, as a service's logging does. The
watcher runs through the CLI with ``--journalctl 'journalctl --namespace NAME'``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.watch_helpers import HUMAN, SCANNER, human_lines, lines_done, scanner_lines

JOURNALD = next((p for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
                 if Path(p).exists()), None)  # fmt: skip
UNIT = "nnscratch-test-nginx.service"


def _needs(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the journal tests: {why}")
        pytest.skip(why)


@pytest.fixture
def journal():
    """A journald in a namespace of its own: ``(name, send)``; ``send(lines, unit)`` logs
    each line as one entry of ``unit`` (bytes that are not UTF-8 go as a binary field)."""
    _needs(JOURNALD is not None and shutil.which("journalctl") is not None, "systemd-journald and journalctl")
    _needs(os.geteuid() == 0, "journald keeps a namespace's socket under /run/systemd: root only")
    name = f"nnscratch{os.getpid()}x{time.monotonic_ns() % 100_000}"
    proc = subprocess.Popen([JOURNALD, name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = Path(f"/run/systemd/journal.{name}/socket")
    deadline = time.time() + 20
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no journald socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # A namespace's journald exits when idle for 30 s; an open stdout stream (what a running
    # service holds) keeps it for the test's length.
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.connect(str(path.with_name("stdout")))
    stream.sendall(b"nnscratch-test\n\n6\n0\n0\n0\n0\n")

    def send(lines: list[bytes | str], unit: str = UNIT) -> None:
        for line in lines:
            data = line.encode() if isinstance(line, str) else line
            # A trusted field names the unit for `journalctl --unit` (sent by root, as a daemon does for a unit).
            head = f"OBJECT_SYSTEMD_UNIT={unit}\nSYSLOG_IDENTIFIER=nginx\n".encode()
            sock.sendto(head + b"MESSAGE\n" + struct.pack("<Q", len(data)) + data + b"\n", str(path))

    try:
        yield name, send
    finally:
        sock.close()
        stream.close()
        proc.terminate()
        proc.wait(timeout=10)
        machine = Path("/etc/machine-id").read_text().strip()
        for folder in (Path(f"/run/systemd/journal.{name}"), Path(f"/var/log/journal/{machine}.{name}"),
                       Path(f"/run/log/journal/{machine}.{name}")):  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)


def _watch(model: Path, name: str, state: Path, ban_list: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model), "--journal", UNIT, "--state",
               str(state), "--journalctl", f"journalctl --namespace {name}", "--ban-list", str(ban_list),
               "--ban-private", "--poll", "0.05", "--status-every", "1000", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _until(condition, proc: subprocess.Popen, limit: float = 60.0) -> None:
    start = time.time()
    while time.time() < start + limit and proc.poll() is None and not condition():
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()
    if not condition():
        proc.terminate()
        raise AssertionError(f"not reached in {limit:.0f} s; the watcher said: {proc.communicate()[1].decode()}")


def test_watch_follows_a_units_journal_and_resumes_after_its_cursor(journal, watch_model, logs, tmp_path):
    """The scanner in the unit's journal is banned, another unit's entries are not read, a
    message that is not UTF-8 is a line like the others, and a watcher stopped and started
    again resumes right after the last line it committed (nothing read twice or skipped),
    also for lines written while it was down."""
    name, send = journal
    state, ban_list = tmp_path / "state.sqlite", tmp_path / "ban.txt"
    other = "203.0.113.77"
    send(scanner_lines(logs, 60, host=other), unit="some-other.service")
    first = human_lines(20) + [f'{HUMAN} - - [22/Dec/2016:21:59:00 +0300] "GET /caf\xe9 HTTP/1.1" 200 5 "-" "x"'.encode(
        "latin-1")] + scanner_lines(logs, 60)  # fmt: skip
    send(first)
    proc = _watch(watch_model, name, state, ban_list, "--from-start")
    _until(lambda: lines_done(state) >= len(first), proc)
    _until(lambda: ban_list.exists() and ban_list.read_text() == SCANNER + "\n", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    second = scanner_lines(logs, 60, host="203.0.113.88")  # written while the watcher was down
    send(second)
    proc = _watch(watch_model, name, state, ban_list)  # no --from-start: the cursor says where
    try:
        _until(lambda: lines_done(state) >= len(first) + len(second), proc)
        _until(lambda: "203.0.113.88" in ban_list.read_text(), proc)
        time.sleep(0.5)
        assert lines_done(state) == len(first) + len(second)  # none twice, none skipped, no other unit's
        third = human_lines(5, start=4000)
        send(third)  # and live, while it runs
        _until(lambda: lines_done(state) >= len(first) + len(second) + len(third), proc)
        assert lines_done(state) == len(first) + len(second) + len(third)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert other not in ban_list.read_text()
    with sqlite3.connect(state) as db:
        cursor = db.execute("SELECT value FROM memory WHERE kind = 'cursor'").fetchone()[0]
    assert cursor.startswith(b"s=") and b";i=" in cursor  # journald's own cursor


def test_a_journalctl_that_cannot_run_or_exits_is_reported(journal, watch_model, tmp_path):
    name, _ = journal
    from nnscratch.cli import main

    state = tmp_path / "state.sqlite"
    assert main(["logs", "watch", str(watch_model), "--journal", UNIT, "--journalctl", "/nonexistent/journalctl",
                 "--state", str(state), "--dry-run"]) == 2  # fmt: skip
    assert main(["logs", "watch", str(watch_model), "--state", str(state), "--dry-run"]) == 2
    # A journalctl that exits (a bad option here) is reported with its own words, and run again later.
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(watch_model), "--journal", UNIT,
               "--journalctl", f"journalctl --namespace {name} --no-such-option", "--state", str(state),
               "--dry-run", "--poll", "0.05"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    text = err.decode()
    assert text.count("exited with status 1") == 1 and "no-such-option" in text and "run again in 5 s" in text
