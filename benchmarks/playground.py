"""How live the playground is: page updates per second and the server's CPU and memory.

    python -m benchmarks.playground [--seconds 8]

Starts ``nnscratch playground`` (as a user would), opens Debian's chromium
through Playwright on a 2-8-8-1 network over 500 spiral points (the
issue's setting; every neuron's map and the output surface are redrawn for
each update), and counts the frames the page drew per second, first with the
default rate cap (20/s), then with the cap at 60/s to see what the machine
gives, then with three tabs, and finally after closing every tab. Server CPU
is read from /proc (user + system time over wall time; 100% = one core).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

SETUP = "#dataset=spiral&points=500&features=x1,x2&layers=8:tanh,8:tanh&optimizer=adam&learning_rate=0.03"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


def _rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024


def _server(rate: float) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "nnscratch", "playground", "--no-browser", "--max-rate", str(rate)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = re.search(r"(http://\S+/)", process.stdout.readline()).group(1)
    return process, url


def _measure(browser, rate: float, tabs: int, seconds: float) -> dict[str, float]:
    process, url = _server(rate)
    try:
        pages = [browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(tabs)]
        for page in pages:
            page.goto(url + SETUP)
            page.wait_for_function("window.playground.stats.frames > 0", timeout=30_000)
        for page in pages:
            page.click("#play")
        time.sleep(1.0)  # settle
        drawn = [page.evaluate("window.playground.stats.drawn") for page in pages]
        cpu, start = _cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        rates = [
            (page.evaluate("window.playground.stats.drawn") - d) / elapsed for page, d in zip(pages, drawn, strict=True)
        ]
        busy = (_cpu_seconds(process.pid) - cpu) / elapsed
        rss = _rss_mb(process.pid)
        for page in pages:
            page.close()
        time.sleep(2.0)
        cpu, start = _cpu_seconds(process.pid), time.monotonic()
        time.sleep(3.0)
        idle = (_cpu_seconds(process.pid) - cpu) / (time.monotonic() - start)
        return {"rate_cap": rate, "tabs": tabs, "updates_per_s_each": min(rates), "server_cpu": busy,
                "server_rss_mb": rss, "server_cpu_after_close": idle,
                "server_rss_mb_after_close": _rss_mb(process.pid)}  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for rate, tabs in ((20, 1), (60, 1), (20, 3)):
            row = _measure(browser, rate, tabs, args.seconds)
            rows.append(row)
            print(f"cap {rate}/s, {tabs} tab(s): {row['updates_per_s_each']:.1f} updates/s per tab, server CPU "
                  f"{100 * row['server_cpu']:.0f}% of a core, {row['server_rss_mb']:.0f} MB; after closing: CPU "
                  f"{100 * row['server_cpu_after_close']:.1f}%, {row['server_rss_mb_after_close']:.0f} MB",
                  flush=True)  # fmt: skip
        browser.close()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
