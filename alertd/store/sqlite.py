"""The store: one SQLite file holding cursors, alert state, the event log and the outbox.

Everything that must survive a ``kill -9`` goes through here, and every change
that belongs together is one transaction: a tracker step's state change, the
events it caused and the outbox rows those events need. That single rule is
what makes "nothing lost, nothing twice" true across crashes.

The SQL stays portable (no SQLite-only upserts beyond ``ON CONFLICT``, which
PostgreSQL shares) so a PostgreSQL backend can implement the same interface.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alertd.core.model import AlertEvent, AlertKind, Region, Severity
from alertd.core.tracker import Active, Key, SourceEntry, SourceStatus, StepResult, TrackerState
from alertd.errors import StoreError

SCHEMA_VERSION = 2

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
]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def channel_key(url: str) -> str:
    """A stable, non-secret name for a channel URL (the URL itself holds credentials)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SourceCursor:
    """Per-source fetch and health state, read by the fetcher, `status` and `/healthz`."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    status_index: str | None = None
    last_success: datetime | None = None
    last_attempt: datetime | None = None
    last_failure: datetime | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    baseline_done: bool = False
    down_reported: bool = False


@dataclass(frozen=True)
class OutboxRow:
    """One notice one channel must receive."""

    event_id: str
    subscriber: str
    channel: str
    language: str


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt: state is delivered | pending (retry) | dead | superseded."""

    outbox_id: int
    attempt: int
    state: str
    detail: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True)
class StoredSubscriber:
    """A subscriber kept in the store rather than the config file (CLI or self-service)."""

    name: str
    regions: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    advisories: tuple[str, ...] = ()
    language: str | None = None
    urls: tuple[str, ...] = ()
    origin: str = "cli"
    status: str = "active"


#: Turns an event into the outbox rows that must carry it (routing, run inside the store's transaction).
OutboxRouter = Callable[[AlertEvent], list[OutboxRow]]


@dataclass(frozen=True)
class OutboxItem:
    id: int
    event: AlertEvent
    subscriber: str
    channel: str
    language: str
    attempts: int
    created_at: datetime


