"""``nnscratch logs watch``: follow live logs, judge clients, ban and unban them.

The classic harness ("if an IP made N bad requests within X minutes, ban it on
the firewall") with the learned detector in place of regexes. Each step reads
what the followed logs gained, labels the lines with the line model, adds them
to each client's evidence (``ClientBook``), and, once a second, judges the
clients that made requests with ``ClientModel.verdicts``, the decision
``classify`` uses. A ban lasts ``ban_time`` seconds, times ``factor`` for each
earlier offence, at most ``max_ban_time``; bans are lifted on time. Loopback
and private addresses, and the allowlist, are never banned unless asked.
Everything a step changed is committed to the state file (``state.Store``) in
one transaction before the actions run, so a restart after ``kill -9`` resumes
after the last committed line and restores the active bans.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .actions import Actions, Change
from .clients import FEATURES, ClientBook, ClientState
from .features import client_of
from .follow import Backfill, Follower, StdinFollower
from .model import WebLogModel
from .parse import LogRecord, parse_line
from .state import Ban, Store

__all__ = ["Allowlist", "Watcher"]


class Allowlist:
    """Addresses and networks never banned: a file (one address or CIDR per line, ``#``
    comments; reloaded on SIGHUP), extra entries, and unless ``ban_private`` the
    loopback, private, link-local and reserved ranges."""

    def __init__(self, path: str | Path | None = None, extra: Sequence[str] = (), ban_private: bool = False) -> None:
        self.path, self.extra, self.ban_private = Path(path) if path else None, list(extra), ban_private
        self.networks: list[Any] = []
        self.reload()

    def __repr__(self) -> str:
        return f"Allowlist({len(self.networks)} networks, ban_private={self.ban_private})"

    def reload(self) -> None:
        entries = list(self.extra)
        if self.path is not None:
            entries += [line.split("#", 1)[0].strip() for line in self.path.read_text(encoding="utf-8").splitlines()]
        networks = []
        for entry in filter(None, entries):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"allowlist entry {entry!r} is not an address or CIDR network "
                                 f"(in {self.path or 'the command line'}).") from None  # fmt: skip
        self.networks = networks

    def why_not(self, address: str) -> str | None:
        """Why ``address`` must not be banned, or None if it may be."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "not an IP address"
        if any(ip in net for net in self.networks):
            return "allowlisted"
        if not self.ban_private and (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved):
            return "loopback or private address (--ban-private to ban these)"
        return None


