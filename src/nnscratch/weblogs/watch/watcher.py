"""``nnscratch logs watch``: follow live logs, judge clients, ban and unban them.

The classic harness ("if an IP made N bad requests within X minutes, ban it on
the firewall") with the learned detector in place of regexes. Each step reads
what the followed logs gained and runs it through the decision procedure that
``classify`` replays on files (``decision.Decider``): lines in time order,
labelled by the line model, each client ruled on by the client model at the
end of every log-second in which it made requests. When the followers have
caught up with the logs, held lines are released and the current second is
closed, so a file read ``--from-start`` is judged exactly as ``classify``
judges it. The ban policy (``_judge``) turns banning rulings into bans: a ban
lasts ``ban_time`` seconds, times ``factor`` for each earlier offence, at most
``max_ban_time``; bans are lifted on time. Loopback and private addresses, and
the allowlist, are never banned unless asked; session clients (logs without
addresses) are banned by id, and actions that need an address skip them.
Everything a step changed is committed to the state file (``state.Store``) in
one transaction before the actions run, the clients' evidence included
(``memory.StreamMemory``), so a restart after ``kill -9`` resumes after the last
committed line, restores the active bans, and judges on as if it had never stopped.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..features.counts import IDLE, MAX_CLIENTS, ClientBook
from ..features.summary import FEATURES
from ..lines.formats import LineParser
from ..lines.reading import LogPath
from ..lines.record import LogRecord, client_of
from ..model.clients import Ruling
from ..model.weblog import WebLogModel
from ..serve.decision import Decider, Decisions
from .actions import Actions, Change, replace_text
from .fleet import StoreUnavailable
from .follow import Backfill, Follower, StdinFollower
from .journal import JOURNAL, JournalFollower
from .memory import CURSOR, StreamMemory
from .metrics import WatchMetrics
from .policy import Allowlist, BanPolicy
from .state import Ban, Store

__all__ = ["Allowlist", "BanPolicy", "WatchSettings", "Watcher"]


@dataclass
class WatchSettings:
    """How the watcher reads and reports (the ban policy is ``BanPolicy``'s).

    ``from_start``: read files from their start (else from where the state file
    left them, or their end); ``dry_run``: decide and report, act on nothing;
    ``challenge``: the file gray clients are written to; ``poll``: seconds
    between reads when idle; ``idle``: seconds of log time that end a visit;
    ``max_clients``: clients kept in memory; ``status_every``: seconds between
    status lines; ``batch``: the most lines a step reads (and commits); ``journalctl``: the
    command that reads a unit's journal (a path ``journal:UNIT`` is one, ``journal.JournalFollower``).
    """

    from_start: bool = False
    dry_run: bool = False
    challenge: Path | None = None
    poll: float = 0.2
    idle: float = IDLE
    max_clients: int = MAX_CLIENTS
    status_every: float = 60.0
    batch: int = 20_000
    journalctl: str = "journalctl"


class Watcher:
    """Follows logs and keeps the bans; see the module docstring. ``run()`` until a signal."""

    def __init__(
        self, model_path: str | Path, paths: Sequence[str], store: Store, actions: Actions, *,
        policy: BanPolicy | None = None, settings: WatchSettings | None = None,
        report: Callable[[str], Any] | None = None, metrics: WatchMetrics | None = None,
    ) -> None:  # fmt: skip
        self.model_path, self.store, self.actions = Path(model_path), store, actions
        self.policy, self.settings = policy or BanPolicy(), settings or WatchSettings()
        self.model = self._load_model()
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_actions(actions)
        saved, from_start = store.positions(), self.settings.from_start
        self.saved_memory: dict[str, dict[str, bytes]] | None = store.memory()  # until ``restore`` takes it
        cursors = {key: value.decode() for key, value in self.saved_memory.get(CURSOR, {}).items()}
        self.followers: list[Any] = [
            StdinFollower(p) if p == "-" or StdinFollower.is_pipe(p) else
            JournalFollower(p[len(JOURNAL):], command=self.settings.journalctl, cursor=cursors.get(p),
                            from_start=from_start) if p.startswith(JOURNAL) else
            Backfill(p) if from_start and Backfill.is_compressed(p) else
            Follower(p, from_start=from_start, position=saved.get(str(Path(p).resolve())))
            for p in map(str, paths)
        ]  # fmt: skip
        self.decider = Decider(self.model, idle=self.settings.idle, max_clients=self.settings.max_clients)
        self.pooled = hasattr(store, "elsewhere")  # a fleet: verdicts on every host's evidence of a client
        if self.pooled:
            self.decider.pool = store.elsewhere
        self.memory = StreamMemory(self.decider)  # the clients' evidence, kept across restarts
        self.examples: dict[str, list[str]] = {}
        self.bans: dict[str, Ban] = {b.address: b for b in store.bans()}
        self.gray: dict[str, float] = {}
        # How each followed file is read: its --format and --ipv6-prefix (a LogPath); formats not named are
        # detected from the file's first lines.
        self.formats = {str(f.path): p if isinstance(p, LogPath) else LogPath(p)
                        for f, p in zip(self.followers, paths, strict=True)}  # fmt: skip
        self.parsers: dict[str, LineParser] = {}
        self.unfit: set[str] = set()
        self.report = report or (lambda message: print(message, file=sys.stderr, flush=True))
        self.pending: list[dict[str, Any]] = []  # batches not committed yet (a fleet database's outage)
        self.outage = False
        self.lines = store.counter("lines")
        self.stopping = self.reloading = False
        self.releasing = False  # a catch-up has held lines left to release (``step``)
        self.next: tuple[list, list] | None = None  # the next step's lines, read during a commit (``_commit``)
        self._last_status = time.monotonic()
        self._status_lines = 0

    def __repr__(self) -> str:
        return (f"Watcher({[str(f.path) for f in self.followers]}, bans={len(self.bans)}, "
                f"clients={len(self.decider.book):,})")  # fmt: skip

    def _load_model(self) -> WebLogModel:
        model = WebLogModel.load(self.model_path)
        if model.client_model is None:
            raise ValueError(f"{self.model_path} has no client model (it was trained without bad clients): "
                             "retrain it with bad and good clients.")  # fmt: skip
        return model

    # --- signals ---------------------------------------------------------------
    def install_signals(self) -> dict[int, Any]:
        """SIGTERM and SIGINT stop after the current step; SIGHUP reloads the model and the
        allowlist. Returns the handlers they replace (``restore_signals`` puts them back)."""

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        def reload(signum: int, frame: Any) -> None:
            self.reloading = True

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = reload
        return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

    @staticmethod
    def restore_signals(previous: dict[int, Any]) -> None:
        """Put back the handlers ``install_signals`` replaced (a process that goes on after the
        watcher, or forks, must not keep a SIGTERM that only sets a flag)."""
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # --- the loop ----------------------------------------------------------------
    def restore(self) -> None:
        """After a restart: take back the clients' evidence (``memory.StreamMemory``); lift the
        bans that expired while the watcher was down (every action gets their ``unban``, and the
        decision is recorded) and apply the active ones again as
        ``restore`` events (firewalls re-add them; an event log can tell them from new bans)."""
        saved, self.saved_memory = self.saved_memory, None
        note = self.memory.restore(saved if saved is not None else self.store.memory(), self._parse_held)
        if note:
            self.report(note)
        now = time.time()
        expired = [b for b in self.bans.values() if b.until <= now]
        for ban in expired:
            del self.bans[ban.address]
        why = "expired while the watcher was down"
        self.store.commit(unbans=[b.address for b in expired],
                          decisions=[{"time": now, "address": b.address, "action": "unban", "reason": why}
                                     for b in expired])  # fmt: skip
        if not self.settings.dry_run:
            changes = [Change("unban", b.address, 0.0, why) for b in expired]
            changes += [Change("restore", b.address, b.remaining(now), b.reason) for b in self.bans.values()]
            self.actions.apply(changes, list(self.bans.values()), force=True)
        if self.bans or expired:
            self.report(f"restored {len(self.bans)} active ban(s) from {self.store.path}; lifted {len(expired)} "
                        "that expired while the watcher was down")  # fmt: skip

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Step until a signal (or ``until()`` says so), then commit and return."""
        self.restore()
        while not self.stopping and not (until is not None and until()):
            if self.step() == 0 and not self.releasing:
                self.store.wait(self.settings.poll)  # a fleet's store wakes on another host's ban
        self.step(final=True)  # what arrived before the signal, judged at once
        while self.releasing:
            self.step(final=True)
        for follower in self.followers:
            follower.close()
        if self.pending:
            self.report(f"warning: {len(self.pending)} batch(es) could not be committed ({self.store.path} is still "
                        "unreachable): the next start reads their lines again")  # fmt: skip

    def step(self, final: bool = False) -> int:
        """Read, decide, expire, commit, act. Returns the number of lines read.

        The lines go through the decision procedure (``decision.Decider``); when the followers
        have caught up with the logs (or ``final``), the held lines are released (at most
        ``batch`` a step: ``releasing`` says more wait) and the second closes, as at a file's end."""
        if self.reloading:
            self.reloading = False
            self._reload()
        (batch, items), self.next = self.next or self._read(), None
        end = final or len(batch) < self.settings.batch
        decided = self._decide(items, end)
        self.releasing = end and self.decider.holding
        now = time.time()
        changes, decisions = self._judge(now, decided)
        for client, _ in decided.ended:  # visits over: nothing more to explain or challenge
            self.examples.pop(client, None)
            self.gray.pop(client, None)
        for address in [a for a, b in self.bans.items() if b.until <= now]:
            changes.append(Change("unban", address, 0.0, "expired"))
            decisions.append({"time": now, "address": address, "action": "unban", "reason": "expired"})
        if self.pending:
            self._flush()
        stored = self._stored_bans() if not self.pending else dict(self.bans)
        for address in [a for a in self.bans if a not in stored and not any(c.address == a for c in changes)]:
            changes.append(Change("unban", address, 0.0, "lifted by hand or by another watcher"))
        own = list(changes)  # committed below; the store's other bans are in it already
        changes += self._shared(stored, changes, now)
        for change in changes:
            if change.event == "unban":
                self.bans.pop(change.address, None)
        new_bans = [self.bans[c.address] for c in own if c.event in ("ban", "extend")]
        self._commit(self._batch_state(len(batch), decided, changes, new_bans, decisions), read_on=not end)
        self.lines += len(batch)
        if changes and not self.settings.dry_run:
            self.actions.apply(changes, list(self.bans.values()))
        elif not self.settings.dry_run:
            self.actions.apply([], list(self.bans.values()))  # retries of earlier failures
        self._status(len(batch))
        if self.metrics is not None:
            self.metrics.step(read=len(batch), parsed=len(items), judgements=len(decided.rulings), changes=changes,
                              clients=len(self.decider.book), bans=len(self.bans))  # fmt: skip
        return len(batch)

    def _read(self) -> tuple[list[tuple[str, bytes]], list[tuple[tuple[str, bytes], LogRecord]]]:
        """At most ``batch`` lines of the followed logs, ``(path, raw)``, and those that parse as
        ``((path, raw), record)`` items for the decider."""
        batch: list[tuple[str, bytes]] = []
        for follower in self.followers:  # at most ``batch`` lines a step: each step is committed
            batch += [(str(follower.path), raw) for raw in follower.read(self.settings.batch - len(batch))]
            for problem in getattr(follower, "problems", ()):  # a compressed log cut short: said once
                self.report(f"warning: {problem}")
            if getattr(follower, "problems", None):
                follower.problems.clear()
        for path in {path for path, _ in batch} - self.parsers.keys():
            self._parser(path, [raw for p, raw in batch if p == path])
        return batch, [((path, raw), record) for path, raw in batch if (record := self._record(path, raw)) is not None]

    def _batch_state(self, read: int, decided: Decisions, changes: list[Change], bans: list[Ban],
                     decisions: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        """What the step commits: the positions after it, its ``read`` lines counted, its bans,
        unbans and decisions, what it changed in the stream's memory, and, in a fleet, this
        host's own evidence of the clients it saw, for the other hosts to pool."""
        positions = {str(f.path.resolve()): f.position for f in self.followers if f.position is not None}
        unbans = [c.address for c in changes if c.event == "unban"]
        state = dict(positions=positions, counters={"lines": read}, bans=bans, unbans=unbans, decisions=decisions,
                     memory=self.memory.changes(decided))  # fmt: skip
        state["memory"].put += [(CURSOR, str(f.path), f.cursor.encode()) for f in self.followers
                                if isinstance(f, JournalFollower) and f.cursor]  # fmt: skip
        if self.pooled:
            clients = self.decider.book.clients
            seen = {client_of(record) for _, record in decided.items} | {r.client for r in decided.rulings}
            state["evidence"] = {c: (clients[c].last, ClientBook.counts(clients[c])) for c in seen
                                 if c in clients and c != "-"}  # fmt: skip
        return state

    # --- the store, and a fleet database that can go away ----------------------------
    def _commit(self, batch: dict[str, Any], read_on: bool = False) -> None:
        """Commit a batch; while a fleet's database is unreachable, keep it (and the ones before
        it, in order) and judge on locally; they are committed when it is back.

        ``read_on`` (the logs hold more): with a store on a server (``remote``), the next
        step's lines are read and parsed while the server works on the commit (``next``);
        nothing else is done before it is committed, the actions included."""
        self.pending.append(batch)
        if not (read_on and getattr(self.store, "remote", False)):
            self._flush()
            return
        failed: list[BaseException] = []

        def flush() -> None:
            try:
                self._flush()
            except BaseException as err:  # noqa: BLE001 - raised again below, in the watcher's thread
                failed.append(err)

        committer = threading.Thread(target=flush, name="nnscratch-commit")
        committer.start()
        try:
            self.next = self._read()
        finally:
            committer.join()
        if failed:
            raise failed[0]

    def _flush(self) -> None:
        """Commit the batches kept during an outage, in order (before the shared bans are read
        again: a ban decided meanwhile must not look lifted)."""
        try:
            while self.pending:
                self.store.commit(**self.pending[0])
                self.pending.pop(0)
        except StoreUnavailable as err:
            if not self.outage:
                self.report(f"warning: {err}; judging on locally, and committing when it is back")
            self.outage = True
            return
        if self.outage:
            self.report(f"the fleet database {self.store.path} is back: what was decided meanwhile is committed")
            self.outage = False

    def _stored_bans(self) -> dict[str, Ban]:
        """The bans in the store (a fleet's: every host's); during an outage, this host's own."""
        try:
            return {b.address: b for b in self.store.bans()}
        except StoreUnavailable:
            return dict(self.bans)

    def _offenses(self, client: str) -> int:
        try:
            return self.store.offenses(client)
        except StoreUnavailable:
            return 0  # not known during an outage: a first offence's ban

    def _shared(self, stored: dict[str, Ban], changes: list[Change], now: float) -> list[Change]:
        """Bans in the store that this watcher did not make: another watcher's of the fleet, made or
        extended, applied by this host's actions as ``restore`` events; and bans made by hand
        (``logs bans --add``), applied as ``ban`` events. Never committed again (their offence was
        counted once, where they were made)."""
        out = []
        mine = {c.address for c in changes}
        for address, ban in stored.items():
            current = self.bans.get(address)
            if address in mine or ban.until <= now or (current is not None and current.until >= ban.until):
                continue
            self.bans[address] = ban
            if ban.manual and current is None:
                out.append(Change("ban", address, ban.remaining(now), ban.reason))
            else:
                out.append(Change("restore", address, ban.remaining(now), f"{ban.reason} (shared by the fleet)"))
        return out

    def _decide(self, items: list[tuple[tuple[str, bytes], LogRecord]], end: bool) -> Decisions:
        """The parsed lines through the decision procedure; keeps each client's last lines."""
        decided = self.decider.feed(items, end, most=self.settings.batch)
        for (_, raw), record in decided.items:
            examples = self.examples.setdefault(client_of(record), [])
            examples.append(raw.decode("utf-8", "replace").rstrip("\n")[:300])
            del examples[:-3]
        return decided

    def _record(self, path: str, raw: bytes) -> LogRecord | None:
        """A line of ``path`` read by its parser; None for a line that is not a request, or a file
        no format reads yet."""
        parse = self.parsers.get(path)
        item = parse(raw) if parse is not None else None
        return item if isinstance(item, LogRecord) else None

    def _parse_held(self, path: str, raw: bytes) -> LogRecord | None:
        """A line the state file held for time order, read again after a restart."""
        if path not in self.parsers:
            self._parser(path, [raw])
        return self._record(path, raw)

    def _parser(self, path: str, lines: list[bytes]) -> None:
        """The parser of a followed file (``LogPath.parser``): its ``--format``, or the format its
        first lines show. While its lines fit no format (or not the one named), they are skipped
        and that is reported once."""
        try:
            self.parsers[path] = self.formats.get(path, LogPath(path)).parser(lines)
        except ValueError as err:
            if path not in self.unfit:
                self.unfit.add(path)
                self.report(f"error: {err} Its lines are skipped until one fits.")

    def _judge(self, now: float, decided: Decisions) -> tuple[list[Change], list[dict[str, Any]]]:
        """The ban policy's response to every ruling, carried out: bans and extensions become
        changes; a client not banned for a reason, or sent to the challenge, is recorded once
        per visit. A dry run reports each visit's first banning ruling, what ``classify`` reports."""
        changes, decisions = [], []
        first_bans = {id(ruling) for ruling in decided.bans}
        for ruling in decided.rulings:
            client = ruling.client
            current = self.bans.get(client)
            response, why = self.policy.response(ruling, current, now)
            if response in ("not banned", "challenge"):
                if client not in self.gray:
                    self.gray[client] = ruling.probability
                    decisions.append(self._decision(now, ruling, f"not banned: {why}" if why else response))
            elif response in ("ban", "extend"):
                if self.settings.dry_run and id(ruling) not in first_bans:
                    continue  # a dry run reports each visit's first banning ruling
                seconds = self.policy.duration(self._offenses(client))
                if self.settings.dry_run:
                    decisions.append(self._decision(now, ruling, "dry-run: would ban", seconds))
                    self.report(f"dry run: would ban {client} for {seconds:.0f} s ({_reason(ruling)})")
                    continue
                decisions.append(self._decision(now, ruling, response, seconds))
                self.bans[client] = Ban(client, now, now + seconds, _reason(ruling))
                changes.append(Change(response, client, seconds, _reason(ruling), log_time=ruling.time))
        if self.settings.challenge is not None and decisions:
            text = "".join(f"{c}\n" for c in sorted(self.gray) if c not in self.bans)
            replace_text(self.settings.challenge, text)
        return changes, decisions

    def _decision(self, now: float, ruling: Ruling, action: str, seconds: float | None = None) -> dict[str, Any]:
        state = self.decider.book.clients.get(ruling.client)
        features = ClientBook.summarise([ruling.counts])[0]
        detail = {
            "seconds": seconds, "log_time": ruling.time, "request": ruling.request,
            "bad_lines": state.bad_lines if state is not None else None,
            "first_seen": state.first if state is not None else None, "last_seen": ruling.time,
            "features": dict(zip(FEATURES, np.round(features, 4).tolist(), strict=True)),
            "pushed_up": self.model.client_model.contributions(features),
            "examples": self.examples.get(ruling.client, []),
        }  # fmt: skip
        return {"time": now, "address": ruling.client, "action": action, "probability": ruling.probability,
                "requests": ruling.request, "reason": _reason(ruling), "detail": detail}  # fmt: skip

    def _reload(self) -> None:
        try:
            self.model = self._load_model()
            if not self.decider.swap_model(self.model):
                self.report("the new model keeps other context windows: the clients' evidence starts afresh")
            self.policy.allowlist.reload()
            self.report(f"reloaded {self.model_path} and the allowlist")
        except (OSError, ValueError) as err:
            self.report(f"error: reload failed, keeping the old model and allowlist: {err}")

    def _status(self, n: int) -> None:
        self._status_lines += n
        elapsed = time.monotonic() - self._last_status
        if elapsed >= self.settings.status_every:
            self.report(f"status: {self._status_lines / elapsed:,.0f} lines/s, {len(self.decider.book):,} clients "
                        f"tracked, {len(self.bans)} active ban(s), {self.lines:,} lines in all")  # fmt: skip
            self._last_status, self._status_lines = time.monotonic(), 0


def _reason(ruling: Ruling) -> str:
    return f"P(bad)={ruling.probability:.2f} at request {ruling.request}"
