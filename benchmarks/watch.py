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
   (one request each) stream through, written ahead of the watcher (a backlog), and
   **memory-live** the same written at ``--live`` lines/s (a watcher that keeps up).

With ``--postgres URL`` (a PostgreSQL server the benchmark may fill: it drops the fleet's
tables first), the same watcher with its state there (``--state URL``), and a fleet:

4. **throughput against SQLite**: the throughput run with each state in turn, ``--rounds``
   interleaved rounds (which one goes first alternates); the median ratio of lines/s;
5. **memory** and **memory-live** as in 3, with the state in PostgreSQL;
6. **propagation**: three watchers, one log each, background traffic at ``--rate`` lines/s
   spread over them, and every two seconds a scanner from a fresh address spread
   round-robin over the three; for each scanner, the time from the first host's ban event
   to the last host's (each host's own ``ban`` or the fleet's ``restore``): median and 99th
   percentile;
7. **faults**: the same three-host replay while 20 watchers (a random host each time) are
   killed with ``kill -9`` and restarted, and the database is restarted twice
   (``--pg-ctl "pg_ctl -D DIR -l LOG"``, the command that restarts it); at the end every host's
   line count equals its log's lines, every scanner is banned on every host, and no
   address is listed twice in any host's ban list or banned twice in the fleet.

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
from typing import Any

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


def start_watcher(model: str, log: Path, folder: Path, *extra: str, url: str | None = None,
                  host: str = "bench") -> subprocess.Popen:  # fmt: skip
    """``logs watch`` on ``log``, its state in ``folder`` or, with ``url``, in that database as ``host``."""
    state = [url, "--fleet-host", host] if url else [str(folder / "state.sqlite")]
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", model, str(log), "--state", *state,
               "--events", "-", "--ban-private", "--status-every", "100000", "--poll", "0.05", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def drain(watcher: subprocess.Popen) -> None:
    """Read the watcher's events and forget them: a full pipe would stop it."""
    threading.Thread(target=lambda: [None for _ in watcher.stdout], daemon=True).start()


def wait_for(watcher: subprocess.Popen, folder: Path, lines: int, limit: float = 600.0, url: str | None = None,
             host: str = "bench") -> None:  # fmt: skip
    """Until the watcher has committed ``lines`` lines; stops with its error output if it died."""
    deadline = time.time() + limit
    while lines_done(folder, url, host) < lines:
        if watcher.poll() is not None:
            raise SystemExit(f"the watcher stopped: {watcher.communicate()[1][-2000:]}")
        if time.time() > deadline:
            raise SystemExit(f"the watcher committed {lines_done(folder, url, host):,} of {lines:,} lines in "
                             f"{limit:.0f} s")  # fmt: skip
        time.sleep(0.1)


_POLLERS: dict[str, Any] = {}  # one connection per database that the benchmark polls


def lines_done(folder: Path, url: str | None = None, host: str = "bench") -> int:
    """The lines a watcher has committed: to ``folder``'s state file, or as ``host`` in ``url``
    (read on one kept connection: a new one for each poll, ten a second, would load the server
    that the measured watcher waits on)."""
    from nnscratch.weblogs.watch.state import Store

    if url:
        import psycopg

        try:
            if url not in _POLLERS or _POLLERS[url].closed:
                _POLLERS[url] = psycopg.connect(url, autocommit=True, connect_timeout=5)
            row = _POLLERS[url].execute("SELECT value FROM nnscratch_counters WHERE host = %s AND name = 'lines'",
                                        (host,)).fetchone()  # fmt: skip
        except psycopg.Error:  # the database is restarting (the faults run), or the table is not made yet
            if url in _POLLERS:
                _POLLERS.pop(url).close()
            return 0
        return int(row[0]) if row else 0
    if not (folder / "state.sqlite").exists():
        return 0
    else:
        store = Store(folder / "state.sqlite")
    try:
        return store.counter("lines")
    except Exception:
        return 0
    finally:
        store.close()