class Watcher:
    """Follows logs and keeps the bans; see the module docstring. ``run()`` until a signal."""

    def __init__(
        self, model_path: str | Path, paths: Sequence[str], store: Store, actions: Actions, *,
        from_start: bool = False, ban_time: float = 600.0, factor: float = 2.0, max_ban_time: float = 7 * 86400.0,
        allowlist: Allowlist | None = None, dry_run: bool = False, challenge: str | Path | None = None,
        challenge_threshold: float = 0.5, judge_every: float = 1.0, poll: float = 0.2, idle: float = 1800.0,
        max_clients: int = 100_000, status_every: float = 60.0, report: Callable[[str], Any] | None = None,
        batch: int = 20_000,
    ) -> None:  # fmt: skip
        self.model_path, self.store, self.actions = Path(model_path), store, actions
        self.model = self._load_model()
        saved = store.positions()
        self.followers: list[Any] = [
            StdinFollower() if p == "-" else Backfill(p) if from_start and Backfill.is_gzip(p) else
            Follower(p, from_start=from_start, position=saved.get(str(Path(p).resolve())))
            for p in paths
        ]  # fmt: skip
        self.ban_time, self.factor, self.max_ban_time = ban_time, factor, max_ban_time
        self.allowlist = allowlist or Allowlist()
        self.dry_run, self.judge_every, self.poll, self.batch = dry_run, judge_every, poll, batch
        self.challenge, self.challenge_threshold = Path(challenge) if challenge else None, challenge_threshold
        self.book = ClientBook(idle=idle, max_clients=max_clients)
        self.examples: dict[str, list[str]] = {}
        self.touched: set[str] = set()
        self.bans: dict[str, Ban] = {b.address: b for b in store.bans()}
        self.gray: dict[str, float] = {}
        self.report = report or (lambda message: print(message, file=sys.stderr, flush=True))
        self.status_every = status_every
        self.lines = store.counter("lines")
        self.stopping = self.reloading = False
        self._last_judge = self._last_status = time.monotonic()
        self._status_lines = 0
        self.log_now = 0.0

    def __repr__(self) -> str:
        return f"Watcher({[str(f.path) for f in self.followers]}, bans={len(self.bans)}, clients={len(self.book):,})"

    def _load_model(self) -> WebLogModel:
        model = WebLogModel.load(self.model_path)
        if model.client_model is None:
            raise ValueError(f"{self.model_path} has no client model (it was trained without bad clients): "
                             "retrain it with bad and good clients.")  # fmt: skip
        return model

    # --- signals ---------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop after the current step; SIGHUP reloads the model and the allowlist."""

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        def reload(signum: int, frame: Any) -> None:
            self.reloading = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, reload)

    # --- the loop ----------------------------------------------------------------
    def restore(self) -> None:
        """Apply the bans the state file holds (after a restart), lifting those that expired."""
        now = time.time()
        expired = [a for a, b in self.bans.items() if b.until <= now]
        for address in expired:
            del self.bans[address]
        self.store.commit(unbans=expired)
        if not self.dry_run:
            changes = [Change("ban", b.address, b.remaining(now), b.reason) for b in self.bans.values()]
            self.actions.apply(changes, list(self.bans.values()), force=True)
        if self.bans:
            self.report(f"restored {len(self.bans)} active ban(s) from {self.store.path}")

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Step until a signal (or ``until()`` says so), then commit and return."""
        self.restore()
        while not self.stopping and not (until is not None and until()):
            if self.step() == 0:
                time.sleep(self.poll)
        self.step(final=True)  # what arrived before the signal, judged at once
        for follower in self.followers:
            follower.close()

    def step(self, final: bool = False) -> int:
        """Read, label, judge (once a second, or now if ``final``), expire, commit, act.
        Returns the number of lines read."""
        if self.reloading:
            self.reloading = False
            self._reload()
        batch: list[tuple[str, bytes]] = []
        for follower in self.followers:  # at most ``batch`` lines a step: each step is committed
            batch += [(str(follower.path), raw) for raw in follower.read(self.batch - len(batch))]
        self._label(batch)
        now = time.time()
        changes, decisions = [], []
        if final or time.monotonic() - self._last_judge >= self.judge_every:
            self._last_judge = time.monotonic()
            changes, decisions = self._judge(now)
        for address in [a for a, b in self.bans.items() if b.until <= now]:
            changes.append(Change("unban", address, 0.0, "expired"))
            decisions.append({"time": now, "address": address, "action": "unban", "reason": "expired"})
        stored = {b.address for b in self.store.bans()}  # lifted with `nnscratch logs bans --unban`
        for address in [a for a in self.bans if a not in stored and not any(c.address == a for c in changes)]:
            changes.append(Change("unban", address, 0.0, "lifted by hand"))
        for change in changes:
            if change.event == "unban":
                self.bans.pop(change.address, None)
        positions = {str(f.path.resolve()): f.position for f in self.followers if f.position is not None}
        new_bans = [self.bans[c.address] for c in changes if c.event in ("ban", "extend")]
        self.store.commit(positions=positions, counters={"lines": len(batch)}, bans=new_bans,
                          unbans=[c.address for c in changes if c.event == "unban"], decisions=decisions)  # fmt: skip
        self.lines += len(batch)
        if changes and not self.dry_run:
            self.actions.apply(changes, list(self.bans.values()))
        elif not self.dry_run:
            self.actions.apply([], list(self.bans.values()))  # retries of earlier failures
        self._forget()
        self._status(len(batch))
        return len(batch)

    def _label(self, batch: list[tuple[str, bytes]]) -> None:
        records = []
        for _, raw in batch:
            item = parse_line(raw)
            if isinstance(item, LogRecord):
                records.append((item, raw))
        if not records:
            return
        featurizer = self.model.featurizer
        columns, facts = zip(*(featurizer.columns(r) for r, _ in records), strict=True)
        labels = self.model.labels(self.model.network.predict(self.model.inputs(featurizer.matrix(columns))))
        bad = self.model.classes.index("bad")
        for (record, raw), fact, label in zip(records, facts, labels.tolist(), strict=True):
            self.book.add(record, fact, label == bad)
            client = client_of(record)
            self.touched.add(client)
            examples = self.examples.setdefault(client, [])
            examples.append(raw.decode("utf-8", "replace").rstrip("\n")[:300])
            del examples[:-3]
            self.log_now = max(self.log_now, record.time)

    def _duration(self, address: str) -> float:
        return min(self.ban_time * self.factor ** self.store.offenses(address), self.max_ban_time)

    def _judge(self, now: float) -> tuple[list[Change], list[dict[str, Any]]]:
        client_model = self.model.client_model
        states = [(c, self.book.clients[c]) for c in self.touched if c in self.book.clients]
        self.touched = set()
        changes, decisions = [], []
        for verdict in client_model.verdicts(states):
            p = verdict.probability
            if p is None:
                continue
            if verdict.ban:
                blocked = self.allowlist.why_not(verdict.client)
                current = self.bans.get(verdict.client)
                if blocked is not None or (current is not None and current.remaining(now) > self.ban_time / 2):
                    if blocked and verdict.client not in self.gray:
                        self.gray[verdict.client] = p
                        decisions.append(self._decision(now, verdict, "not banned: " + blocked))
                    continue
                seconds = self._duration(verdict.client)
                event = "extend" if current is not None else "ban"
                decision = self._decision(now, verdict, "dry-run: would ban" if self.dry_run else event, seconds)
                decisions.append(decision)
                if self.dry_run:
                    self.report(f"dry run: would ban {verdict.client} for {seconds:.0f} s ({verdict.reason})")
                    continue
                self.bans[verdict.client] = Ban(verdict.client, now, now + seconds, verdict.reason)
                changes.append(Change(event, verdict.client, seconds, verdict.reason))
            elif p >= self.challenge_threshold and verdict.client not in self.gray:
                self.gray[verdict.client] = p
                decisions.append(self._decision(now, verdict, "challenge"))
        if self.challenge is not None and decisions:
            from .actions import write_atomically

            write_atomically(self.challenge, "".join(f"{c}\n" for c in sorted(self.gray) if c not in self.bans))
        return changes, decisions

    def _decision(self, now: float, verdict: Any, action: str, seconds: float | None = None) -> dict[str, Any]:
        state: ClientState = self.book.clients[verdict.client]
        detail = {
            "seconds": seconds, "bad_lines": verdict.bad_lines, "first_seen": verdict.first_seen,
            "last_seen": verdict.last_seen,
            "features": dict(zip(FEATURES, ClientBook.features(state).round(4).tolist(), strict=True)),
            "pushed_up": self.model.client_model.contributions(state),
            "examples": self.examples.get(verdict.client, []),
        }  # fmt: skip
        return {"time": now, "address": verdict.client, "action": action, "probability": verdict.probability,
                "requests": verdict.requests, "reason": verdict.reason, "detail": detail}  # fmt: skip

    def _forget(self) -> None:
        for client, _ in self.book.finished(self.log_now):
            self.examples.pop(client, None)
            self.gray.pop(client, None)

    def _reload(self) -> None:
        try:
            self.model = self._load_model()
            self.allowlist.reload()
            self.report(f"reloaded {self.model_path} and the allowlist")
        except (OSError, ValueError) as err:
            self.report(f"error: reload failed, keeping the old model and allowlist: {err}")

    def _status(self, n: int) -> None:
        self._status_lines += n
        elapsed = time.monotonic() - self._last_status
        if elapsed >= self.status_every:
            self.report(f"status: {self._status_lines / elapsed:,.0f} lines/s, {len(self.book):,} clients tracked, "
                        f"{len(self.bans)} active ban(s), {self.lines:,} lines in all")  # fmt: skip
            self._last_status, self._status_lines = time.monotonic(), 0
