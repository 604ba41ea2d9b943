"""The embedded store: one SQLite file holding cursors, alert state, the event log and the outbox.

Everything that must survive a ``kill -9`` goes through here, and every change
that belongs together is one transaction: a tracker step's state change, the
events it caused and the outbox rows those events need. That single rule is
what makes "nothing lost, nothing twice" true across crashes.

This module implements :class:`alertd.store.base.StateStore`; no
``sqlite3`` object leaves it. Its SQL stays portable (``ON CONFLICT`` upserts,
``?`` placeholders that a PostgreSQL backend maps to its own), the
SQLite-only parts (PRAGMAs, ``BEGIN IMMEDIATE``, ``sqlite_master``, the file
lock) live here alone.

Threads: each thread gets its own connection (SQLite arbitrates between them
with its file locks and the busy timeout), so the daemon's store thread
(:class:`alertd.store.runner.StoreRunner`) and the web handlers on the event
loop never share a transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alertd.core.model import AlertEvent, AlertKind, Region, Severity
from alertd.core.priority import delivery_priority
from alertd.core.topics import is_topic
from alertd.core.tracker import Active, Key, SourceEntry, SourceStatus, StepResult, TrackerState
from alertd.errors import StoreError, StoreLocked
from alertd.store.base import (
    FINAL_STATES,
    LeaseInfo,
    OutboxItem,
    OutboxRouter,
    OutboxRow,
    OutboxState,
    Outcome,
    SourceCursor,
    StoredSubscriber,
    WebSubscription,
    channel_key,
    pairs_by_event,
)

__all__ = [
    # the rows, re-exported for code written before alertd.store.base existed
    "OutboxItem",
    "OutboxRouter",
    "OutboxRow",
    "Outcome",
    "SQLiteStore",
    "SourceCursor",
    "Store",
    "StoredSubscriber",
    "channel_key",
]

#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Error names (``sqlite3.Error.sqlite_errorname``) that mean "someone else holds the lock": retry.
_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED")

SCHEMA_VERSION = 4

# Forward migrations: MIGRATIONS[n] takes a database at version n to n+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        status_index TEXT,
        last_success TEXT,
        last_attempt TEXT,
        last_failure TEXT,
        failing_since TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        baseline_done INTEGER NOT NULL DEFAULT 0,
        last_count INTEGER NOT NULL DEFAULT 0,
        suspect INTEGER NOT NULL DEFAULT 0,
        down_reported INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE source_alerts (
        source TEXT NOT NULL,
        region_code TEXT NOT NULL,
        kind TEXT NOT NULL,
        region TEXT NOT NULL,
        source_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        severity TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '',
        missing INTEGER NOT NULL DEFAULT 0,
        missing_since TEXT,
        PRIMARY KEY (source, region_code, kind)
    );
    CREATE TABLE active (
        region_code TEXT NOT NULL,
        kind TEXT NOT NULL,
        region TEXT NOT NULL,
        started_at TEXT NOT NULL,
        source TEXT NOT NULL,
        start_event_id TEXT NOT NULL,
        announced INTEGER NOT NULL,
        severity TEXT NOT NULL,
        PRIMARY KEY (region_code, kind)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        region_code TEXT,
        started_at TEXT,
        ended_at TEXT,
        observed_at TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_region ON events (region_code, kind, seq);
    CREATE TABLE notices (
        source TEXT NOT NULL,
        id TEXT NOT NULL,
        hash TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (source, id)
    );
    CREATE INDEX notices_hash ON notices (source, hash);
    CREATE TABLE subscribers (
        name TEXT PRIMARY KEY,
        regions TEXT NOT NULL,
        kinds TEXT NOT NULL,
        advisories TEXT NOT NULL,
        language TEXT,
        urls TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT 'cli',
        status TEXT NOT NULL DEFAULT 'active',
        created_at TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        channel TEXT NOT NULL,
        channel_key TEXT NOT NULL,
        language TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        UNIQUE (event_id, channel_key)
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    CREATE TABLE attempts (
        outbox_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        PRIMARY KEY (outbox_id, attempt)
    );
    """,
    # 2: residents' self-service subscriptions (alertd.web.selfservice.store). The subscriber
    # itself is a row in ``subscribers`` (origin 'web', status pending -> active);
    # this table holds what only the web side needs. ``manage_token`` is kept as is
    # (the footer of every message carries it; it is as sensitive as the channel URL,
    # which is stored as given anyway); the confirmation code only as an HMAC.
    """
    CREATE TABLE web_subscriptions (
        id TEXT PRIMARY KEY,
        subscriber TEXT NOT NULL UNIQUE,
        manage_token TEXT NOT NULL UNIQUE,
        code_hash TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        expires_at TEXT,
        channel_kind TEXT NOT NULL,
        destination TEXT NOT NULL,
        destination_masked TEXT NOT NULL,
        client TEXT NOT NULL,
        created_at TEXT NOT NULL,
        confirmed_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX web_subscriptions_expiry ON web_subscriptions (expires_at);
    CREATE TABLE web_rate (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX web_rate_key ON web_rate (bucket, key, at);
    """,
    # 3: delivery priority (alertd.core.priority): urgent starts first, topics before individual
    # channels within a level. Existing rows get "other start" for an individual channel.
    """
    ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;
    CREATE INDEX outbox_claim ON outbox (state, priority, id);
    """,
    # 4: a source's confirmed end of an alert another source still held open (tracker
    # SourceEntry.confirmed_over). Existing rows are reports (NULL), as they were.
    """
    ALTER TABLE source_alerts ADD COLUMN confirmed_over TEXT;
    """,
]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _store_error(path: Path, doing: str, exc: sqlite3.Error) -> StoreError:
    """A StoreError that carries SQLite's own words (the real cause) and whether a retry may help."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    transient = name.startswith(_TRANSIENT) or "locked" in str(exc) or "busy" in str(exc)
    return StoreError(f"state file {path} {doing}: {exc}", cause=str(exc), transient=transient)


def _subscriber(r: Sequence[Any]) -> StoredSubscriber:
    return StoredSubscriber(
        name=r[0],
        regions=tuple(json.loads(r[1])),
        kinds=tuple(json.loads(r[2])),
        advisories=tuple(json.loads(r[3])),
        language=r[4],
        urls=tuple(json.loads(r[5])),
        origin=r[6],
        status=r[7],
    )


_WEB_SELECT = (
    "SELECT w.id, w.subscriber, w.manage_token, w.code_hash, w.attempts, w.expires_at, w.channel_kind, "
    "w.destination, w.destination_masked, w.client, w.created_at, w.confirmed_at, s.status, s.regions, "
    "s.kinds, s.language, s.urls FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber"
)


def _web_row(r: Sequence[Any]) -> WebSubscription:
    created = _dt(r[10])
    assert created is not None  # NOT NULL column
    return WebSubscription(
        id=r[0],
        subscriber=r[1],
        manage_token=r[2],
        code_hash=r[3],
        attempts=r[4],
        expires_at=_dt(r[5]),
        channel_kind=r[6],
        destination=r[7],
        destination_masked=r[8],
        client=r[9],
        created_at=created,
        confirmed_at=_dt(r[11]),
        status=r[12],
        regions=tuple(json.loads(r[13])),
        kinds=tuple(json.loads(r[14])),
        language=r[15],
        urls=tuple(json.loads(r[16])),
    )


class _InstanceLock:
    """One daemon per state file: an exclusive ``flock`` on ``<state>.lock`` holding the owner's PID.

    The kernel drops the lock when the process dies (also on ``kill -9``), so a stale
    lock file never blocks a restart.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"another alertd (pid {holder}) is already running on {db_path} "
                f"(lock {self.path}); stop it first, or give this one its own state_dir",
                holder_pid=int(holder) if holder.isdigit() else None,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class SQLiteStore:
    """The SQLite implementation of :class:`alertd.store.base.StateStore`.

    ``exclusive``: take the one-daemon-per-file lock (``alertd run``; the CLI's
    readers and ``subscribers`` edits do not). ``init``: accept an empty or
    non-SQLite file where a state file is expected and start afresh (the old
    file is kept beside it as ``<name>.refused-<time>``). ``busy_timeout``: seconds
    one statement waits for another writer before it fails as transient.
    """

    def __init__(
        self,
        path: Path,
        *,
        exclusive: bool = False,
        init: bool = False,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._lock: _InstanceLock | None = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"state directory {self.path.parent} cannot be created: {exc.strerror}", cause=str(exc)
            ) from exc
        if exclusive:
            try:
                self._lock = _InstanceLock(self.path)
            except OSError as exc:
                raise StoreError(
                    f"state directory {self.path.parent}: lock file cannot be written: {exc.strerror}",
                    cause=str(exc),
                ) from exc
        try:
            self._check_file(init)
            db = self._conn()
            row = db.execute("PRAGMA quick_check").fetchone()
            if row[0] != "ok":
                raise StoreError(
                    f"state file {self.path} is corrupt ({row[0]}); restore a backup or move it away",
                    cause=str(row[0]),
                )
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise _store_error(self.path, "cannot be used", exc) from exc
        except BaseException:
            self.close()
            raise

    def _check_file(self, init: bool) -> None:
        """Refuse a state file that exists but is empty or not SQLite: silently starting afresh
        would forget the history and the outbox, and record running alerts as old news."""
        try:
            with self.path.open("rb") as f:
                header = f.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return  # a fresh install
        except OSError as exc:
            raise StoreError(
                f"state file {self.path} cannot be read: {exc.strerror}", cause=str(exc)
            ) from exc
        if header == SQLITE_HEADER:
            return
        what = "is empty (0 bytes)" if not header else "is not an SQLite database"
        if not init:
            raise StoreError(
                f"state file {self.path} {what}; alertd will not start afresh over it (that would forget "
                f"the history and the outbox). Restore it from a backup, or run `alertd run --init` to "
                f"start with an empty state (the file is kept beside it)",
                cause=what,
            )
        aside = self.path.with_name(f"{self.path.name}.refused-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).unlink()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise StoreError(f"state file {self.path}: the store is closed", cause="closed")
            db = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # 512 KiB of page cache per connection instead of SQLite's 2 MiB: each store thread has
            # one, the OS caches the file anyway, and a 10,000-channel fan-out ran as fast with it
            # (bench/fanout.py 961/s, bench/idle.py after-alert RSS 91.0 -> 89.3 MB; issue 12).
            db.execute("PRAGMA cache_size=-512")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._all.clear()
        self._local = threading.local()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- schema -----------------------------------------------------------------
    def _version(self) -> int:
        db = self._conn()
        has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return 0
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} has schema version {version}, newer than this alertd "
                f"understands ({SCHEMA_VERSION}); upgrade alertd"
            )
        for step in range(version, SCHEMA_VERSION):
            with self._transaction() as db:
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step + 1),),
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; on any failure everything is rolled back and the *real*
        error is raised (as StoreError for SQLite's own errors).

        After a failed statement or COMMIT (disk full, I/O error) SQLite may already have
        rolled the transaction back; a ROLLBACK then fails with "no transaction is active".
        That secondary failure must never replace the cause, so ROLLBACK is only issued
        while a transaction is open, and its own errors are dropped.
        """
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot be written", exc) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _store_error(self.path, "cannot be written", exc) from exc
            raise

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """One read outside a write transaction, with SQLite errors as StoreError."""
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, "cannot be read", exc) from exc

    # -- tracker state ------------------------------------------------------------
    def load_tracker_state(self) -> TrackerState:
        entries: dict[str, dict[Key, SourceEntry]] = {}
        for row in self._read(
            "SELECT source, region, kind, source_id, started_at, severity, details, missing, missing_since, "
            "confirmed_over FROM source_alerts"
        ):
            entry = SourceEntry(
                region=Region.model_validate_json(row[1]),
                kind=AlertKind(row[2]),
                source_id=row[3],
                started_at=datetime.fromisoformat(row[4]),
                severity=Severity(row[5]),
                details=row[6],
                missing=row[7],
                missing_since=_dt(row[8]),
                confirmed_over=row[9],
            )
            entries.setdefault(row[0], {})[entry.key] = entry
        active: dict[Key, Active] = {}
        for row in self._read(
            "SELECT region, kind, started_at, source, start_event_id, announced, severity FROM active"
        ):
            item = Active(
                region=Region.model_validate_json(row[0]),
                kind=AlertKind(row[1]),
                started_at=datetime.fromisoformat(row[2]),
                source=row[3],
                start_event_id=row[4],
                announced=bool(row[5]),
                severity=Severity(row[6]),
            )
            active[item.key] = item
        sources = {
            row[0]: SourceStatus(baseline_done=bool(row[1]), last_count=row[2], suspect=row[3])
            for row in self._read("SELECT name, baseline_done, last_count, suspect FROM sources")
        }
        recent_ends = {
            (row[0], AlertKind(row[1])): datetime.fromisoformat(row[2])
            for row in self._read(
                "SELECT region_code, kind, MAX(ended_at) FROM events WHERE status = 'ended' "
                "AND region_code IS NOT NULL GROUP BY region_code, kind"
            )
        }
        return TrackerState(entries=entries, active=active, sources=sources, recent_ends=recent_ends)

    def commit_step(
        self,
        source: str,
        step: StepResult,
        outbox_for: OutboxRouter | None = None,
        cursor: dict[str, str | None] | None = None,
        now: datetime | None = None,
        *,
        polled: bool = True,
    ) -> list[AlertEvent]:
        """Persist a tracker step, its events and their outbox rows in one transaction.

        Returns the events that were new (an event id already stored is a replay
        and produces no outbox rows). ``polled=False`` (a pushed step) leaves the
        source's poll record alone: a push is not a successful poll.
        """
        now = now or datetime.now(UTC)
        with self._transaction() as db:
            new_events = self._insert_events(db, step.events, outbox_for, now)
            if step.source_changed:
                db.execute("DELETE FROM source_alerts WHERE source = ?", (source,))
                db.executemany(
                    "INSERT INTO source_alerts (source, region_code, kind, region, source_id, started_at, "
                    "severity, details, missing, missing_since, confirmed_over) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            source,
                            e.region.code,
                            str(e.kind),
                            e.region.model_dump_json(),
                            e.source_id,
                            _ts(e.started_at),
                            str(e.severity),
                            e.details,
                            e.missing,
                            _ts(e.missing_since),
                            e.confirmed_over,
                        )
                        for e in step.state.entries.get(source, {}).values()
                    ],
                )
            for key in step.changed_keys:
                item = step.state.active.get(key)
                if item is None:
                    db.execute("DELETE FROM active WHERE region_code = ? AND kind = ?", (key[0], str(key[1])))
                else:
                    db.execute(
                        "INSERT INTO active (region_code, kind, region, started_at, source, start_event_id, "
                        "announced, severity) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (region_code, kind) DO UPDATE "
                        "SET region=excluded.region, started_at=excluded.started_at, source=excluded.source, "
                        "start_event_id=excluded.start_event_id, announced=excluded.announced, "
                        "severity=excluded.severity",
                        (
                            key[0],
                            str(key[1]),
                            item.region.model_dump_json(),
                            _ts(item.started_at),
                            item.source,
                            item.start_event_id,
                            int(item.announced),
                            str(item.severity),
                        ),
                    )
            status = step.state.sources.get(source, SourceStatus())
            self._touch_source(db, source)
            db.execute(
                "UPDATE sources SET baseline_done = ?, last_count = ?, suspect = ? WHERE name = ?",
                (int(status.baseline_done), status.last_count, status.suspect, source),
            )
            if polled:
                self._success(db, source, cursor or {}, now)
        return new_events

    def _insert_events(
        self,
        db: sqlite3.Connection,
        events: Iterable[AlertEvent],
        outbox_for: OutboxRouter | None,
        now: datetime,
    ) -> list[AlertEvent]:
        new: list[AlertEvent] = []
        for event in events:
            cur = db.execute(
                "INSERT INTO events (id, source, kind, status, region_code, started_at, ended_at, observed_at, "
                "payload) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING",
                (
                    event.id,
                    event.source,
                    str(event.kind),
                    str(event.status),
                    event.region.code if event.region else None,
                    _ts(event.started_at),
                    _ts(event.ended_at),
                    _ts(event.observed_at),
                    event.model_dump_json(),
                ),
            )
            if cur.rowcount != 1:
                continue
            new.append(event)
            if outbox_for is not None:
                rows: list[OutboxRow] = outbox_for(event)
                stamp = _ts(now)  # once, not twice per row: 10,000 rows sit inside this transaction
                topic_priority = delivery_priority(event, topic=True)  # once per event, likewise
                channel_priority = delivery_priority(event)
                db.executemany(
                    "INSERT INTO outbox (event_id, subscriber, channel, channel_key, language, next_attempt_at, "
                    "created_at, priority) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (event_id, channel_key) DO NOTHING",
                    [
                        (
                            r.event_id,
                            r.subscriber,
                            r.channel,
                            channel_key(r.channel),
                            r.language,
                            stamp,
                            stamp,
                            (topic_priority if is_topic(r.subscriber) else channel_priority),
                        )
                        for r in rows
                    ],
                )
        return new

    # -- item feeds ---------------------------------------------------------------
    def known_notices(self, source: str) -> tuple[dict[str, str], set[str]]:
        rows = self._read("SELECT id, hash FROM notices WHERE source = ?", (source,))
        return {r[0]: r[1] for r in rows}, {r[1] for r in rows}

    def commit_notices(
        self,
        source: str,
        events: list[AlertEvent],
        remember: dict[str, str],
        outbox_for: OutboxRouter | None = None,
        cursor: dict[str, str | None] | None = None,
        now: datetime | None = None,
    ) -> list[AlertEvent]:
        now = now or datetime.now(UTC)
        with self._transaction() as db:
            new_events = self._insert_events(db, events, outbox_for, now)
            db.executemany(
                "INSERT INTO notices (source, id, hash, first_seen, last_seen) VALUES (?,?,?,?,?) "
                "ON CONFLICT (source, id) DO UPDATE SET hash = excluded.hash, last_seen = excluded.last_seen",
                [(source, nid, digest, _ts(now), _ts(now)) for nid, digest in remember.items()],
            )
            # Forget items gone from the feed for a year: bounded growth over months of running.
            db.execute(
                "DELETE FROM notices WHERE source = ? AND last_seen < ?",
                (source, _ts(now - timedelta(days=365))),
            )
            self._touch_source(db, source)
            db.execute("UPDATE sources SET baseline_done = 1 WHERE name = ?", (source,))
            self._success(db, source, cursor or {}, now)
        return new_events

    # -- source cursors -------------------------------------------------------------
    @staticmethod
    def _touch_source(db: sqlite3.Connection, source: str) -> None:
        db.execute("INSERT INTO sources (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (source,))

    @staticmethod
    def _success(db: sqlite3.Connection, source: str, cursor: dict[str, str | None], now: datetime) -> None:
        sets = ["last_success = ?", "last_attempt = ?", "consecutive_failures = 0", "failing_since = NULL"]
        args: list[object] = [_ts(now), _ts(now)]
        for column in ("etag", "last_modified", "status_index"):
            if column in cursor:
                sets.append(f"{column} = ?")
                args.append(cursor[column])
        db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE name = ?", (*args, source))

    def record_unchanged(
        self, source: str, cursor: dict[str, str | None] | None = None, now: datetime | None = None
    ) -> None:
        """A good poll that said "nothing changed" (304, same status index)."""
        now = now or datetime.now(UTC)
        with self._transaction() as db:
            self._touch_source(db, source)
            self._success(db, source, cursor or {}, now)

    def record_failure(self, source: str, error: str, now: datetime | None = None) -> SourceCursor:
        now = now or datetime.now(UTC)
        with self._transaction() as db:
            self._touch_source(db, source)
            db.execute(
                "UPDATE sources SET last_attempt = ?, last_failure = ?, last_error = ?, "
                "consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, ?) "
                "WHERE name = ?",
                (_ts(now), _ts(now), error[:500], _ts(now), source),
            )
        return self.cursor(source)

    def set_down_reported(self, source: str, value: bool) -> None:
        with self._transaction() as db:
            self._touch_source(db, source)
            db.execute("UPDATE sources SET down_reported = ? WHERE name = ?", (int(value), source))

    _CURSOR_COLUMNS = (
        "SELECT name, etag, last_modified, status_index, last_success, last_attempt, last_failure, "
        "failing_since, consecutive_failures, last_error, baseline_done, down_reported FROM sources"
    )

    @staticmethod
    def _cursor_row(row: Sequence[Any]) -> SourceCursor:
        return SourceCursor(
            name=row[0],
            etag=row[1],
            last_modified=row[2],
            status_index=row[3],
            last_success=_dt(row[4]),
            last_attempt=_dt(row[5]),
            last_failure=_dt(row[6]),
            failing_since=_dt(row[7]),
            consecutive_failures=row[8],
            last_error=row[9],
            baseline_done=bool(row[10]),
            down_reported=bool(row[11]),
        )

    def cursor(self, source: str) -> SourceCursor:
        rows = self._read(self._CURSOR_COLUMNS + " WHERE name = ?", (source,))
        return self._cursor_row(rows[0]) if rows else SourceCursor(name=source)

    def cursors(self) -> list[SourceCursor]:
        return [self._cursor_row(r) for r in self._read(self._CURSOR_COLUMNS + " ORDER BY name")]

    # -- outbox ---------------------------------------------------------------------
    def requeue_inflight(self) -> int:
        """At start-up: deliveries marked 'sending' were cut off by a stop; send them again.

        These are the only rows that may reach a channel twice (at-least-once).
        """
        with self._transaction() as db:
            cur = db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'")
            return cur.rowcount

    def claim_due(self, now: datetime, limit: int = 500) -> list[OutboxItem]:
        """Take up to ``limit`` due rows, most urgent then oldest first, marking them 'sending' in one transaction."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT o.id, e.payload, o.subscriber, o.channel, o.language, o.attempts, o.created_at, o.priority "
                "FROM outbox o JOIN events e ON e.id = o.event_id "
                "WHERE o.state = 'pending' AND o.next_attempt_at <= ? ORDER BY o.priority, o.id LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
            if not rows:
                return []
            db.executemany(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?",
                [(r[0],) for r in rows],
            )
        # The rows of one fan-out share one event: parse each payload (and timestamp) once,
        # not once per row (AlertEvent is frozen, so the items can share the object).
        events: dict[str, AlertEvent] = {}
        stamps: dict[str, datetime] = {}
        items = []
        for r in rows:
            event = events.get(r[1])
            if event is None:
                event = events[r[1]] = AlertEvent.model_validate_json(r[1])
            if r[6] not in stamps:
                stamps[r[6]] = datetime.fromisoformat(r[6])
            items.append(
                OutboxItem(
                    id=r[0],
                    event=event,
                    subscriber=r[2],
                    channel=r[3],
                    language=r[4],
                    attempts=r[5] + 1,
                    created_at=stamps[r[6]],
                    priority=r[7],
                )
            )
        return items

    def next_due(self) -> datetime | None:
        rows = self._read("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'")
        return _dt(rows[0][0]) if rows and rows[0][0] else None

    def finish(self, outcomes: Iterable[Outcome], now: datetime) -> None:
        """Record a batch of delivery outcomes (and each attempt) in one transaction."""
        outcomes = list(outcomes)
        if not outcomes:
            return
        stamp = _ts(now)
        latest = list({o.outbox_id: o for o in outcomes}.values())  # one row's later outcome wins
        given_back = [(_ts(o.retry_at or now), o.outbox_id) for o in latest if not o.counted]
        retrying = [
            (_ts(o.retry_at or now), o.detail, o.outbox_id)
            for o in latest
            if o.counted and o.state == OutboxState.PENDING
        ]
        settled = [
            (str(o.state), None if o.state == OutboxState.DELIVERED else o.detail, stamp, o.outbox_id)
            for o in latest
            if o.counted and o.state != OutboxState.PENDING
        ]
        with self._transaction() as db:
            # claimed, never tried: back to pending, the attempt given back
            db.executemany(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, attempts = attempts - 1 WHERE id = ?",
                given_back,
            )
            db.executemany(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ?",
                retrying,
            )
            db.executemany("UPDATE outbox SET state = ?, last_error = ?, sent_at = ? WHERE id = ?", settled)
            db.executemany(
                "INSERT INTO attempts (outbox_id, attempt, at, outcome, detail) VALUES (?,?,?,?,?) "
                "ON CONFLICT (outbox_id, attempt) DO UPDATE SET at = excluded.at, outcome = excluded.outcome, "
                "detail = excluded.detail",
                [(o.outbox_id, o.attempt, stamp, str(o.state), o.detail) for o in outcomes if o.counted],
            )

    def outbox_state(self, event_id: str, channel: str) -> OutboxState | None:
        """The delivery state of one event on one channel, or None if it has no row."""
        rows = self._read(
            "SELECT state FROM outbox WHERE event_id = ? AND channel_key = ?",
            (event_id, channel_key(channel)),
        )
        return OutboxState(rows[0][0]) if rows else None

    def outbox_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], OutboxState]:
        """:meth:`outbox_state` for many (event id, channel URL) pairs: one query per event and 500 channels."""
        found: dict[tuple[str, str], OutboxState] = {}
        for event_id, keys in pairs_by_event(pairs).items():
            key_list = list(keys)
            for i in range(0, len(key_list), 500):
                chunk = key_list[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, state in self._read(
                    f"SELECT channel_key, state FROM outbox WHERE event_id = ? AND channel_key IN ({marks})",
                    (event_id, *chunk),
                ):
                    found[(event_id, keys[key])] = OutboxState(state)
        return found

    def supersede(self, event_id: str, channel: str, reason: str) -> bool:
        """Retire a pending start that an end will now carry; False if it is no longer pending."""
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE outbox SET state = 'superseded', last_error = ? "
                "WHERE event_id = ? AND channel_key = ? AND state = 'pending'",
                (reason, event_id, channel_key(channel)),
            )
            return cur.rowcount == 1

    def has_event(self, event_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM events WHERE id = ?", (event_id,)))

    def outbox_depth(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")
        return int(rows[0][0])

    def outbox_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._read("SELECT state, COUNT(*) FROM outbox GROUP BY state")}

    def oldest_pending(self, now: datetime | None = None) -> datetime | None:
        """Since when the longest-waiting due delivery has been due: the dispatcher's lag.

        Rows waiting out a retry backoff are not lag (one broken channel must not
        make the whole dispatcher look stuck); rows being sent count from their due time.
        """
        rows = self._read(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'sending' "
            "OR (state = 'pending' AND next_attempt_at <= ?)",
            (_ts(now or datetime.now(UTC)),),
        )
        return _dt(rows[0][0]) if rows and rows[0][0] else None

    # -- housekeeping ---------------------------------------------------------------
    def prune(self, before: datetime, batch: int = 500) -> int:
        """Delete up to ``batch`` finished rows older than ``before`` (see StateStore.prune)."""
        final = tuple(str(s) for s in FINAL_STATES)
        marks = ",".join("?" * len(final))
        with self._transaction() as db:
            ids = [
                r[0]
                for r in db.execute(
                    f"SELECT id FROM outbox WHERE state IN ({marks}) AND COALESCE(sent_at, created_at) < ? "
                    "ORDER BY id LIMIT ?",
                    (*final, _ts(before), batch),
                )
            ]
            removed = 0
            if ids:
                id_marks = ",".join("?" * len(ids))
                db.execute(f"DELETE FROM attempts WHERE outbox_id IN ({id_marks})", ids)
                removed += db.execute(f"DELETE FROM outbox WHERE id IN ({id_marks})", ids).rowcount
            room = batch - removed
            if room > 0:
                # Events no kept row needs: not an active alert's, not referenced by an outbox row,
                # not the latest end of its (region, kind) (the tracker's restart dedup reads it).
                removed += db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e.observed_at < ? "
                    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id) "
                    "AND NOT EXISTS (SELECT 1 FROM active a WHERE a.region_code = e.region_code "
                    "AND a.kind = e.kind AND a.started_at = e.started_at) "
                    "AND NOT (e.status = 'ended' AND e.seq = (SELECT MAX(l.seq) FROM events l "
                    "WHERE l.status = 'ended' AND l.region_code = e.region_code AND l.kind = e.kind)) "
                    "ORDER BY e.seq LIMIT ?)",
                    (_ts(before), room),
                ).rowcount
        return removed

    def size_bytes(self) -> int | None:
        """The state file plus its write-ahead log, in bytes."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += self.path.with_name(self.path.name + suffix).stat().st_size
        return total

    # -- subscribers managed in the store (CLI, self-service) ---------------------------
    @staticmethod
    def _insert_subscriber(
        db: sqlite3.Connection, record: StoredSubscriber, origin: str, status: str, now: datetime
    ) -> None:
        db.execute(
            "INSERT INTO subscribers (name, regions, kinds, advisories, language, urls, origin, status, "
            "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.name,
                json.dumps(list(record.regions)),
                json.dumps(list(record.kinds)),
                json.dumps(list(record.advisories)),
                record.language,
                json.dumps(list(record.urls)),
                origin,
                status,
                _ts(now),
            ),
        )

    def add_subscriber(self, record: StoredSubscriber, now: datetime | None = None) -> None:
        with self._transaction() as db:
            exists = db.execute("SELECT 1 FROM subscribers WHERE name = ?", (record.name,)).fetchone()
            if exists:
                raise StoreError(f"a subscriber named {record.name!r} already exists")
            self._insert_subscriber(db, record, record.origin, record.status, now or datetime.now(UTC))
            self._bump_subscribers(db)

    def remove_subscriber(self, name: str) -> bool:
        with self._transaction() as db:
            removed = db.execute("DELETE FROM subscribers WHERE name = ?", (name,)).rowcount == 1
            if removed:
                self._bump_subscribers(db)
            return removed

    def subscribers(self, *, status: str | None = "active") -> list[StoredSubscriber]:
        query = "SELECT name, regions, kinds, advisories, language, urls, origin, status FROM subscribers"
        args: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        return [_subscriber(r) for r in self._read(query + " ORDER BY name", args)]

    def subscribers_version(self) -> int:
        """A counter bumped by every change to stored subscribers, by any process."""
        rows = self._read("SELECT value FROM meta WHERE key = 'subscribers_rev'")
        return int(rows[0][0]) if rows else 0

    def set_subscriber_status(self, name: str, status: str) -> bool:
        """Set a stored subscriber's status (active | pending | disabled); False if there is none."""
        with self._transaction() as db:
            changed = (
                db.execute("UPDATE subscribers SET status = ? WHERE name = ?", (status, name)).rowcount == 1
            )
            if changed:
                self._bump_subscribers(db)
            return changed

    @staticmethod
    def _bump_subscribers(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('subscribers_rev', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
        )

    # -- residents' self-service --------------------------------------------------------
    def web_secret(self) -> str:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'selfservice_secret'").fetchone()
            if row is not None:
                return str(row[0])
            value = secrets.token_hex(32)
            db.execute("INSERT INTO meta (key, value) VALUES ('selfservice_secret', ?)", (value,))
            return value

    def web_purge(self, now: datetime, rate_before: datetime) -> int:
        with self._transaction() as db:
            names = [
                r[0]
                for r in db.execute(
                    "SELECT w.subscriber FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
                    "WHERE s.status = 'pending' AND w.expires_at IS NOT NULL AND w.expires_at < ?",
                    (_ts(now),),
                )
            ]
            for name in names:
                db.execute("DELETE FROM web_subscriptions WHERE subscriber = ?", (name,))
                db.execute("DELETE FROM subscribers WHERE name = ?", (name,))
            if names:
                self._bump_subscribers(db)
            db.execute("DELETE FROM web_rate WHERE at < ?", (_ts(rate_before),))
        return len(names)

    def web_count_pending(self, client: str | None = None) -> int:
        sql = (
            "SELECT COUNT(*) FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
            "WHERE s.status = 'pending'"
        )
        rows = self._read(sql) if client is None else self._read(sql + " AND w.client = ?", (client,))
        return int(rows[0][0])

    def web_rate_count(self, bucket: str, key: str, since: datetime) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM web_rate WHERE bucket = ? AND key = ? AND at >= ?",
            (bucket, key, _ts(since)),
        )
        return int(rows[0][0])

    def web_rate_hit(self, bucket: str, key: str, now: datetime) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO web_rate (bucket, key, at) VALUES (?, ?, ?)", (bucket, key, _ts(now)))

    def web_create(
        self,
        *,
        sub_id: str,
        record: StoredSubscriber,
        manage_token: str,
        code_hash: str,
        expires_at: datetime,
        channel_kind: str,
        destination: str,
        destination_masked: str,
        client: str,
        now: datetime,
    ) -> None:
        with self._transaction() as db:
            self._insert_subscriber(db, record, "web", "pending", now)
            db.execute(
                "INSERT INTO web_subscriptions (id, subscriber, manage_token, code_hash, attempts, expires_at, "
                "channel_kind, destination, destination_masked, client, created_at, updated_at) "
                "VALUES (?,?,?,?,0,?,?,?,?,?,?,?)",
                (
                    sub_id,
                    record.name,
                    manage_token,
                    code_hash,
                    _ts(expires_at),
                    channel_kind,
                    destination,
                    destination_masked,
                    client,
                    _ts(now),
                    _ts(now),
                ),
            )
            self._bump_subscribers(db)

    def web_get(self, sub_id: str) -> WebSubscription | None:
        rows = self._read(_WEB_SELECT + " WHERE w.id = ?", (sub_id,))
        return _web_row(rows[0]) if rows else None

    def web_by_token(self, token: str) -> WebSubscription | None:
        rows = self._read(_WEB_SELECT + " WHERE w.manage_token = ?", (token,))
        return _web_row(rows[0]) if rows else None

    def web_all(self) -> list[WebSubscription]:
        return [_web_row(r) for r in self._read(_WEB_SELECT + " ORDER BY w.created_at, w.id")]

    def web_wrong_code(self, sub_id: str) -> int:
        with self._transaction() as db:
            db.execute("UPDATE web_subscriptions SET attempts = attempts + 1 WHERE id = ?", (sub_id,))
            row = db.execute("SELECT attempts FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
        return int(row[0]) if row else 0

    def web_activate(self, sub_id: str, now: datetime) -> bool:
        with self._transaction() as db:
            row = db.execute("SELECT subscriber FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE web_subscriptions SET code_hash = NULL, expires_at = NULL, confirmed_at = ?, "
                "updated_at = ? WHERE id = ?",
                (_ts(now), _ts(now), sub_id),
            )
            db.execute(
                "UPDATE subscribers SET status = 'active' WHERE name = ? AND status = 'pending'", (row[0],)
            )
            self._bump_subscribers(db)
        return True

    def web_update(
        self,
        sub_id: str,
        *,
        regions: list[str] | None,
        kinds: list[str] | None,
        language: str | None,
        now: datetime,
    ) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT subscriber FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return
            if regions is not None:
                db.execute("UPDATE subscribers SET regions = ? WHERE name = ?", (json.dumps(regions), row[0]))
            if kinds is not None:
                db.execute("UPDATE subscribers SET kinds = ? WHERE name = ?", (json.dumps(kinds), row[0]))
            if language is not None:
                db.execute("UPDATE subscribers SET language = ? WHERE name = ?", (language, row[0]))
            db.execute("UPDATE web_subscriptions SET updated_at = ? WHERE id = ?", (_ts(now), sub_id))
            self._bump_subscribers(db)

    def web_delete(self, sub_id: str) -> bool:
        with self._transaction() as db:
            row = db.execute("SELECT subscriber FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM web_subscriptions WHERE id = ?", (sub_id,))
            db.execute("DELETE FROM subscribers WHERE name = ?", (row[0],))
            self._bump_subscribers(db)
        return True

    def web_manage_token_for(self, subscriber: str) -> str | None:
        rows = self._read(
            "SELECT w.manage_token FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
            "WHERE w.subscriber = ? AND s.status = 'active'",
            (subscriber,),
        )
        return str(rows[0][0]) if rows else None

    def web_active_tokens(self) -> dict[str, str]:
        rows = self._read(
            "SELECT w.subscriber, w.manage_token FROM web_subscriptions w "
            "JOIN subscribers s ON s.name = w.subscriber WHERE s.status = 'active'"
        )
        return {r[0]: r[1] for r in rows}

    # -- reading --------------------------------------------------------------------
    def active_alerts(self) -> list[Active]:
        return sorted(self.load_tracker_state().active.values(), key=lambda a: (a.started_at, a.region.code))

    def events(self, since_seq: int = 0) -> list[AlertEvent]:
        return [
            AlertEvent.model_validate_json(r[0])
            for r in self._read("SELECT payload FROM events WHERE seq > ? ORDER BY seq", (since_seq,))
        ]

    def events_since(self, since: datetime) -> list[AlertEvent]:
        """Events observed at or after ``since``, oldest first (the CAP feed's recent window)."""
        return [
            AlertEvent.model_validate_json(r[0])
            for r in self._read(
                "SELECT payload FROM events WHERE observed_at >= ? ORDER BY seq", (_ts(since),)
            )
        ]

    def event(self, event_id: str) -> AlertEvent | None:
        rows = self._read("SELECT payload FROM events WHERE id = ?", (event_id,))
        return AlertEvent.model_validate_json(rows[0][0]) if rows else None

    # -- several instances: not on SQLite (one daemon per file, see _InstanceLock) ------------------
    shared = False

    def tracker_stale(self) -> bool:
        return False

    def acquire_source_lease(self, source: str, instance: str, ttl: float) -> bool:
        return True

    def release_source_lease(self, source: str, instance: str) -> None:
        return None

    def leases(self) -> list[LeaseInfo]:
        return []

    def renew_claims(self, lease: float | None = None) -> int:
        return 0

    def claims(self) -> dict[str, int]:
        return {}

    def once(self, key: str, holder: str) -> bool:
        return True


#: The name this class had before the store seam (kept for callers being migrated).
Store = SQLiteStore
