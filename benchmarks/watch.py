"""The live watcher under load: follow throughput, time to ban, memory with many clients.

``python -m benchmarks.watch MODEL [--lines 300000]`` runs ``nnscratch logs watch`` (the CLI, as
an operator would) on a log that a writer thread appends to, and reports:

1. **throughput**: lines/s while the writer appends a generated log as fast as it can;
2. **time to ban**: the writer paces background traffic at ``--rate`` lines/s and every two
   seconds starts a scanner from a fresh address (the shared w3af requests); for each, the
   time from writing the line after which the client model's verdict becomes "ban" (found
   by replaying that scanner's lines through the same verdict code) to the ban event on the
   watcher's standard output; median and 99th percentile;
3. **memory**: the watcher's peak resident memory while ``--clients`` distinct addresses
   (one request each) stream through.

Every figure comes from one run on this machine; see docs/weblogs.md for the measured values.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STAMP = re.compile(r"\[[^\]]+\]")


def now_stamped(lines: list[str]) -> str:
    """The lines with the current time as their time stamp (as a live server writes them)."""
    stamp = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime())
    return "".join(STAMP.sub(stamp, line, count=1) + "\n" for line in lines)


def rss_mb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) // 1024
    except (OSError, StopIteration, ValueError):
        return 0


def start_watcher(model: str, log: Path, folder: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", model, str(log), "--state",
               str(folder / "state.sqlite"), "--events", "-", "--ban-private", "--status-every", "100000",
               "--poll", "0.05", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(watcher: subprocess.Popen, folder: Path, lines: int, limit: float = 600.0) -> None:
    """Until the watcher has committed ``lines`` lines; stops with its error output if it died."""
    deadline = time.time() + limit
    while lines_done(folder) < lines:
        if watcher.poll() is not None:
            raise SystemExit(f"the watcher stopped: {watcher.communicate()[1][-2000:]}")
        if time.time() > deadline:
            raise SystemExit(f"the watcher committed {lines_done(folder):,} of {lines:,} lines in {limit:.0f} s")
        time.sleep(0.1)


def lines_done(folder: Path) -> int:
    from nnscratch.weblogs.watch.state import Store

    if not (folder / "state.sqlite").exists():
        return 0
    store = Store(folder / "state.sqlite")
    try:
        return store.counter("lines")
    finally:
        store.close()


def sample_lines(n: int) -> list[str]:
    from benchmarks.weblogs_throughput import generate

    path = Path(tempfile.mkdtemp()) / "sample.log"
    generate(path, n)
    return path.read_text().splitlines()


def throughput(model: str, lines: list[str], folder: Path) -> None:
    log = folder / "access.log"
    log.write_text("")
    watcher = start_watcher(model, log, folder)
    time.sleep(2.0)
    start = time.perf_counter()
    with log.open("a") as f:
        for i in range(0, len(lines), 5000):
            f.write("".join(line + "\n" for line in lines[i : i + 5000]))
            f.flush()
    written = time.perf_counter() - start
    wait_for(watcher, folder, len(lines))
    seconds = time.perf_counter() - start
    watcher.terminate()
    watcher.communicate(timeout=60)
    print(f"throughput: {len(lines):,} lines in {seconds:.1f} s = {len(lines) / seconds:,.0f} lines/s "
          f"(the writer took {written:.1f} s)")  # fmt: skip


def deciding_line(model: str, scanner: list[str]) -> int:
    """The index of the scanner's line after which the decision procedure bans it, fed one
    line at a time as a watcher that has caught up with its log is."""
    from nnscratch.weblogs.lines.formats.combined import parse_line
    from nnscratch.weblogs.model.weblog import WebLogModel
    from nnscratch.weblogs.serve.decision import Decider

    decider = Decider(WebLogModel.load(model))
    for k, line in enumerate(scanner):
        if decider.feed([(k, parse_line(line))], end=True).bans:
            return k
    raise SystemExit("the scanner is never banned by this model")


def time_to_ban(model: str, background: list[str], folder: Path, logs: Path, rate: float, scanners: int) -> None:
    import numpy as np

    log = folder / "latency.log"
    log.write_text("")
    watcher = start_watcher(model, log, folder)
    w3af = [r for r in (logs / "scanner_w3af_2016-12-22.log").read_text().splitlines() if '"w3af.org"' in r][:60]
    template = [r[r.index(" ") :] for r in w3af]
    decide = deciding_line(model, ["10.99.0.1" + t for t in template])
    written: dict[str, float] = {}
    banned: dict[str, float] = {}

    def read_events() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            event = json.loads(line)
            if event["event"] == "ban":
                banned.setdefault(event["address"], time.time())

    threading.Thread(target=read_events, daemon=True).start()
    time.sleep(2.0)
    per_tick, tick = max(int(rate / 20), 1), 0.05
    next_scanner, k, i = time.time() + 1.0, 0, 0
    active: list[tuple[str, int]] = []
    with log.open("a") as f:
        while k < scanners or active:
            start = time.time()
            chunk = background[i : i + per_tick]
            i = (i + per_tick) % max(len(background) - per_tick, 1)
            if time.time() >= next_scanner and k < scanners:
                active.append((f"10.99.{k // 250}.{k % 250 + 1}", 0))
                k, next_scanner = k + 1, next_scanner + 2.0
            progressed = []
            for address, j in active:
                burst = [address + t for t in template[j : j + 3]]  # a scanner at 60 lines/s
                chunk += burst
                if j <= decide < j + 3:
                    written[address] = -1.0  # set after the write below
                progressed.append((address, j + 3))
            f.write(now_stamped(chunk))
            f.flush()
            now = time.time()
            for address, _ in active:
                if written.get(address) == -1.0:
                    written[address] = now
            active = [(a, j) for a, j in progressed if j < len(template)]
            time.sleep(max(tick - (time.time() - start), 0.0))
    time.sleep(3.0)
    watcher.terminate()
    _, err = watcher.communicate(timeout=60)
    if not banned:
        raise SystemExit(f"no ban event came; the watcher said: {err[-2000:]}")
    delays = np.array([banned[a] - written[a] for a in written if a in banned])
    missed = len(written) - len(delays)
    print(f"time to ban at {rate:,.0f} lines/s: {len(delays)} of {len(written)} scanners banned; median "
          f"{np.median(delays):.2f} s, p99 {np.percentile(delays, 99):.2f} s, max {delays.max():.2f} s"
          + (f"; {missed} not banned" if missed else ""))  # fmt: skip


def memory(model: str, clients: int, folder: Path) -> None:
    log = folder / "clients.log"
    log.write_text("")
    watcher = start_watcher(model, log, folder)
    time.sleep(2.0)
    peak = 0
    with log.open("a") as f:
        for start in range(0, clients, 20_000):
            f.write("".join(
                f'10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255} - - [01/Jan/2024:00:{k // 60000 % 60:02d}:'
                f'{k // 1000 % 60:02d} +0000] "GET /page{k % 50}.html HTTP/1.1" 200 512 "-" "Mozilla/5.0 '
                f'(Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"\n'
                for k in range(start, min(start + 20_000, clients))))  # fmt: skip
            f.flush()
            peak = max(peak, rss_mb(watcher.pid))
            while lines_done(folder) < start - 100_000:  # stay about one step ahead
                time.sleep(0.05)
                peak = max(peak, rss_mb(watcher.pid))
    while lines_done(folder) < clients:
        wait_for(watcher, folder, min(lines_done(folder) + 1, clients), limit=600)
        time.sleep(0.2)
        peak = max(peak, rss_mb(watcher.pid))
    watcher.terminate()
    watcher.communicate(timeout=60)
    print(f"memory: {clients:,} distinct addresses, peak resident memory of the watcher {peak} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--scanners", type=int, default=30)
    parser.add_argument("--clients", type=int, default=1_000_000)
    args = parser.parse_args()
    logs = Path(os.environ.get("NNSCRATCH_DATA", "../shared/data")) / "logs"
    lines = sample_lines(args.lines)
    for name, run in (("throughput", lambda d: throughput(args.model, lines, d)),
                      ("time to ban", lambda d: time_to_ban(args.model, lines, d, logs, args.rate, args.scanners)),
                      ("memory", lambda d: memory(args.model, args.clients, d))):  # fmt: skip
        with tempfile.TemporaryDirectory(prefix=f"nnscratch-{name.replace(' ', '-')}-") as folder:
            run(Path(folder))


if __name__ == "__main__":
    main()