def empty_fleet(url: str) -> None:
    """Drop the fleet's tables, so that a run starts from nothing."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        for table in ("positions", "counters", "bans", "offenders", "decisions", "evidence", "memory"):
            db.execute(f"DROP TABLE IF EXISTS nnscratch_{table}")


def sample_lines(n: int) -> list[str]:
    from benchmarks.weblogs_throughput import generate

    path = Path(tempfile.mkdtemp()) / "sample.log"
    generate(path, n)
    return path.read_text().splitlines()


def throughput(model: str, lines: list[str], folder: Path, url: str | None = None) -> float:
    """Lines/s of one watcher following a log written as fast as possible (state in ``url``, or a file)."""
    if url:
        empty_fleet(url)
    log = folder / "access.log"
    log.write_text("")
    watcher = start_watcher(model, log, folder, url=url)
    drain(watcher)
    time.sleep(2.0)
    start = time.perf_counter()
    with log.open("a") as f:
        for i in range(0, len(lines), 5000):
            f.write("".join(line + "\n" for line in lines[i : i + 5000]))
            f.flush()
    written = time.perf_counter() - start
    wait_for(watcher, folder, len(lines), url=url)
    seconds = time.perf_counter() - start
    watcher.terminate()
    watcher.communicate(timeout=60)
    print(f"throughput{' (PostgreSQL state)' if url else ''}: {len(lines):,} lines in {seconds:.1f} s = "
          f"{len(lines) / seconds:,.0f} lines/s (the writer took {written:.1f} s)", flush=True)  # fmt: skip
    return len(lines) / seconds


def throughput_against_sqlite(model: str, lines: list[str], url: str, rounds: int) -> None:
    """``throughput`` with the state in PostgreSQL and in SQLite, interleaved round by round."""
    import statistics

    ratios = []
    for r in range(rounds):
        speed = {}
        for kind in ["postgres", "sqlite"] if r % 2 == 0 else ["sqlite", "postgres"]:
            with tempfile.TemporaryDirectory(prefix="nnscratch-throughput-") as folder:
                speed[kind] = throughput(model, lines, Path(folder), url if kind == "postgres" else None)
        ratios.append(speed["postgres"] / speed["sqlite"])
    print(f"throughput, PostgreSQL state / SQLite state: median {statistics.median(ratios):.2f} over {rounds} "
          f"rounds ({', '.join(f'{r:.2f}' for r in ratios)})", flush=True)  # fmt: skip


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


def memory(model: str, clients: int, folder: Path, url: str | None = None, live: float | None = None) -> None:
    """Peak resident memory while ``clients`` distinct addresses make one request each, 1,000 a
    log-second. By default the log is written about five steps ahead of the watcher (a backlog: it
    never catches up, so it holds the last ``SLACK`` seconds of lines for time order all along);
    with ``live``, at that many lines a second of wall-clock time (a watcher keeping up)."""
    if url:
        empty_fleet(url)
    log = folder / "clients.log"
    log.write_text("")
    watcher = start_watcher(model, log, folder, url=url)
    drain(watcher)
    time.sleep(2.0)
    peak, chunk = 0, 20_000 if live is None else max(1, int(live / 10))
    began = time.monotonic()
    with log.open("a") as f:
        for start in range(0, clients, chunk):
            f.write("".join(
                f'10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255} - - [01/Jan/2024:00:{k // 60000 % 60:02d}:'
                f'{k // 1000 % 60:02d} +0000] "GET /page{k % 50}.html HTTP/1.1" 200 512 "-" "Mozilla/5.0 '
                f'(Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"\n'
                for k in range(start, min(start + chunk, clients))))  # fmt: skip
            f.flush()
            peak = max(peak, rss_mb(watcher.pid))
            if live is not None:
                time.sleep(max(0.0, began + (start + chunk) / live - time.monotonic()))
            while lines_done(folder, url) < start - 100_000:  # stay about five steps ahead
                time.sleep(0.05)
                peak = max(peak, rss_mb(watcher.pid))
    while lines_done(folder, url) < clients:
        wait_for(watcher, folder, min(lines_done(folder, url) + 1, clients), limit=600, url=url)
        time.sleep(0.2)
        peak = max(peak, rss_mb(watcher.pid))
    watcher.terminate()
    watcher.communicate(timeout=60)
    pace = "written ahead (a backlog)" if live is None else f"written live at {live:,.0f} lines/s"
    print(f"memory{' (PostgreSQL state)' if url else ''}: {clients:,} distinct addresses {pace}, peak resident "
          f"memory of the watcher {peak} MB", flush=True)  # fmt: skip


class Fleet:
    """Three watchers on one database, one log each; the time each host's ban (or the fleet's
    ``restore``) of each address reached its events."""

    HOSTS = ("web1", "web2", "web3")

    def __init__(self, model: str, url: str, folder: Path) -> None:
        empty_fleet(url)
        self.model, self.url, self.folder = model, url, folder
        self.logs = {h: folder / f"{h}.log" for h in self.HOSTS}
        self.lists = {h: folder / f"{h}.bans.txt" for h in self.HOSTS}
        self.events: dict[str, dict[str, float]] = {h: {} for h in self.HOSTS}
        self.procs: dict[str, subprocess.Popen] = {}
        for h in self.HOSTS:
            self.logs[h].write_text("")
            self.start(h)
        deadline = time.time() + 120
        while self.started() != set(self.HOSTS):
            if time.time() > deadline:
                raise SystemExit(f"the watchers did not start: {self.started()}")
            time.sleep(0.2)

    def start(self, h: str) -> None:
        proc = start_watcher(self.model, self.logs[h], self.folder, "--ban-list", str(self.lists[h]), url=self.url,
                             host=h)  # fmt: skip

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                event = json.loads(line)
                if event["event"] in ("ban", "restore"):
                    self.events[h].setdefault(event["address"], time.time())

        threading.Thread(target=read, daemon=True).start()
        self.procs[h] = proc

    def started(self) -> set[str]:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as db:
                return {row[0] for row in db.execute("SELECT host FROM nnscratch_counters WHERE name = 'lines'")}
        except psycopg.Error:
            return set()

    def kill(self, h: str) -> None:
        """``kill -9`` the host's watcher and start it again."""
        self.procs[h].kill()
        self.procs[h].wait(timeout=60)
        self.start(h)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            proc.communicate(timeout=120)

    def replay(self, background: list[str], logs: Path, rate: float, scanners: int,
               during: Any = None) -> tuple[list[str], dict[str, int]]:  # fmt: skip
        """Background traffic at ``rate`` lines/s dealt over the hosts, and every two seconds a
        scanner from a fresh address dealt round-robin (60 lines/s); ``during(elapsed)`` is
        called at every tick. Returns the scanners' addresses and the lines written per host."""
        w3af = [r for r in (logs / "scanner_w3af_2016-12-22.log").read_text().splitlines() if '"w3af.org"' in r]
        template = [r[r.index(" ") :] for r in w3af[:90]]
        files = {h: self.logs[h].open("a") for h in self.HOSTS}
        written = dict.fromkeys(self.HOSTS, 0)
        per_tick, tick, began = max(int(rate / 20), 3), 0.05, time.time()
        next_scanner, k, i, turn = began + 1.0, 0, 0, 0
        active: list[tuple[str, int]] = []
        addresses = []
        try:
            while k < scanners or active:
                start = time.time()
                chunk = background[i : i + per_tick]
                i = (i + per_tick) % max(len(background) - per_tick, 1)
                if start >= next_scanner and k < scanners:
                    addresses.append(f"10.98.{k // 250}.{k % 250 + 1}")
                    active.append((addresses[-1], 0))
                    k, next_scanner = k + 1, next_scanner + 2.0
                chunk += [address + t for address, j in active for t in template[j : j + 3]]
                active = [(a, j + 3) for a, j in active if j + 3 < len(template)]
                for line in chunk:
                    h = self.HOSTS[turn % 3]
                    turn += 1
                    files[h].write(now_stamped([line]))
                    written[h] += 1
                for f in files.values():
                    f.flush()
                if during is not None:
                    during(time.time() - began)
                time.sleep(max(tick - (time.time() - start), 0.0))
        finally:
            for f in files.values():
                f.close()
        return addresses, written


