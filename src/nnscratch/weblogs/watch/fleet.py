"""The state of a fleet of watchers in one PostgreSQL database (the extra ``fleet``).

A site behind a load balancer runs one ``logs watch`` per web server. Given
``--state postgresql://...``, they share one database: the bans, the offence
counts and the decisions are the fleet's, the file positions and line counts
each host's own. ``PostgresStore`` has the methods of the SQLite ``state.Store``
(the watcher cannot tell them apart), plus the push the fleet needs: every
commit that bans or unbans sends ``NOTIFY nnscratch_bans``, and ``wait`` wakes
a watcher on that notice instead of sleeping out its poll interval, so a ban
made on one host reaches the actions of every other host at its next step
(the watcher learns it from ``bans()``, as it learns an unban made by hand).

Each batch is still one transaction with the positions after it, so a watcher
killed with ``kill -9`` resumes after its last committed line; two watchers
banning the same client at once write one row (``ON CONFLICT``), and each host
applies it once.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...extras import require
from .follow import Position
from .state import Ban, Remembered, StateFileError

__all__ = ["PostgresStore", "StoreUnavailable", "is_database_url", "open_store", "CHANNEL"]

CHANNEL = "nnscratch_bans"
_SCHEMA_LOCK = 0x6E6E7363  # "nnsc": the advisory lock held while the tables are created
_BAN_LOCK = 0x6E6E7362  # "nnsb", with a hash of the address: one commit at a time bans a client
SCHEMA = """
CREATE TABLE IF NOT EXISTS nnscratch_positions (host TEXT, path TEXT, device BIGINT, inode BIGINT, "offset" BIGINT,
    PRIMARY KEY (host, path));
CREATE TABLE IF NOT EXISTS nnscratch_counters (host TEXT, name TEXT, value BIGINT, PRIMARY KEY (host, name));
CREATE TABLE IF NOT EXISTS nnscratch_bans (address TEXT PRIMARY KEY, since DOUBLE PRECISION,
    until DOUBLE PRECISION, reason TEXT, host TEXT);
