"""Log lines for the watcher's tests: a scanner (the shared w3af scan, re-addressed) and a person."""

from __future__ import annotations

import http.client
import signal
import socket
import sqlite3
import subprocess
import time
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(binary: str, folder: Path) -> dict:
    """A real nginx serving a small site on a free 127.0.0.1 port from ``folder``, with its
    access log and an include for the watcher's deny rules there: ``{"port", "dir",
    "control" (the command line to signal it), "log", "proc"}``."""
    site = folder / "site"
    site.mkdir()
    for name in ("index.html", "about.html", "news.html", "contact.html"):
        (site / name).write_text(f"<html><link rel=stylesheet href=/style.css><script src=/app.js></script>{name}")
    (site / "style.css").write_text("body { color: #333 }")
    (site / "app.js").write_text("console.log(1)")
    (folder / "deny.conf").write_text("# empty\n")
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log combined;
    client_body_temp_path {folder}/tmp_body; proxy_temp_path {folder}/tmp_proxy;
    fastcgi_temp_path {folder}/tmp_fcgi; uwsgi_temp_path {folder}/tmp_uwsgi; scgi_temp_path {folder}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port};
        root {site};
        include {folder}/deny.conf;
    }}
}}
""")
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(folder)], stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError(f"nginx did not start: {proc.stderr.read().decode()}")
    control = [binary, "-c", str(conf), "-p", str(folder)]
    return {"port": port, "dir": folder, "control": control, "log": folder / "access.log", "proc": proc}


def stop_nginx(server: dict) -> None:
    proc = server["proc"]
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def get(port: int, source: str, target: str, agent: str, referrer: str | None = None, timeout: float = 2.0) -> int:
    """One request from the loopback address ``source``; the status, or 0 when nothing answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    headers = {"User-Agent": agent, **({"Referer": referrer} if referrer else {})}
    try:
        connection.request("GET", target, headers=headers)
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()