def propagation(model: str, background: list[str], url: str, logs: Path, rate: float, scanners: int) -> None:
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="nnscratch-fleet-") as folder:
        fleet = Fleet(model, url, Path(folder))
        try:
            addresses, _ = fleet.replay(background, logs, rate, scanners)
            time.sleep(5.0)
        finally:
            fleet.stop()
    spread = []
    for address in addresses:
        times = [fleet.events[h][address] for h in Fleet.HOSTS if address in fleet.events[h]]
        if len(times) == 3:
            spread.append(max(times) - min(times))
    spread_ = np.array(spread)
    print(f"propagation at {rate:,.0f} lines/s over 3 hosts: {len(spread)} of {len(addresses)} scanners banned on "
          f"every host; first to last host median {np.median(spread_):.2f} s, p99 {np.percentile(spread_, 99):.2f} s, "
          f"max {spread_.max():.2f} s", flush=True)  # fmt: skip


def faults(model: str, background: list[str], url: str, logs: Path, rate: float, pg_ctl: str,
           kills: int = 20, restarts: int = 2) -> None:  # fmt: skip
    """The three-host replay with ``kills`` watchers killed and ``restarts`` database restarts."""
    import random
    import shlex

    rng = random.Random(0)
    scanners = 30
    length = scanners * 2.0 + 3.0
    kill_at = sorted(rng.uniform(2.0, length - 6.0) for _ in range(kills))  # all before the last scanner ends
    restart_at = [length * (r + 1) / (restarts + 1) for r in range(restarts)]
    done: list[str] = []

    def chaos(elapsed: float) -> None:
        while kill_at and elapsed >= kill_at[0]:
            kill_at.pop(0)
            h = rng.choice(Fleet.HOSTS)
            fleet.kill(h)
            done.append(f"kill -9 {h}")
        while restart_at and elapsed >= restart_at[0]:
            restart_at.pop(0)
            # The restarted server keeps the output it is given open: never a pipe of ours.
            subprocess.run([*shlex.split(pg_ctl), "-m", "fast", "-w", "restart"], check=True, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            done.append("database restart")

    with tempfile.TemporaryDirectory(prefix="nnscratch-faults-") as folder:
        fleet = Fleet(model, url, Path(folder))
        try:
            addresses, written = fleet.replay(background, logs, rate, scanners, during=chaos)
            for h in Fleet.HOSTS:
                wait_for(fleet.procs[h], Path(folder), written[h], limit=600, url=url, host=h)
            time.sleep(3.0)
            counted = {h: lines_done(Path(folder), url, h) for h in Fleet.HOSTS}
            listed = {h: fleet.lists[h].read_text().split() for h in Fleet.HOSTS}
        finally:
            fleet.stop()
    from nnscratch.weblogs.watch.fleet import PostgresStore

    store = PostgresStore(url, host="web1")
    try:
        offences = {a: store.offenses(a) for a in addresses}
    finally:
        store.close()
    everywhere = sum(all(a in listed[h] for h in Fleet.HOSTS) for a in addresses)
    twice = sum(len(v) - len(set(v)) for v in listed.values()) + sum(n > 1 for n in offences.values())
    restarted = done.count("database restart")
    per_host = ", ".join(f"{h} {counted[h]:,}/{written[h]:,}" for h in Fleet.HOSTS)
    print(f"faults: {restarted} database restarts and {len(done) - restarted} kill -9 during a 3-host replay; lines "
          f"counted/written per host {per_host}; {everywhere} of {len(addresses)} scanners banned on every host; "
          f"{twice} applied twice", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--scanners", type=int, default=30)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--live", type=float, default=10_000, help="lines/s the memory-live figures write")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to run the fleet's figures on")
    parser.add_argument("--pg-ctl", metavar="COMMAND", help="the pg_ctl command line (with -D) that restarts it")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the state comparison")
    parser.add_argument("--only", nargs="+", help="run only these figures (throughput, time-to-ban, memory, "
                        "memory-live, against-sqlite, fleet-memory, fleet-memory-live, propagation, "
                        "faults)")  # fmt: skip
    args = parser.parse_args()
    logs = Path(os.environ.get("NNSCRATCH_DATA", "../shared/data")) / "logs"
    lines = sample_lines(args.lines)
    url = args.postgres
    runs = [("throughput", lambda d: throughput(args.model, lines, d)),
            ("time-to-ban", lambda d: time_to_ban(args.model, lines, d, logs, args.rate, args.scanners)),
            ("memory", lambda d: memory(args.model, args.clients, d)),
            ("memory-live", lambda d: memory(args.model, args.clients, d, live=args.live))]  # fmt: skip
    if url:
        runs += [
            ("against-sqlite", lambda d: throughput_against_sqlite(args.model, lines, url, args.rounds)),
            ("fleet-memory", lambda d: memory(args.model, args.clients, d, url)),
            ("fleet-memory-live", lambda d: memory(args.model, args.clients, d, url, live=args.live)),
            ("propagation", lambda d: propagation(args.model, lines, url, logs, args.rate, args.scanners)),
        ]
        if args.pg_ctl:
            runs.append(("faults", lambda d: faults(args.model, lines, url, logs, args.rate, args.pg_ctl)))
    for name, run in runs:
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"nnscratch-{name}-") as folder:
            run(Path(folder))


if __name__ == "__main__":
    main()
