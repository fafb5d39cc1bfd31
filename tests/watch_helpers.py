"""Log lines for the watcher's tests: a scanner (the shared w3af scan, re-addressed) and a person."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCANNER, HUMAN = "203.0.113.50", "198.51.100.20"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def scanner_lines(logs: Path, n: int, host: str = SCANNER) -> list[str]:
    """The w3af scan's requests as sent by ``host``."""
    rows = [r for r in (logs / "scanner_w3af_2016-12-22.log").read_text().splitlines() if '"w3af.org"' in r]
    return [host + r[r.index(" ") :] for r in rows[:n]]


def human_lines(n: int, host: str = HUMAN, start: int = 0) -> list[str]:
    """A person reading pages with their assets, a few seconds apart."""
    out = []
    for i in range(n):
        t = start + i * 7
        stamp = f"22/Dec/2016:{21 + t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d} +0300"
        target = ["/", "/blog/post-{k}.html", "/css/site.css", "/js/app.js", "/img/photo{k}.jpg"][i % 5].format(k=i)
        out.append(f'{host} - - [{stamp}] "GET {target} HTTP/1.1" 200 2048 "https://example.org/" "{BROWSER}"')
    return out


def lines_done(state: Path) -> int:
    """The lines a watcher has committed to its state file (0 before it has made one)."""
    try:
        with sqlite3.connect(state) as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'lines'").fetchone()
    except sqlite3.Error:
        return 0
    return row[0] if row else 0
