"""The watcher's memory: bans, offences, file positions, recent decisions and the clients' evidence, in SQLite.

One file (WAL mode, so ``nnscratch logs bans`` can read while the watcher
writes). Each batch of lines is committed in one transaction together with the
file positions after it, the bans it caused and what it changed in the
evidence (``memory.StreamMemory``, kept here as opaque rows), so after
``kill -9`` a restart resumes exactly after the last committed line: nothing is
counted twice or lost, active bans come back with their remaining time, and
every client's evidence is as it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .follow import Position

__all__ = ["Ban", "Remembered", "Store", "StateFileError", "APPLICATION_ID", "MANUAL"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (path TEXT PRIMARY KEY, device INTEGER, inode INTEGER, offset INTEGER);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS bans (address TEXT PRIMARY KEY, since REAL, until REAL, reason TEXT);
CREATE TABLE IF NOT EXISTS offenders (address TEXT PRIMARY KEY, offenses INTEGER, last REAL);
CREATE TABLE IF NOT EXISTS decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, address TEXT,
    action TEXT, probability REAL, requests INTEGER, reason TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS decisions_address ON decisions (address);
CREATE TABLE IF NOT EXISTS memory (kind TEXT, key TEXT, value BLOB, PRIMARY KEY (kind, key));
"""


MANUAL = "manual: "  # how the reason of a ban made by hand (``logs bans --add``) begins


@dataclass
class Ban:
    """An active ban: wall-clock seconds since the epoch. ``address`` is an IP address, a CIDR
    network (a range ban made by hand) or a session id (a log without addresses)."""

    address: str
    since: float
    until: float
    reason: str

    @property
    def manual(self) -> bool:
        """Whether an operator made this ban (``logs bans --add``), not a watcher."""
        return self.reason.startswith(MANUAL)

    def remaining(self, now: float | None = None) -> float:
        return max(self.until - (time.time() if now is None else now), 0.0)


@dataclass
class Remembered:
    """What a batch changed in the watcher's memory of the stream (``memory.StreamMemory``):
    the kinds of rows forgotten first (``clear``), then rows written (``put``: kind, key,
    value) and rows forgotten (``drop``: kind, key). The store keeps them as they are."""

    put: list[tuple[str, str, bytes]]
    drop: list[tuple[str, str]]
    clear: tuple[str, ...] = ()


APPLICATION_ID = 0x6E6E7363  # "nnsc" in SQLite's header: this file is a watcher's state
TABLES = {"positions", "counters", "bans", "offenders", "decisions", "memory"}


class StateFileError(ValueError):
    """A state file that is not a watcher's (refused, never modified), or that cannot be used."""


def _check_ours(path: Path) -> None:
    """Refuse, before anything is written, a file that is not a watcher's state file: not an
    SQLite database (zeroed, cut short, a model or a log), or another program's database."""
    if not path.parent.is_dir():
        raise StateFileError(f"the folder of the state file {path} does not exist: create it (mkdir -p "
                             f"{path.parent}) or give --state a path in an existing folder.")  # fmt: skip
    if not path.exists() or path.stat().st_size == 0:
        return  # a new state file
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            app = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise StateFileError(f"{path} is not a watcher state file (not an SQLite database: {err}); it was not "
                             "changed. Give --state another file, or move this one away to start afresh."
                             ) from None  # fmt: skip
    tables -= {"sqlite_sequence"}
    if app == APPLICATION_ID or (app == 0 and tables <= TABLES):  # ours, or empty, or ours from before the id
        return
    found = ", ".join(sorted(tables)) or "none"
    raise StateFileError(f"{path} is an SQLite database of another program (application id {app}, tables: "
                         f"{found}); nnscratch will not touch it. Give --state another file.")  # fmt: skip