class Store:
    """The narrow interface to the state file. One instance per process; not thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"state directory {self.path.parent} cannot be created: {exc.strerror}") from exc
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(
                    f"state file {self.path} is corrupt ({check}); restore a backup or move it away"
                )
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"state file {self.path} cannot be used: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # -- schema -----------------------------------------------------------------
    def _version(self) -> int:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} has schema version {version}, newer than this alertd "
                f"understands ({SCHEMA_VERSION}); upgrade alertd"
            )
        for step in range(version, SCHEMA_VERSION):
            with self.transaction() as db:
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step + 1),),
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"state file {self.path} cannot be written: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"state file {self.path} cannot be written: {exc}") from exc

    # -- tracker state ------------------------------------------------------------
    def load_tracker_state(self) -> TrackerState:
        entries: dict[str, dict[Key, SourceEntry]] = {}
        for row in self._db.execute(
            "SELECT source, region, kind, source_id, started_at, severity, details, missing, missing_since "
            "FROM source_alerts"
        ):
            region = Region.model_validate_json(row[1])
            entry = SourceEntry(
                region=region,
                kind=AlertKind(row[2]),
                source_id=row[3],
                started_at=_dt(row[4]),  # type: ignore[arg-type]
                severity=Severity(row[5]),
                details=row[6],
                missing=row[7],
                missing_since=_dt(row[8]),
            )
            entries.setdefault(row[0], {})[entry.key] = entry
        active: dict[Key, Active] = {}
        for row in self._db.execute(
            "SELECT region, kind, started_at, source, start_event_id, announced, severity FROM active"
        ):
            item = Active(
                region=Region.model_validate_json(row[0]),
                kind=AlertKind(row[1]),
                started_at=_dt(row[2]),  # type: ignore[arg-type]
                source=row[3],
                start_event_id=row[4],
                announced=bool(row[5]),
                severity=Severity(row[6]),
            )
            active[item.key] = item
        sources = {
            row[0]: SourceStatus(baseline_done=bool(row[1]), last_count=row[2], suspect=row[3])
            for row in self._db.execute("SELECT name, baseline_done, last_count, suspect FROM sources")
        }
        recent_ends = {
            (row[0], AlertKind(row[1])): _dt(row[2])
            for row in self._db.execute(
                "SELECT region_code, kind, MAX(started_at) FROM events WHERE status = 'ended' "
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
        with self.transaction() as db:
            new_events = self._insert_events(db, step.events, outbox_for, now)
            if step.source_changed:
                db.execute("DELETE FROM source_alerts WHERE source = ?", (source,))
                db.executemany(
                    "INSERT INTO source_alerts (source, region_code, kind, region, source_id, started_at, "
                    "severity, details, missing, missing_since) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                rows = outbox_for(event)
                stamp = _ts(now)  # once, not twice per row: 10,000 rows sit inside this transaction
                db.executemany(
                    "INSERT INTO outbox (event_id, subscriber, channel, channel_key, language, next_attempt_at, "
                    "created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (event_id, channel_key) DO NOTHING",
                    [
                        (
                            r.event_id,
                            r.subscriber,
                            r.channel,
                            channel_key(r.channel),
                            r.language,
                            stamp,
                            stamp,
                        )
                        for r in rows
                    ],
                )
        return new

    # -- item feeds ---------------------------------------------------------------
    def known_notices(self, source: str) -> tuple[dict[str, str], set[str]]:
        rows = self._db.execute("SELECT id, hash FROM notices WHERE source = ?", (source,)).fetchall()
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
        with self.transaction() as db:
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

    def _success(
        self, db: sqlite3.Connection, source: str, cursor: dict[str, str | None], now: datetime
    ) -> None:
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
        with self.transaction() as db:
            self._touch_source(db, source)
            self._success(db, source, cursor or {}, now)

    def record_failure(self, source: str, error: str, now: datetime | None = None) -> SourceCursor:
        now = now or datetime.now(UTC)
        with self.transaction() as db:
            self._touch_source(db, source)
            db.execute(
                "UPDATE sources SET last_attempt = ?, last_failure = ?, last_error = ?, "
                "consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, ?) "
                "WHERE name = ?",
                (_ts(now), _ts(now), error[:500], _ts(now), source),
            )
        return self.cursor(source)

    def set_down_reported(self, source: str, value: bool) -> None:
        with self.transaction() as db:
            self._touch_source(db, source)
            db.execute("UPDATE sources SET down_reported = ? WHERE name = ?", (int(value), source))

    def cursor(self, source: str) -> SourceCursor:
        row = self._db.execute(
            "SELECT name, etag, last_modified, status_index, last_success, last_attempt, last_failure, "
            "failing_since, consecutive_failures, last_error, baseline_done, down_reported "
            "FROM sources WHERE name = ?",
            (source,),
        ).fetchone()
        if row is None:
            return SourceCursor(name=source)
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

    def cursors(self) -> list[SourceCursor]:
        names = [r[0] for r in self._db.execute("SELECT name FROM sources ORDER BY name")]
        return [self.cursor(n) for n in names]

    # -- outbox ---------------------------------------------------------------------
    def requeue_inflight(self) -> int:
        """At start-up: deliveries marked 'sending' were cut off by a stop; send them again.

        These are the only rows that may reach a channel twice (at-least-once).
        """
        with self.transaction() as db:
            cur = db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'")
            return cur.rowcount

    def claim_due(self, now: datetime, limit: int = 500) -> list[OutboxItem]:
        """Take up to ``limit`` due rows, oldest first, marking them 'sending' in one transaction."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT o.id, e.payload, o.subscriber, o.channel, o.language, o.attempts, o.created_at "
                "FROM outbox o JOIN events e ON e.id = o.event_id "
                "WHERE o.state = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
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
        stamps: dict[str, datetime | None] = {}
        items = []
        for r in rows:
            event = events.get(r[1])
            if event is None:
                event = events[r[1]] = AlertEvent.model_validate_json(r[1])
            if r[6] not in stamps:
                stamps[r[6]] = _dt(r[6])
            items.append(
                OutboxItem(
                    id=r[0],
                    event=event,
                    subscriber=r[2],
                    channel=r[3],
                    language=r[4],
                    attempts=r[5] + 1,
                    created_at=stamps[r[6]],  # type: ignore[arg-type]
                )
            )
        return items

    def next_due(self) -> datetime | None:
        row = self._db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'").fetchone()
        return _dt(row[0]) if row and row[0] else None

    def finish(self, outcomes: Iterable[Outcome], now: datetime) -> None:
        """Record a batch of delivery outcomes (and each attempt) in one transaction."""
        outcomes = list(outcomes)
        if not outcomes:
            return
        with self.transaction() as db:
            for o in outcomes:
                if o.state == "pending":
                    db.execute(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ?",
                        (_ts(o.retry_at or now), o.detail, o.outbox_id),
                    )
                else:
                    db.execute(
                        "UPDATE outbox SET state = ?, last_error = ?, sent_at = ? WHERE id = ?",
                        (o.state, None if o.state == "delivered" else o.detail, _ts(now), o.outbox_id),
                    )
            db.executemany(
                "INSERT INTO attempts (outbox_id, attempt, at, outcome, detail) VALUES (?,?,?,?,?) "
                "ON CONFLICT (outbox_id, attempt) DO UPDATE SET at = excluded.at, outcome = excluded.outcome, "
                "detail = excluded.detail",
                [(o.outbox_id, o.attempt, _ts(now), o.state, o.detail) for o in outcomes],
            )

    def outbox_state(self, event_id: str, channel: str) -> str | None:
        """The delivery state of one event on one channel, or None if it has no row."""
        row = self._db.execute(
            "SELECT state FROM outbox WHERE event_id = ? AND channel_key = ?",
            (event_id, channel_key(channel)),
        ).fetchone()
        return row[0] if row else None

    def supersede(self, event_id: str, channel: str, reason: str) -> bool:
        """Retire a pending start that an end will now carry; False if it is no longer pending."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE outbox SET state = 'superseded', last_error = ? "
                "WHERE event_id = ? AND channel_key = ? AND state = 'pending'",
                (reason, event_id, channel_key(channel)),
            )
            return cur.rowcount == 1

    def has_event(self, event_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None

    def outbox_depth(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()
        return int(row[0])

    def outbox_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())

    def oldest_pending(self, now: datetime | None = None) -> datetime | None:
        """Since when the longest-waiting due delivery has been due: the dispatcher's lag.

        Rows waiting out a retry backoff are not lag (one broken channel must not
        make the whole dispatcher look stuck); rows being sent count from their due time.
        """
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'sending' "
            "OR (state = 'pending' AND next_attempt_at <= ?)",
            (_ts(now or datetime.now(UTC)),),
        ).fetchone()
        return _dt(row[0]) if row and row[0] else None

    # -- subscribers managed in the store (CLI, later the web) ---------------------------
    def add_subscriber(self, record: StoredSubscriber, now: datetime | None = None) -> None:
        with self.transaction() as db:
            exists = db.execute("SELECT 1 FROM subscribers WHERE name = ?", (record.name,)).fetchone()
            if exists:
                raise StoreError(f"a subscriber named {record.name!r} already exists")
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
                    record.origin,
                    record.status,
                    _ts(now or datetime.now(UTC)),
                ),
            )
            self._bump_subscribers(db)

    def remove_subscriber(self, name: str) -> bool:
        with self.transaction() as db:
            removed = db.execute("DELETE FROM subscribers WHERE name = ?", (name,)).rowcount == 1
            if removed:
                self._bump_subscribers(db)
            return removed

    def subscribers(self, *, status: str | None = "active") -> list[StoredSubscriber]:
        query = "SELECT name, regions, kinds, advisories, language, urls, origin, status FROM subscribers"
        args: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        return [
            StoredSubscriber(
                name=r[0],
                regions=tuple(json.loads(r[1])),
                kinds=tuple(json.loads(r[2])),
                advisories=tuple(json.loads(r[3])),
                language=r[4],
                urls=tuple(json.loads(r[5])),
                origin=r[6],
                status=r[7],
            )
            for r in self._db.execute(query + " ORDER BY name", args)
        ]

    def subscribers_version(self) -> int:
        """A counter bumped by every change to stored subscribers, by any process."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'subscribers_rev'").fetchone()
        return int(row[0]) if row else 0

    def set_subscriber_status(self, name: str, status: str) -> bool:
        """Set a stored subscriber's status (active | pending | disabled); False if there is none."""
        with self.transaction() as db:
            changed = (
                db.execute("UPDATE subscribers SET status = ? WHERE name = ?", (status, name)).rowcount == 1
            )
            if changed:
                self._bump_subscribers(db)
            return changed

    @staticmethod
    def subscribers_changed(db: sqlite3.Connection) -> None:
        """For code writing ``subscribers`` rows inside its own :meth:`transaction` (alertd.web.selfservice)."""
        Store._bump_subscribers(db)

    @staticmethod
    def _bump_subscribers(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('subscribers_rev', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    # -- reading --------------------------------------------------------------------
    def active_alerts(self) -> list[Active]:
        return sorted(self.load_tracker_state().active.values(), key=lambda a: (a.started_at, a.region.code))

    def events(self, since_seq: int = 0) -> list[AlertEvent]:
        return [
            AlertEvent.model_validate_json(r[0])
            for r in self._db.execute("SELECT payload FROM events WHERE seq > ? ORDER BY seq", (since_seq,))
        ]

    def events_since(self, since: datetime) -> list[AlertEvent]:
        """Events observed at or after ``since``, oldest first (the CAP feed's recent window)."""
        return [
            AlertEvent.model_validate_json(r[0])
            for r in self._db.execute(
                "SELECT payload FROM events WHERE observed_at >= ? ORDER BY seq", (_ts(since),)
            )
        ]

    def event(self, event_id: str) -> AlertEvent | None:
        row = self._db.execute("SELECT payload FROM events WHERE id = ?", (event_id,)).fetchone()
        return AlertEvent.model_validate_json(row[0]) if row else None