CREATE TABLE IF NOT EXISTS nnscratch_offenders (address TEXT PRIMARY KEY, offenses INTEGER, last DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS nnscratch_decisions (id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION, address TEXT,
    action TEXT, probability DOUBLE PRECISION, requests INTEGER, reason TEXT, detail TEXT, host TEXT);
CREATE INDEX IF NOT EXISTS nnscratch_decisions_address ON nnscratch_decisions (address);
CREATE TABLE IF NOT EXISTS nnscratch_evidence (client TEXT, host TEXT, last DOUBLE PRECISION, counts TEXT,
    PRIMARY KEY (client, host));
CREATE TABLE IF NOT EXISTS nnscratch_memory (host TEXT, kind TEXT, key TEXT, value BYTEA,
    PRIMARY KEY (host, kind, key));
"""


_POSITION = (
    "INSERT INTO nnscratch_positions VALUES (%s, %s, %s, %s, %s) ON CONFLICT (host, path) DO UPDATE SET "
    'device = EXCLUDED.device, inode = EXCLUDED.inode, "offset" = EXCLUDED."offset"'
)
_COUNTER = (
    "INSERT INTO nnscratch_counters VALUES (%s, %s, %s) ON CONFLICT (host, name) DO UPDATE SET "
    "value = nnscratch_counters.value + EXCLUDED.value"
)
_BAN = (
    "INSERT INTO nnscratch_bans VALUES (%s, %s, %s, %s, %s) ON CONFLICT (address) DO UPDATE SET "
    "since = EXCLUDED.since, until = EXCLUDED.until, reason = EXCLUDED.reason, host = EXCLUDED.host"
)
_OFFENCE = (
    "INSERT INTO nnscratch_offenders VALUES (%s, 1, %s) ON CONFLICT (address) DO UPDATE SET "
    "offenses = nnscratch_offenders.offenses + 1, last = EXCLUDED.last"
)
_DECISION = (
    "INSERT INTO nnscratch_decisions (time, address, action, probability, requests, reason, detail, host) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def is_database_url(state: str) -> bool:
    """Whether ``--state`` names a PostgreSQL database rather than an SQLite file; any other
    URL (``mysql://...``) is a ValueError, never a file path of that name."""
    if str(state).startswith(("postgresql://", "postgres://")):
        return True
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", str(state)):
        raise ValueError(f"--state takes an SQLite file or a postgresql:// URL (the fleet's database); received "
                         f"{_without_password(str(state))!r}: no other database is supported.")  # fmt: skip
    return False


class StoreUnavailable(ConnectionError):
    """The fleet's database cannot be reached now (an outage, a restart): the watcher judges on
    locally, keeps what it could not commit, and commits it when the database is back."""


def open_store(state: str, host: str | None = None) -> Any:
    """The watcher's state: a ``PostgresStore`` for a ``postgresql://`` URL, else the SQLite
    ``state.Store`` at that path."""
    from .state import Store

    return PostgresStore(state, host) if is_database_url(state) else Store(state)


def _without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # a URL that does not parse (refused when connecting): hide what looks like one
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore:
    """The shared state of a fleet of watchers, in the PostgreSQL database at ``url``; ``host``
    names this watcher's positions and counters (default: this machine's name)."""

    remote = True  # a server: a watcher reads on while it commits (``Watcher._commit``)

    def __init__(self, url: str, host: str | None = None, keep_decisions: int = 100_000) -> None:
        psycopg = require("psycopg", "fleet")
        self.url, self.host, self.keep_decisions = url, host or socket.gethostname(), keep_decisions
        self.path = _without_password(url)  # what messages show
        self._psycopg = psycopg
        try:
            self._connect()
        except (psycopg.Error, ValueError) as err:  # ValueError: a URL that does not parse (e.g. [::1:5432)
            said = " ".join(str(err).replace(url, self.path).split()).rstrip(".")  # one line, no password
            raise StateFileError(f"the fleet database {self.path} cannot be used: {said}. Check the --state URL, that "
                                 "PostgreSQL runs there and that the user may create tables.") from None  # fmt: skip

    def _connect(self) -> None:
        psycopg = self._psycopg
        self.db = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        # Watchers that start together would race to create the tables (PostgreSQL's CREATE
        # TABLE IF NOT EXISTS is not safe at once): one at a time, under an advisory lock.
        self.db.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            self.db.execute(SCHEMA)
        finally:
            self.db.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        self.listener = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        self.listener.execute(f"LISTEN {CHANNEL}")

    def _call(self, work: Any) -> Any:
        """``work()`` on the database; an outage becomes ``StoreUnavailable``, and the next call
        connects afresh."""
        psycopg = self._psycopg
        try:
            if self.db.closed or self.listener.closed:
                self._connect()
            return work()
        except psycopg.OperationalError as err:
            for connection in (self.db, self.listener):
                connection.close()
            raise StoreUnavailable(f"the fleet database {self.path} is unreachable: {str(err).strip()}") from None

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r}, host={self.host!r})"

    def close(self) -> None:
        self.db.close()
        self.listener.close()

    # --- reading ------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        rows = self.db.execute('SELECT path, device, inode, "offset" FROM nnscratch_positions WHERE host = %s',
                               (self.host,))  # fmt: skip
        return {path: Position(device, inode, offset) for path, device, inode, offset in rows}

    def counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM nnscratch_counters WHERE host = %s AND name = %s",
                              (self.host, name)).fetchone()  # fmt: skip
        return int(row[0]) if row else 0

    def bans(self) -> list[Ban]:
        query = "SELECT address, since, until, reason FROM nnscratch_bans ORDER BY until"
        return self._call(lambda: [Ban(*row) for row in self.db.execute(query)])

    def memory(self) -> dict[str, dict[str, bytes]]:
        """This host's memory of its stream, as the last commit left it (see ``state.Store.memory``)."""
        out: dict[str, dict[str, bytes]] = {}
        for kind, key, value in self.db.execute("SELECT kind, key, value FROM nnscratch_memory WHERE host = %s",
                                                (self.host,)):  # fmt: skip
            out.setdefault(kind, {})[key] = bytes(value)
        return out

    def offenses(self, address: str) -> int:
        query = "SELECT offenses FROM nnscratch_offenders WHERE address = %s"
        row = self._call(lambda: self.db.execute(query, (address,)).fetchone())
        return int(row[0]) if row else 0

    def decisions(self, address: str, limit: int = 5) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT time, action, probability, requests, reason, detail, host FROM nnscratch_decisions "
            "WHERE address = %s ORDER BY id DESC LIMIT %s", (address, limit))  # fmt: skip
        return [{"time": t, "action": a, "probability": p, "requests": n, "reason": r,
                 "detail": {**json.loads(d or "{}"), "host": h}} for t, a, p, n, r, d, h in rows]  # fmt: skip

    def lock(self) -> None:
        """Claim this host's place in the fleet: a second watcher with the same ``--fleet-host``
        is refused (a PostgreSQL advisory lock, released when this watcher's connection ends)."""
        held = self.db.execute("SELECT pg_try_advisory_lock(hashtext(%s))", ("nnscratch:" + self.host,)).fetchone()[0]
        if not held:
            raise StateFileError(f"another watcher runs as host {self.host!r} in the fleet database {self.path}; stop "
                                 "it first, or give this one its own --fleet-host.")  # fmt: skip

    def elsewhere(self, clients: Sequence[str]) -> dict[str, list[tuple[float, list[float]]]]:
        """The evidence of ``clients`` on the other hosts, as ``Decider.pool`` wants it: client ->
        ``(log time of its latest request, counts)`` of each host's latest commit; clients no
        other host knows are left out. During an outage, nothing (each host judges alone)."""
        query = "SELECT client, last, counts FROM nnscratch_evidence WHERE client = ANY(%s) AND host <> %s"
        try:
            rows = self._call(lambda: self.db.execute(query, (list(clients), self.host)).fetchall())
        except StoreUnavailable:
            return {}
        out: dict[str, list[tuple[float, list[float]]]] = {}
        for client, last, counts in rows:
            out.setdefault(client, []).append((last, json.loads(counts)))
        return out

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when a watcher of the fleet bans or
        unbans (a ``NOTIFY``). Returns whether one did."""
        try:
            return self._call(lambda: any(True for _ in self.listener.notifies(timeout=timeout, stop_after=1)))
        except StoreUnavailable:
            time.sleep(timeout)  # the next commit reports the outage
            return False

    # --- writing: one transaction per batch ----------------------------------
    def commit(
        self,
        *,
        positions: dict[str, Position] | None = None,
        counters: dict[str, int] | None = None,
        bans: Iterable[Ban] = (),
        unbans: Iterable[str] = (),
        decisions: Iterable[dict[str, Any]] = (),
        evidence: dict[str, tuple[float, Sequence[float]]] | None = None,
        memory: Remembered | None = None,
    ) -> None:
        """Everything a batch changed, atomically (see ``state.Store.commit``), and this host's
        latest evidence of the clients it judged (``evidence``: client -> (log time, counts));
        a commit that bans or unbans notifies the fleet."""
        bans, unbans = list(bans), list(unbans)
        self._call(lambda: self._commit(positions, counters, bans, unbans, list(decisions), evidence or {}, memory))

    def _commit(self, positions: dict[str, Position] | None, counters: dict[str, int] | None, bans: list[Ban],
                unbans: list[str], decisions: list[dict[str, Any]],
                evidence: dict[str, tuple[float, Sequence[float]]], memory: Remembered | None) -> None:  # fmt: skip
        with self.db.transaction(), self.db.cursor() as cur:
            if memory is not None:
                for kind in memory.clear:
                    cur.execute("DELETE FROM nnscratch_memory WHERE host = %s AND kind = %s", (self.host, kind))
                latest = {(kind, key): value for kind, key, value in memory.put}  # the last put of a key wins
                rows = [(self.host, kind, key, value) for (kind, key), value in latest.items()]
                _upsert(cur, "nnscratch_memory", rows, "host, kind, key", "value = EXCLUDED.value")
                dropped: dict[str, list[str]] = {}
                for kind, key in memory.drop:
                    dropped.setdefault(kind, []).append(key)
                for kind, keys in dropped.items():  # one statement per kind, not one per key
                    cur.execute("DELETE FROM nnscratch_memory WHERE host = %s AND kind = %s AND key = ANY(%s)",
                                (self.host, kind, keys))  # fmt: skip
            _upsert(cur, "nnscratch_evidence", [(client, self.host, last, json.dumps([float(v) for v in counts]))
                                                for client, (last, counts) in evidence.items()],
                    "client, host", "last = EXCLUDED.last, counts = EXCLUDED.counts")  # fmt: skip
            cur.executemany(_POSITION, [(self.host, path, p.device, p.inode, p.offset)
                                        for path, p in (positions or {}).items()])  # fmt: skip
            cur.executemany(_COUNTER, [(self.host, name, add) for name, add in (counters or {}).items()])
            for address in sorted({ban.address for ban in bans}):  # in one order: no two commits wait on each other
                cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_BAN_LOCK, address))
            for ban in bans:
                # Hosts that ban one client at once (each on the pooled evidence) make one offence: the
                # lock above makes the second wait for the first's row (FOR UPDATE locks no row not made yet).
                active = cur.execute("SELECT until FROM nnscratch_bans WHERE address = %s FOR UPDATE",
                                     (ban.address,)).fetchone()  # fmt: skip
                if active is not None and active[0] > ban.since:
                    cur.execute("UPDATE nnscratch_bans SET until = GREATEST(until, %s) WHERE address = %s",
                                (ban.until, ban.address))  # fmt: skip
                    continue
                cur.execute(_BAN, (ban.address, ban.since, ban.until, ban.reason, self.host))
                cur.execute(_OFFENCE, (ban.address, ban.since))
            for address in unbans:
                cur.execute("DELETE FROM nnscratch_bans WHERE address = %s", (address,))
            if decisions:  # the newest ``keep_decisions`` are kept
                cur.executemany(_DECISION, [(d["time"], d["address"], d["action"], d.get("probability"),
                                             d.get("requests"), d.get("reason", ""), json.dumps(d.get("detail", {})),
                                             self.host) for d in decisions])  # fmt: skip
                cur.execute("DELETE FROM nnscratch_decisions WHERE id <= (SELECT MAX(id) FROM nnscratch_decisions) "
                            "- %s", (self.keep_decisions,))  # fmt: skip
            if bans or unbans:
                cur.execute(f"NOTIFY {CHANNEL}")  # delivered when the transaction commits


def _upsert(cur: Any, table: str, rows: list[tuple], key: str, update: str) -> None:
    """Insert or update many rows of ``table`` (whole rows, in its column order; at most one
    per ``key``) in two statements: ``COPY`` into a temporary table of its shape (emptied at
    commit), then one ``INSERT ... ON CONFLICT (key) DO UPDATE SET update``: a watcher's
    step can carry tens of thousands of rows, and the server, not the round trips, is then
    what a step waits for."""
    if not rows:
        return
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table}_in (LIKE {table}) ON COMMIT DELETE ROWS")
    with cur.copy(f"COPY {table}_in FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(f"INSERT INTO {table} SELECT * FROM {table}_in ON CONFLICT ({key}) DO UPDATE SET {update}")