class Store:
    """The SQLite state file of one watcher (created if missing; a file that is not a
    watcher's is refused with ``StateFileError`` and never modified)."""

    def __init__(self, path: str | Path, keep_decisions: int = 10_000) -> None:
        self.path, self.keep_decisions = Path(path), keep_decisions
        _check_ours(self.path)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.Error as err:
            raise StateFileError(f"{self.path} cannot be used as the watcher's state file: {err}.") from None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        self.db.close()
        if getattr(self, "_lock", None) is not None:
            self._lock.close()
            self._lock = None

    def lock(self) -> None:
        """Claim the state file for one watcher: a second ``logs watch`` on it is refused with the
        process that holds it (readers such as ``logs bans`` need no claim). Held until ``close``."""
        import fcntl
        import os

        lock = self.path.with_name(f".{self.path.name}.lock")
        handle = open(lock, "a+")  # noqa: SIM115 (held open for the watcher's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateFileError(f"{self.path} is in use by another watcher ({holder}); stop it first, or give this "
                                 "one --state of its own.") from None  # fmt: skip
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._lock = handle

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds (one host: nobody else bans). Returns False."""
        time.sleep(timeout)
        return False

    # --- reading ------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        rows = self.db.execute("SELECT path, device, inode, offset FROM positions")
        return {path: Position(device, inode, offset) for path, device, inode, offset in rows}

    def counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def bans(self) -> list[Ban]:
        rows = self.db.execute("SELECT address, since, until, reason FROM bans ORDER BY until")
        return [Ban(*row) for row in rows]

    def memory(self) -> dict[str, dict[str, bytes]]:
        """The memory of the stream the last commit left: kind -> key -> value."""
        out: dict[str, dict[str, bytes]] = {}
        for kind, key, value in self.db.execute("SELECT kind, key, value FROM memory"):
            out.setdefault(kind, {})[key] = bytes(value)
        return out

    def offenses(self, address: str) -> int:
        row = self.db.execute("SELECT offenses FROM offenders WHERE address = ?", (address,)).fetchone()
        return int(row[0]) if row else 0

    def decisions(self, address: str, limit: int = 5) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT time, action, probability, requests, reason, detail FROM decisions WHERE address = ? "
            "ORDER BY id DESC LIMIT ?", (address, limit))  # fmt: skip
        return [{"time": t, "action": a, "probability": p, "requests": n, "reason": r, "detail": json.loads(d or "{}")}
                for t, a, p, n, r, d in rows]  # fmt: skip

    # --- writing: one transaction per batch ----------------------------------
    def commit(
        self,
        *,
        positions: dict[str, Position] | None = None,
        counters: dict[str, int] | None = None,
        bans: Iterable[Ban] = (),
        unbans: Iterable[str] = (),
        decisions: Iterable[dict[str, Any]] = (),
        memory: Remembered | None = None,
    ) -> None:
        """Everything a batch changed, atomically: positions, counters (added), new bans
        (their offence counts go up), lifted bans, decisions, and the memory of the stream."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if memory is not None:
                for kind in memory.clear:
                    db.execute("DELETE FROM memory WHERE kind = ?", (kind,))
                db.executemany("INSERT OR REPLACE INTO memory VALUES (?, ?, ?)", memory.put)
                db.executemany("DELETE FROM memory WHERE kind = ? AND key = ?", memory.drop)
            for path, p in (positions or {}).items():
                db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?)", (path, p.device, p.inode, p.offset))
            for name, add in (counters or {}).items():
                db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                           (name, add, add))  # fmt: skip
            for ban in bans:
                db.execute("INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?)",
                           (ban.address, ban.since, ban.until, ban.reason))  # fmt: skip
                db.execute("INSERT INTO offenders VALUES (?, 1, ?) ON CONFLICT(address) DO UPDATE SET "
                           "offenses = offenses + 1, last = ?", (ban.address, ban.since, ban.since))  # fmt: skip
            for address in unbans:
                db.execute("DELETE FROM bans WHERE address = ?", (address,))
            for d in decisions:
                db.execute("INSERT INTO decisions (time, address, action, probability, requests, reason, detail) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (d["time"], d["address"], d["action"], d.get("probability"),
                           d.get("requests"), d.get("reason", ""), json.dumps(d.get("detail", {}))))  # fmt: skip
            db.execute("DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?", (self.keep_decisions,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
