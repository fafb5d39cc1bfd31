"""The watcher's Prometheus metrics (``logs watch --metrics 127.0.0.1:9101``, the extra ``metrics``).

What an operator graphs and alerts on: lines read and parsed, lines per second,
clients tracked, judgements, ban changes by event and reason, changes carried
out and failures by action, and the latency from a deciding line to its ban
applied. That latency is measured from the line's own log time (the only
moment of writing a log records, to the second), so it includes up to a
second of the timestamp's rounding, and a backfill of old lines reads as old.
The endpoint binds to loopback unless another address is given.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from ...extras import require
from .actions import Action, Actions, Change

__all__ = ["WatchMetrics", "parse_listen"]

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (on 127.0.0.1) as an address and a port."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ValueError(f"--metrics takes PORT or ADDRESS:PORT (e.g. 9101, 127.0.0.1:9101, [::1]:9101). "
                         f"Received: {text!r}.")  # fmt: skip
    return host, number


def _reason_kind(change: Change) -> str:
    """A change's reason as a label with few values (the full reason names addresses and numbers)."""
    reason = change.reason
    if reason.startswith("manual: "):
        return "manual"
    if "shared by the fleet" in reason:
        return "fleet"
    if reason.startswith("P(bad)="):
        return "model"
    if "expired" in reason:
        return "expired"
    return "lifted"


class WatchMetrics:
    """The metrics of one watcher, in a registry of their own, served over HTTP by ``serve``."""

    def __init__(self) -> None:
        require("prometheus_client", "metrics")  # a MissingExtraError naming the extra, when absent
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.lines_read = Counter("nnscratch_lines_read", "log lines read", registry=registry)
        self.lines_parsed = Counter("nnscratch_lines_parsed", "log lines parsed into requests", registry=registry)
        self.lines_per_second = Gauge("nnscratch_lines_per_second", "lines read per second over the last 10 s or more",
                                      registry=registry)  # fmt: skip
        self.tracked = Gauge("nnscratch_clients_tracked", "clients whose evidence is in memory", registry=registry)
        self.active_bans = Gauge("nnscratch_active_bans", "bans in force", registry=registry)
        self.judgements = Counter("nnscratch_judgements", "rulings of the client model", registry=registry)
        self.changes = Counter("nnscratch_ban_changes", "bans, extensions, restores and unbans, by reason",
                               ["event", "reason"], registry=registry)  # fmt: skip
        self.applied = Counter("nnscratch_action_changes", "changes an action carried out", ["action", "event"],
                               registry=registry)  # fmt: skip
        self.failures = Counter("nnscratch_action_failures", "failed attempts of an action", ["action"],
                                registry=registry)  # fmt: skip
        latency = "from the deciding line's log time to the ban applied by an action"
        self.latency = Histogram("nnscratch_ban_latency_seconds", latency, ["action"], buckets=LATENCY_BUCKETS,
                                 registry=registry)  # fmt: skip
        self._window: tuple[float, float] = (time.monotonic(), 0.0)
        self.url = ""

    def __repr__(self) -> str:
        return f"WatchMetrics({self.url or 'not served'})"

    def serve(self, listen: str) -> Any:
        """Start the HTTP endpoint (a daemon thread) on ``listen``; returns the server."""
        from prometheus_client import start_http_server

        host, port = parse_listen(listen)
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
        try:
            server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as err:
            raise OSError(f"--metrics cannot listen on {host}:{port}: {err.strerror or err}. Give another port."
                          ) from None  # fmt: skip
        return server

    def watch_actions(self, actions: Actions) -> None:
        """Count what ``actions`` carry out, and time each ban from its line to its action."""

        def applied(action: Action, changes: list[Change]) -> None:
            now = time.time()
            for c in changes:
                self.applied.labels(action.name, c.event).inc()
                if c.event in ("ban", "extend") and c.log_time is not None:
                    self.latency.labels(action.name).observe(max(now - c.log_time, 0.0))

        actions.on_applied = applied
        actions.on_failed = lambda action: self.failures.labels(action.name).inc()

    def step(self, *, read: int, parsed: int, judgements: int, changes: list[Change], clients: int, bans: int) -> None:
        """What a watcher step did."""
        self.lines_read.inc(read)
        self.lines_parsed.inc(parsed)
        self.judgements.inc(judgements)
        for c in changes:
            self.changes.labels(c.event, _reason_kind(c)).inc()
        self.tracked.set(clients)
        self.active_bans.set(bans)
        started, lines = self._window
        lines += read
        elapsed = time.monotonic() - started
        if elapsed >= 10.0:
            self.lines_per_second.set(lines / elapsed)
            started, lines = time.monotonic(), 0.0
        self._window = (started, lines)
