"""The PostgreSQL store: one database shared by several alertd instances (DESIGN §10).

Same promises as the SQLite store, the same contract suite, and three things SQLite
cannot give:

* **Leases.** Each source is polled by one instance at a time: ``leases`` holds who
  polls it until when, on the *database's* clock (hosts may disagree about the time;
  the database is the one judge). The holder renews it; when it dies the lease runs
  out and another instance takes it. A tracker step commits only while its instance
  still holds the lease (fencing: a frozen instance that wakes up cannot overwrite
  the history its successor wrote).
* **Shared outbox.** Every instance drains the same outbox: rows are claimed with
  ``FOR UPDATE SKIP LOCKED`` under a claim lease (``claimed_by``, ``claimed_until``);
  a dead instance's rows return to the pool when their lease runs out.
* **One tracker history.** Tracker state lives in the database; a revision counter
  makes a step computed from a stale view fail (:class:`TrackerConflict`) instead of
  overwriting a newer one, so the caller reloads and computes again.

A lost connection or a database failover is an outage, not a crash: each operation
that cannot reach the database raises :class:`StoreUnavailable` (the caller retries on
its own schedule; nothing was half-written: every change is one transaction), and the
store logs one line when the outage begins and one when it ends.

psycopg 3 and psycopg-pool are an optional extra: ``pip install 'alertd[postgres]'``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from alertd.core.model import AlertEvent, AlertKind, Region, Severity
from alertd.core.priority import delivery_priority
from alertd.core.topics import is_topic
from alertd.core.tracker import Active, Key, SourceEntry, SourceStatus, StepResult, TrackerState
from alertd.errors import LeaseLost, StoreError, StoreUnavailable, TrackerConflict
from alertd.logs import get_logger
from alertd.store.base import (
    FINAL_STATES,
    LeaseInfo,
    OutboxItem,
    OutboxRouter,
    OutboxState,
    Outcome,
    SourceCursor,
    StoredSubscriber,
    WebSubscription,
    channel_key,
    pairs_by_event,
)

try:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised by test_store_url's missing-extra test
    raise StoreError(
        "a postgresql:// store needs the PostgreSQL extra: pip install 'alertd[postgres]' "
        f"({exc.name} is not installed)"
    ) from exc

log = get_logger("alertd.store")

SCHEMA_VERSION = 3

# Forward migrations: MIGRATIONS[n] takes a database at version n to n+1. Each runs in
# one transaction under an advisory lock, so instances starting together migrate once.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        status_index TEXT,
        last_success TIMESTAMPTZ,
        last_attempt TIMESTAMPTZ,
        last_failure TIMESTAMPTZ,
        failing_since TIMESTAMPTZ,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        baseline_done BOOLEAN NOT NULL DEFAULT FALSE,
        last_count INTEGER NOT NULL DEFAULT 0,
        suspect INTEGER NOT NULL DEFAULT 0,
        down_reported BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE TABLE source_alerts (
        source TEXT NOT NULL,
        region_code TEXT NOT NULL,
        kind TEXT NOT NULL,
        region TEXT NOT NULL,
        source_id TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        severity TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '',
        missing INTEGER NOT NULL DEFAULT 0,
        missing_since TIMESTAMPTZ,
        PRIMARY KEY (source, region_code, kind)
    );
    CREATE TABLE active (
        region_code TEXT NOT NULL,
        kind TEXT NOT NULL,
        region TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        source TEXT NOT NULL,
        start_event_id TEXT NOT NULL,
        announced BOOLEAN NOT NULL,
        severity TEXT NOT NULL,
        PRIMARY KEY (region_code, kind)
    );
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        region_code TEXT,
        started_at TIMESTAMPTZ,
        ended_at TIMESTAMPTZ,
        observed_at TIMESTAMPTZ NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_region ON events (region_code, kind, seq);
    CREATE TABLE notices (
        source TEXT NOT NULL,
        id TEXT NOT NULL,
        hash TEXT NOT NULL,
        first_seen TIMESTAMPTZ NOT NULL,
        last_seen TIMESTAMPTZ NOT NULL,
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
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        channel TEXT NOT NULL,
        channel_key TEXT NOT NULL,
        language TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        last_error TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        sent_at TIMESTAMPTZ,
        claimed_by TEXT,
        claimed_until TIMESTAMPTZ,
        UNIQUE (event_id, channel_key)
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    CREATE INDEX outbox_claims ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
    CREATE TABLE attempts (
        outbox_id BIGINT NOT NULL,
        attempt INTEGER NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        PRIMARY KEY (outbox_id, attempt)
    );
    CREATE TABLE web_subscriptions (
        id TEXT PRIMARY KEY,
        subscriber TEXT NOT NULL UNIQUE,
        manage_token TEXT NOT NULL UNIQUE,
        code_hash TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ,
        channel_kind TEXT NOT NULL,
        destination TEXT NOT NULL,
        destination_masked TEXT NOT NULL,
        client TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        confirmed_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX web_subscriptions_expiry ON web_subscriptions (expires_at);
    CREATE TABLE web_rate (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX web_rate_key ON web_rate (bucket, key, at);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until TIMESTAMPTZ NOT NULL,
        since TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE once_keys (
        key TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('tracker_rev', '0');
    """,
    # 1: delivery priority (alertd.core.priority): urgent starts first, topics first within a level.
    """
    ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;
    CREATE INDEX outbox_claim ON outbox (state, priority, id);
    """,
    # 2: a source's confirmed end of an alert another source still held open (tracker
    # SourceEntry.confirmed_over). Existing rows are reports (NULL), as they were.
    """
    ALTER TABLE source_alerts ADD COLUMN confirmed_over TEXT;
    """,
]

#: pg_advisory_xact_lock key under which migrations run (any constant; "alertd" in ASCII)
_MIGRATE_LOCK = 0x616C65727464
#: seconds to wait for a pooled connection before calling the database unreachable
_CONNECT_WAIT = 3.0
#: … and while it is known to be unreachable (one attempt, then the caller retries later)
_DOWN_WAIT = 0.5
#: seconds an instance's claim on outbox rows lasts unless renewed (a dead instance's rows
#: return to the pool this long after its last renewal)
CLAIM_LEASE = 30.0


def redact_url(url: str) -> str:
    """``postgresql://user:****@host/db``: the password never reaches a log line or an error."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:
        return "postgresql://…"
    host, port, user = (str(parts.get(k) or "") for k in ("host", "port", "user"))
    where = f"{host}:{port}" if port else host
    return f"postgresql://{user + '@' if user else ''}{where}/{parts.get('dbname', '')}"


class _Health:
    """One log line when the database becomes unreachable, one when it is back."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, began: float) -> None:
        """An operation that began at ``began`` (monotonic) could not reach the database."""
        with self._lock:
            if self.down_since is None:
                self.down_since = began
                log.error(
                    "store unreachable; retrying, work waits in the database",
                    database=self.where,
                    error=_one_line(exc),
                )

    def ok(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                log.warning(
                    "store reachable again",
                    database=self.where,
                    down_for=f"{time.monotonic() - self.down_since:.1f}s",
                )
                self.down_since = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


class PostgresStore:
    """The narrow store interface over a PostgreSQL database shared by several instances.

    Thread-safe (a connection pool); each method is one transaction.
    """

    shared = True

    def __init__(
        self, url: str, *, instance: str = "alertd", claim_lease: float = CLAIM_LEASE, pool_size: int = 4
    ) -> None:
        self.url = url
        self.where = redact_url(url)
        #: where the state lives, for log lines (the URL without its password)
        self.location = self.where
        self.instance = instance
        self.claim_lease = claim_lease
        self._health = _Health(self.where)
        self._tracker_rev: int | None = None
        self._pending_rev: int | None = None
        # The pool's own warnings (one per failed connection attempt) would bury the one line
        # per outage that _Health writes: it speaks for the pool.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(2, pool_size),
            kwargs={"autocommit": False, "connect_timeout": 5, "options": "-c TimeZone=UTC"},
            check=ConnectionPool.check_connection,
            open=False,
            name="alertd",
            # No background retry loop: each operation that finds no connection makes one attempt
            # (outages are reported and retried by the callers' own schedules, see _Health).
            reconnect_timeout=0,
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"database {self.where} cannot be reached: {_pool_reason(exc)}") from exc
        self._migrate()

    def close(self) -> None:
        self._pool.close()

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on a pooled connection; an unreachable database raises StoreUnavailable."""
        began = time.monotonic()
        try:
            # While the database is known to be down, fail fast instead of holding the caller.
            wait = _CONNECT_WAIT if self._health.down_since is None else _DOWN_WAIT
            with self._pool.connection(timeout=wait) as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
                raise StoreError(f"database {self.where}: {_one_line(exc)}") from exc
            self._health.failed(exc, began)
            raise StoreUnavailable(
                f"database {self.where} unreachable: {_one_line(exc)}", cause=_one_line(exc)
            ) from exc
        self._health.ok()

    def _migrate(self) -> None:
        try:
            with self.transaction() as db:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                exists = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
                version = 0
                if exists and exists[0]:
                    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {self.where} has schema version {version}, newer than this alertd "
                        f"understands ({SCHEMA_VERSION}); upgrade alertd"
                    )
                for step in range(version, SCHEMA_VERSION):
                    db.execute(MIGRATIONS[step])
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(step + 1),),
                    )
                    log.info("store migrated", database=self.where, schema_version=step + 1)
        except psycopg.Error as exc:
            raise StoreError(f"database {self.where} cannot be migrated: {_one_line(exc)}") from exc

    # -- tracker state ----------------------------------------------------------------------------
    def load_tracker_state(self) -> TrackerState:
        """The tracker's view, and the revision a step computed from it must still find at commit."""
        state, rev = self._tracker_view()
        self._tracker_rev = rev
        return state

    def _tracker_view(self) -> tuple[TrackerState, int]:
        with self.transaction() as db:
            rev = _meta_int(db, "tracker_rev")
            entries: dict[str, dict[Key, SourceEntry]] = {}
            for row in db.execute(
                "SELECT source, region, kind, source_id, started_at, severity, details, missing, "
                "missing_since, confirmed_over FROM source_alerts"
            ):
                entry = SourceEntry(
                    region=Region.model_validate_json(row[1]),
                    kind=AlertKind(row[2]),
                    source_id=row[3],
                    started_at=row[4],
                    severity=Severity(row[5]),
                    details=row[6],
                    missing=row[7],
                    missing_since=row[8],
                    confirmed_over=row[9],
                )
                entries.setdefault(row[0], {})[entry.key] = entry
            active: dict[Key, Active] = {}
            for row in db.execute(
                "SELECT region, kind, started_at, source, start_event_id, announced, severity FROM active"
            ):
                item = Active(
                    region=Region.model_validate_json(row[0]),
                    kind=AlertKind(row[1]),
                    started_at=row[2],
                    source=row[3],
                    start_event_id=row[4],
                    announced=bool(row[5]),
                    severity=Severity(row[6]),
                )
                active[item.key] = item
            sources = {
                row[0]: SourceStatus(baseline_done=bool(row[1]), last_count=row[2], suspect=row[3])
                for row in db.execute("SELECT name, baseline_done, last_count, suspect FROM sources")
            }
            recent_ends = {
                (row[0], AlertKind(row[1])): row[2]
                for row in db.execute(
                    "SELECT region_code, kind, MAX(ended_at) FROM events WHERE status = 'ended' "
                    "AND region_code IS NOT NULL GROUP BY region_code, kind"
                )
            }
        return TrackerState(entries=entries, active=active, sources=sources, recent_ends=recent_ends), rev

    def tracker_revision(self) -> int:
        """The database's tracker revision (bumped by every committed step, by any instance)."""
        with self.transaction() as db:
            return _meta_int(db, "tracker_rev")

    def tracker_stale(self) -> bool:
        """Did another instance commit a tracker step since this process last loaded or committed one?"""
        return self._tracker_rev is None or self.tracker_revision() != self._tracker_rev

    def _fence(
        self, db: psycopg.Connection[Any], source: str, *, check_lease: bool = True, step: bool = True
    ) -> None:
        """Inside a step's transaction: refuse a stale view or a lost lease (see the module docstring).

        A pushed step (``check_lease=False``) may arrive at any instance: its payload is fresh,
        so only the view it was computed from must be current."""
        lease = db.execute(
            "SELECT holder, until > clock_timestamp() FROM leases WHERE name = %s", (_poll_lease(source),)
        ).fetchone()
        if check_lease and lease is not None and (lease[0] != self.instance or not lease[1]):
            raise LeaseLost(f"source {source} is polled by {lease[0]} now")
        if not step:  # an item feed's commit: no tracker state changes
            return
        row = db.execute("SELECT value FROM meta WHERE key = 'tracker_rev' FOR UPDATE").fetchone()
        rev = int(row[0]) if row else 0
        if self._tracker_rev is not None and rev != self._tracker_rev:
            raise TrackerConflict(f"tracker state changed by another instance (revision {rev})")
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('tracker_rev', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(rev + 1),),
        )
        self._pending_rev = rev + 1

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
        """Persist a tracker step, its events and their outbox rows in one transaction (fenced).

        ``polled=False`` (a pushed step) leaves the source's poll record alone."""
        now = now or datetime.now(UTC)
        with self.transaction() as db:
            self._fence(db, source, check_lease=polled)
            new_events = self._insert_events(db, step.events, outbox_for, now)
            if step.source_changed:
                db.execute("DELETE FROM source_alerts WHERE source = %s", (source,))
                with db.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO source_alerts (source, region_code, kind, region, source_id, started_at, "
                        "severity, details, missing, missing_since, confirmed_over) "
                        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        [
                            (
                                source,
                                e.region.code,
                                str(e.kind),
                                e.region.model_dump_json(),
                                e.source_id,
                                e.started_at,
                                str(e.severity),
                                e.details,
                                e.missing,
                                e.missing_since,
                                e.confirmed_over,
                            )
                            for e in step.state.entries.get(source, {}).values()
                        ],
                    )
            for key in step.changed_keys:
                item = step.state.active.get(key)
                if item is None:
                    db.execute(
                        "DELETE FROM active WHERE region_code = %s AND kind = %s", (key[0], str(key[1]))
                    )
                else:
                    db.execute(
                        "INSERT INTO active (region_code, kind, region, started_at, source, start_event_id, "
                        "announced, severity) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (region_code, kind) "
                        "DO UPDATE SET region=excluded.region, started_at=excluded.started_at, "
                        "source=excluded.source, start_event_id=excluded.start_event_id, "
                        "announced=excluded.announced, severity=excluded.severity",
                        (
                            key[0],
                            str(key[1]),
                            item.region.model_dump_json(),
                            item.started_at,
                            item.source,
                            item.start_event_id,
                            item.announced,
                            str(item.severity),
                        ),
                    )
            status = step.state.sources.get(source, SourceStatus())
            self._touch_source(db, source)
            db.execute(
                "UPDATE sources SET baseline_done = %s, last_count = %s, suspect = %s WHERE name = %s",
                (status.baseline_done, status.last_count, status.suspect, source),
            )
            if polled:
                self._success(db, source, cursor or {}, now)
        self._tracker_rev = self._pending_rev
        return new_events

    def _insert_events(
        self,
        db: psycopg.Connection[Any],
        events: Iterable[AlertEvent],
        outbox_for: OutboxRouter | None,
        now: datetime,
    ) -> list[AlertEvent]:
        """Insert events idempotently under their unique id; only a new event gets outbox rows."""
        new: list[AlertEvent] = []
        for event in events:
            cur = db.execute(
                "INSERT INTO events (id, source, kind, status, region_code, started_at, ended_at, observed_at, "
                "payload) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING",
                (
                    event.id,
                    event.source,
                    str(event.kind),
                    str(event.status),
                    event.region.code if event.region else None,
                    event.started_at,
                    event.ended_at,
                    event.observed_at,
                    event.model_dump_json(),
                ),
            )
            if cur.rowcount != 1:
                continue
            new.append(event)
            if outbox_for is None:
                continue
            rows = outbox_for(event)
            topic_priority = delivery_priority(event, topic=True)  # once per event, not per row
            channel_priority = delivery_priority(event)
            if not rows:
                continue
            # COPY into a temporary table, then one INSERT … ON CONFLICT: 10,000 rows in one round trip.
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS outbox_in (event_id TEXT, subscriber TEXT, channel TEXT, "
                "channel_key TEXT, language TEXT, priority INTEGER) ON COMMIT DELETE ROWS"
            )
            with (
                db.cursor() as c,
                c.copy(
                    "COPY outbox_in (event_id, subscriber, channel, channel_key, language, priority) FROM STDIN"
                ) as copy,
            ):
                for r in rows:
                    copy.write_row(
                        (
                            r.event_id,
                            r.subscriber,
                            r.channel,
                            channel_key(r.channel),
                            r.language,
                            (topic_priority if is_topic(r.subscriber) else channel_priority),
                        )
                    )
            db.execute(
                "INSERT INTO outbox (event_id, subscriber, channel, channel_key, language, next_attempt_at, "
                "created_at, priority) SELECT event_id, subscriber, channel, channel_key, language, %s, %s, "
                "priority FROM outbox_in "
                "ORDER BY ctid ON CONFLICT (event_id, channel_key) DO NOTHING",
                (now, now),
            )
            db.execute("DELETE FROM outbox_in")
        return new

    # -- item feeds -------------------------------------------------------------------------------
    def known_notices(self, source: str) -> tuple[dict[str, str], set[str]]:
        with self.transaction() as db:
            rows = db.execute("SELECT id, hash FROM notices WHERE source = %s", (source,)).fetchall()
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
            self._fence(db, source, step=False)
            new_events = self._insert_events(db, events, outbox_for, now)
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO notices (source, id, hash, first_seen, last_seen) VALUES (%s,%s,%s,%s,%s) "
                    "ON CONFLICT (source, id) DO UPDATE SET hash = excluded.hash, last_seen = excluded.last_seen",
                    [(source, nid, digest, now, now) for nid, digest in remember.items()],
                )
            db.execute(
                "DELETE FROM notices WHERE source = %s AND last_seen < %s",
                (source, now - timedelta(days=365)),
            )
            self._touch_source(db, source)
            db.execute("UPDATE sources SET baseline_done = TRUE WHERE name = %s", (source,))
            self._success(db, source, cursor or {}, now)
        return new_events

    # -- source cursors ---------------------------------------------------------------------------
    @staticmethod
    def _touch_source(db: psycopg.Connection[Any], source: str) -> None:
        db.execute("INSERT INTO sources (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (source,))

    @staticmethod
    def _success(
        db: psycopg.Connection[Any], source: str, cursor: dict[str, str | None], now: datetime
    ) -> None:
        sets = ["last_success = %s", "last_attempt = %s", "consecutive_failures = 0", "failing_since = NULL"]
        args: list[object] = [now, now]
        for column in ("etag", "last_modified", "status_index"):
            if column in cursor:
                sets.append(f"{column} = %s")
                args.append(cursor[column])
        db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE name = %s", (*args, source))

    def record_unchanged(
        self, source: str, cursor: dict[str, str | None] | None = None, now: datetime | None = None
    ) -> None:
        now = now or datetime.now(UTC)
        with self.transaction() as db:
            self._touch_source(db, source)
            self._success(db, source, cursor or {}, now)

    def record_failure(self, source: str, error: str, now: datetime | None = None) -> SourceCursor:
        now = now or datetime.now(UTC)
        with self.transaction() as db:
            self._touch_source(db, source)
            db.execute(
                "UPDATE sources SET last_attempt = %s, last_failure = %s, last_error = %s, "
                "consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, %s) "
                "WHERE name = %s",
                (now, now, error[:500], now, source),
            )
        return self.cursor(source)

    def set_down_reported(self, source: str, value: bool) -> None:
        with self.transaction() as db:
            self._touch_source(db, source)
            db.execute("UPDATE sources SET down_reported = %s WHERE name = %s", (value, source))

    _CURSOR = (
        "SELECT name, etag, last_modified, status_index, last_success, last_attempt, last_failure, "
        "failing_since, consecutive_failures, last_error, baseline_done, down_reported FROM sources"
    )

    def cursor(self, source: str) -> SourceCursor:
        with self.transaction() as db:
            row = db.execute(self._CURSOR + " WHERE name = %s", (source,)).fetchone()
        return SourceCursor(name=source) if row is None else _cursor(row)

    def cursors(self) -> list[SourceCursor]:
        with self.transaction() as db:
            rows = db.execute(self._CURSOR + " ORDER BY name").fetchall()
        return [_cursor(r) for r in rows]

    # -- outbox -----------------------------------------------------------------------------------
    def requeue_inflight(self) -> int:
        """At start-up: this instance's own rows cut off by its last stop go back to the pool now.

        Rows of other (perhaps live) instances are theirs until their claim lease runs out.
        """
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE outbox SET state = 'pending', claimed_by = NULL, claimed_until = NULL "
                "WHERE state = 'sending' AND claimed_by = %s",
                (self.instance,),
            )
            return cur.rowcount

    def claim_due(self, now: datetime, limit: int = 500, lease: float | None = None) -> list[OutboxItem]:
        """Claim up to ``limit`` due rows for this instance under a claim lease (``FOR UPDATE SKIP LOCKED``).

        Due: pending and due by ``now``, or claimed by another instance whose claim lease
        ran out (it died mid-delivery: its rows return to the pool). This instance's own rows
        stay its own even when a database outage kept it from renewing their lease: they are
        in flight or their outcome waits to be written.
        """
        with self.transaction() as db:
            rows = db.execute(
                "WITH due AS (SELECT id FROM outbox WHERE (state = 'pending' AND next_attempt_at <= %s) "
                "OR (state = 'sending' AND claimed_until < clock_timestamp() AND claimed_by IS DISTINCT FROM %s) "
                "ORDER BY priority, id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1, claimed_by = %s, "
                "claimed_until = clock_timestamp() + make_interval(secs => %s) FROM due WHERE o.id = due.id "
                "RETURNING o.id, o.event_id, o.subscriber, o.channel, o.language, o.attempts, o.created_at, "
                "o.priority",
                (now, self.instance, limit, self.instance, self.claim_lease if lease is None else lease),
            ).fetchall()
            if not rows:
                return []
            ids = list({r[1] for r in rows})
            payloads = dict(
                db.execute("SELECT id, payload FROM events WHERE id = ANY(%s)", (ids,)).fetchall()
            )
        events = {eid: AlertEvent.model_validate_json(p) for eid, p in payloads.items()}
        rows.sort(key=lambda r: (r[7], r[0]))
        return [
            OutboxItem(
                id=r[0],
                event=events[r[1]],
                subscriber=r[2],
                channel=r[3],
                language=r[4],
                attempts=r[5],
                created_at=r[6],
                priority=r[7],
            )
            for r in rows
        ]

    def renew_claims(self, lease: float | None = None) -> int:
        """Extend this instance's claim lease on the rows it is still delivering; returns their count."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE outbox SET claimed_until = clock_timestamp() + make_interval(secs => %s) "
                "WHERE claimed_by = %s AND state = 'sending'",
                (self.claim_lease if lease is None else lease, self.instance),
            ).rowcount

    def next_due(self) -> datetime | None:
        with self.transaction() as db:
            row = db.execute(
                "SELECT LEAST((SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'), "
                "(SELECT MIN(claimed_until) FROM outbox WHERE state = 'sending' AND claimed_by <> %s))",
                (self.instance,),
            ).fetchone()
        return row[0] if row else None

    def finish(self, outcomes: Iterable[Outcome], now: datetime) -> None:
        """Record a batch of delivery outcomes (and each attempt) in one transaction.

        Only rows this instance still holds are changed: a row whose claim ran out and
        was taken by another instance belongs to that one now.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return
        with self.transaction() as db, db.cursor() as cur:
            untried = [(o.retry_at or now, o.outbox_id, self.instance) for o in outcomes if not o.counted]
            retry = [
                (o.retry_at or now, o.detail, o.outbox_id, self.instance)
                for o in outcomes
                if o.state == "pending" and o.counted
            ]
            final = [
                (o.state, None if o.state == "delivered" else o.detail, now, o.outbox_id, self.instance)
                for o in outcomes
                if o.state != "pending" and o.counted
            ]
            if untried:  # claimed, never tried: back to pending with the attempt given back
                cur.executemany(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = %s, attempts = attempts - 1, "
                    "claimed_by = NULL, claimed_until = NULL WHERE id = %s "
                    "AND (claimed_by = %s OR claimed_by IS NULL)",
                    untried,
                )
            if retry:
                cur.executemany(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = %s, last_error = %s, "
                    "claimed_by = NULL, claimed_until = NULL WHERE id = %s "
                    "AND (claimed_by = %s OR claimed_by IS NULL)",
                    retry,
                )
            if final:
                cur.executemany(
                    "UPDATE outbox SET state = %s, last_error = %s, sent_at = %s, claimed_by = NULL, "
                    "claimed_until = NULL WHERE id = %s AND (claimed_by = %s OR claimed_by IS NULL)",
                    final,
                )
            cur.executemany(
                "INSERT INTO attempts (outbox_id, attempt, at, outcome, detail) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT (outbox_id, attempt) DO UPDATE SET at = excluded.at, outcome = excluded.outcome, "
                "detail = excluded.detail",
                [(o.outbox_id, o.attempt, now, o.state, o.detail) for o in outcomes if o.counted],
            )

    def outbox_state(self, event_id: str, channel: str) -> OutboxState | None:
        with self.transaction() as db:
            row = db.execute(
                "SELECT state FROM outbox WHERE event_id = %s AND channel_key = %s",
                (event_id, channel_key(channel)),
            ).fetchone()
        return OutboxState(row[0]) if row else None

    def outbox_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], OutboxState]:
        found: dict[tuple[str, str], OutboxState] = {}
        by_event = pairs_by_event(pairs)
        if not by_event:
            return found
        with self.transaction() as db:
            for event_id, keys in by_event.items():
                for key, state in db.execute(
                    "SELECT channel_key, state FROM outbox WHERE event_id = %s AND channel_key = ANY(%s)",
                    (event_id, list(keys)),
                ).fetchall():
                    found[(event_id, keys[key])] = OutboxState(state)
        return found

    def supersede(self, event_id: str, channel: str, reason: str) -> bool:
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE outbox SET state = 'superseded', last_error = %s "
                "WHERE event_id = %s AND channel_key = %s AND state = 'pending'",
                (reason, event_id, channel_key(channel)),
            )
            return cur.rowcount == 1

    def has_event(self, event_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("SELECT 1 FROM events WHERE id = %s", (event_id,)).fetchone() is not None

    def outbox_depth(self) -> int:
        with self.transaction() as db:
            row = db.execute("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()
        return int(row[0]) if row else 0

    def outbox_counts(self) -> dict[str, int]:
        with self.transaction() as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())

    def oldest_pending(self, now: datetime | None = None) -> datetime | None:
        with self.transaction() as db:
            row = db.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'sending' "
                "OR (state = 'pending' AND next_attempt_at <= %s)",
                (now or datetime.now(UTC),),
            ).fetchone()
        return row[0] if row else None

    # -- subscribers ------------------------------------------------------------------------------
    def add_subscriber(self, record: StoredSubscriber, now: datetime | None = None) -> None:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO subscribers (name, regions, kinds, advisories, language, urls, origin, status, "
                "created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO NOTHING",
                _subscriber_row(record, now or datetime.now(UTC)),
            )
            if cur.rowcount != 1:
                raise StoreError(f"a subscriber named {record.name!r} already exists")
            _bump(db, "subscribers_rev")

    def remove_subscriber(self, name: str) -> bool:
        with self.transaction() as db:
            removed = db.execute("DELETE FROM subscribers WHERE name = %s", (name,)).rowcount == 1
            if removed:
                _bump(db, "subscribers_rev")
            return removed

    def subscribers(self, *, status: str | None = "active") -> list[StoredSubscriber]:
        query = "SELECT name, regions, kinds, advisories, language, urls, origin, status FROM subscribers"
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = %s"
            args = (status,)
        with self.transaction() as db:
            rows = db.execute(query + " ORDER BY name", args).fetchall()
        return [_subscriber(r) for r in rows]

    def subscribers_version(self) -> int:
        with self.transaction() as db:
            return _meta_int(db, "subscribers_rev")

    def set_subscriber_status(self, name: str, status: str) -> bool:
        with self.transaction() as db:
            changed = (
                db.execute("UPDATE subscribers SET status = %s WHERE name = %s", (status, name)).rowcount == 1
            )
            if changed:
                _bump(db, "subscribers_rev")
            return changed

    # -- reading ----------------------------------------------------------------------------------
    def active_alerts(self) -> list[Active]:
        # a read for display (web, status): not a view the tracker steps from, so no revision kept
        state, _rev = self._tracker_view()
        return sorted(state.active.values(), key=lambda a: (a.started_at, a.region.code))

    def events(self, since_seq: int = 0) -> list[AlertEvent]:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT payload FROM events WHERE seq > %s ORDER BY seq", (since_seq,)
            ).fetchall()
        return [AlertEvent.model_validate_json(r[0]) for r in rows]

    def events_since(self, since: datetime) -> list[AlertEvent]:
        """Events observed at or after ``since``, oldest first (the CAP feed's recent window)."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT payload FROM events WHERE observed_at >= %s ORDER BY seq", (since,)
            ).fetchall()
        return [AlertEvent.model_validate_json(r[0]) for r in rows]

    def event(self, event_id: str) -> AlertEvent | None:
        with self.transaction() as db:
            row = db.execute("SELECT payload FROM events WHERE id = %s", (event_id,)).fetchone()
        return AlertEvent.model_validate_json(row[0]) if row else None

    # -- leases (several instances) ---------------------------------------------------------------
    def acquire_source_lease(self, source: str, instance: str, ttl: float) -> bool:
        """Take or renew the poll lease of ``source`` for ``instance`` for ``ttl`` seconds.

        True while ``instance`` holds it: it was free, expired, or already ours (renewed).
        """
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO leases (name, holder, until, since) VALUES (%s, %s, "
                "clock_timestamp() + make_interval(secs => %s), clock_timestamp()) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until, "
                "since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END "
                "WHERE leases.holder = excluded.holder OR leases.until < clock_timestamp() "
                "RETURNING holder",
                (_poll_lease(source), instance, ttl),
            ).fetchone()
        return row is not None

    def release_source_lease(self, source: str, instance: str) -> None:
        """Give the lease up at a clean stop, so another instance takes over at once."""
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE name = %s AND holder = %s", (_poll_lease(source), instance))

    def leases(self) -> list[LeaseInfo]:
        """Every poll lease: who holds it, until when, and whether it is still live."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT name, holder, until, since, until > clock_timestamp() FROM leases ORDER BY name"
            ).fetchall()
        return [
            LeaseInfo(source=r[0].removeprefix("poll:"), holder=r[1], until=r[2], since=r[3], live=bool(r[4]))
            for r in rows
            if r[0].startswith("poll:")
        ]

    def claims(self) -> dict[str, int]:
        """How many outbox rows each instance has claimed right now (live claims only)."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT claimed_by, COUNT(*) FROM outbox WHERE state = 'sending' AND claimed_by IS NOT NULL "
                "AND claimed_until > clock_timestamp() GROUP BY claimed_by ORDER BY claimed_by"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def once(self, key: str, holder: str) -> bool:
        """True for the first caller of ``key`` across every instance (operator-notice dedup)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO once_keys (key, holder, at) VALUES (%s, %s, clock_timestamp()) "
                "ON CONFLICT (key) DO NOTHING",
                (key, holder),
            )
            db.execute("DELETE FROM once_keys WHERE at < clock_timestamp() - interval '7 days'")
            return cur.rowcount == 1

    # -- housekeeping -------------------------------------------------------------------------------
    def prune(self, before: datetime, batch: int = 500) -> int:
        """Delete up to ``batch`` finished rows older than ``before`` (see StateStore.prune)."""
        final = [str(s) for s in FINAL_STATES]
        with self.transaction() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM outbox WHERE state = ANY(%s) AND COALESCE(sent_at, created_at) < %s "
                    "ORDER BY id LIMIT %s",
                    (final, before, batch),
                ).fetchall()
            ]
            removed = 0
            if ids:
                db.execute("DELETE FROM attempts WHERE outbox_id = ANY(%s)", (ids,))
                removed += db.execute("DELETE FROM outbox WHERE id = ANY(%s)", (ids,)).rowcount
            room = batch - removed
            if room > 0:
                removed += db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e.observed_at < %s "
                    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id) "
                    "AND NOT EXISTS (SELECT 1 FROM active a WHERE a.region_code = e.region_code "
                    "AND a.kind = e.kind AND a.started_at = e.started_at) "
                    "AND NOT (e.status = 'ended' AND e.seq = (SELECT MAX(l.seq) FROM events l "
                    "WHERE l.status = 'ended' AND l.region_code = e.region_code AND l.kind = e.kind)) "
                    "ORDER BY e.seq LIMIT %s)",
                    (before, room),
                ).rowcount
            db.execute("DELETE FROM once_keys WHERE at < %s", (before,))
        return removed

    def size_bytes(self) -> int | None:
        """The database's size on the server, in bytes."""
        with self.transaction() as db:
            row = db.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else None

    # -- residents' self-service (shared by every instance) ---------------------------------------------
    def web_secret(self) -> str:
        """The per-install secret (CSRF, HMACs): created once, the same for every instance."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('selfservice_secret', %s) ON CONFLICT (key) DO NOTHING",
                (secrets.token_hex(32),),
            )
            row = db.execute("SELECT value FROM meta WHERE key = 'selfservice_secret'").fetchone()
        assert row is not None
        return str(row[0])

    def web_purge(self, now: datetime, rate_before: datetime) -> int:
        with self.transaction() as db:
            names = [
                r[0]
                for r in db.execute(
                    "DELETE FROM web_subscriptions w USING subscribers s WHERE s.name = w.subscriber "
                    "AND s.status = 'pending' AND w.expires_at IS NOT NULL AND w.expires_at < %s "
                    "RETURNING w.subscriber",
                    (now,),
                ).fetchall()
            ]
            if names:
                db.execute("DELETE FROM subscribers WHERE name = ANY(%s)", (names,))
                _bump(db, "subscribers_rev")
            db.execute("DELETE FROM web_rate WHERE at < %s", (rate_before,))
        return len(names)

    def web_count_pending(self, client: str | None = None) -> int:
        """Pending web subscriptions (of one client, when given)."""
        sql = (
            "SELECT COUNT(*) FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
            "WHERE s.status = 'pending'"
        )
        with self.transaction() as db:
            if client is None:
                row = db.execute(sql).fetchone()
            else:
                row = db.execute(sql + " AND w.client = %s", (client,)).fetchone()
        return int(row[0]) if row else 0

    def web_rate_count(self, bucket: str, key: str, since: datetime) -> int:
        with self.transaction() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM web_rate WHERE bucket = %s AND key = %s AND at >= %s",
                (bucket, key, since),
            ).fetchone()
        return int(row[0]) if row else 0

    def web_rate_hit(self, bucket: str, key: str, now: datetime) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO web_rate (bucket, key, at) VALUES (%s, %s, %s)", (bucket, key, now))

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
        with self.transaction() as db:
            row = _subscriber_row(record, now)
            db.execute(
                "INSERT INTO subscribers (name, regions, kinds, advisories, language, urls, origin, status, "
                "created_at) VALUES (%s,%s,%s,%s,%s,%s,'web','pending',%s)",
                (*row[:6], now),
            )
            db.execute(
                "INSERT INTO web_subscriptions (id, subscriber, manage_token, code_hash, attempts, expires_at, "
                "channel_kind, destination, destination_masked, client, created_at, updated_at) "
                "VALUES (%s,%s,%s,%s,0,%s,%s,%s,%s,%s,%s,%s)",
                (
                    sub_id,
                    record.name,
                    manage_token,
                    code_hash,
                    expires_at,
                    channel_kind,
                    destination,
                    destination_masked,
                    client,
                    now,
                    now,
                ),
            )
            _bump(db, "subscribers_rev")

    def _web_one(self, where: str, arg: str) -> WebSubscription | None:
        with self.transaction() as db:
            row = db.execute(_WEB_SELECT + where, (arg,)).fetchone()
        return _web_row(row) if row else None

    def web_get(self, sub_id: str) -> WebSubscription | None:
        return self._web_one(" WHERE w.id = %s", sub_id)

    def web_by_token(self, token: str) -> WebSubscription | None:
        return self._web_one(" WHERE w.manage_token = %s", token)

    def web_all(self) -> list[WebSubscription]:
        with self.transaction() as db:
            rows = db.execute(_WEB_SELECT + " ORDER BY w.created_at, w.id").fetchall()
        return [_web_row(r) for r in rows]

    def web_wrong_code(self, sub_id: str) -> int:
        with self.transaction() as db:
            row = db.execute(
                "UPDATE web_subscriptions SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                (sub_id,),
            ).fetchone()
        return int(row[0]) if row else 0

    def web_activate(self, sub_id: str, now: datetime) -> bool:
        with self.transaction() as db:
            row = db.execute(
                "UPDATE web_subscriptions SET code_hash = NULL, expires_at = NULL, confirmed_at = %s, "
                "updated_at = %s WHERE id = %s RETURNING subscriber",
                (now, now, sub_id),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE subscribers SET status = 'active' WHERE name = %s AND status = 'pending'", (row[0],)
            )
            _bump(db, "subscribers_rev")
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
        with self.transaction() as db:
            row = db.execute(
                "UPDATE web_subscriptions SET updated_at = %s WHERE id = %s RETURNING subscriber",
                (now, sub_id),
            ).fetchone()
            if row is None:
                return
            db.execute(
                "UPDATE subscribers SET regions = COALESCE(%s, regions), kinds = COALESCE(%s, kinds), "
                "language = COALESCE(%s, language) WHERE name = %s",
                (
                    None if regions is None else json.dumps(regions),
                    None if kinds is None else json.dumps(kinds),
                    language,
                    row[0],
                ),
            )
            _bump(db, "subscribers_rev")

    def web_delete(self, sub_id: str) -> bool:
        with self.transaction() as db:
            row = db.execute(
                "DELETE FROM web_subscriptions WHERE id = %s RETURNING subscriber", (sub_id,)
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM subscribers WHERE name = %s", (row[0],))
            _bump(db, "subscribers_rev")
        return True

    def web_manage_token_for(self, subscriber: str) -> str | None:
        with self.transaction() as db:
            row = db.execute(
                "SELECT w.manage_token FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
                "WHERE w.subscriber = %s AND s.status = 'active'",
                (subscriber,),
            ).fetchone()
        return str(row[0]) if row else None

    def web_active_tokens(self) -> dict[str, str]:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT w.subscriber, w.manage_token FROM web_subscriptions w "
                "JOIN subscribers s ON s.name = w.subscriber WHERE s.status = 'active'"
            ).fetchall()
        return {r[0]: r[1] for r in rows}


_WEB_SELECT = (
    "SELECT w.id, w.subscriber, w.manage_token, w.code_hash, w.attempts, w.expires_at, w.channel_kind, "
    "w.destination, w.destination_masked, w.client, w.created_at, w.confirmed_at, s.status, s.regions, "
    "s.kinds, s.language, s.urls FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber"
)


def _web_row(r: Any) -> WebSubscription:
    return WebSubscription(
        id=r[0],
        subscriber=r[1],
        manage_token=r[2],
        code_hash=r[3],
        attempts=r[4],
        expires_at=r[5],
        channel_kind=r[6],
        destination=r[7],
        destination_masked=r[8],
        client=r[9],
        created_at=r[10],
        confirmed_at=r[11],
        status=r[12],
        regions=tuple(json.loads(r[13])),
        kinds=tuple(json.loads(r[14])),
        language=r[15],
        urls=tuple(json.loads(r[16])),
    )


# ------------------------------------------------------------------------------------------------
# helpers


def _poll_lease(source: str) -> str:
    return f"poll:{source}"


def _meta_int(db: psycopg.Connection[Any], key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
    return int(row[0]) if row else 0


def _bump(db: psycopg.Connection[Any], key: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (%s, '1') "
        "ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text",
        (key,),
    )


def _cursor(row: Any) -> SourceCursor:
    return SourceCursor(
        name=row[0],
        etag=row[1],
        last_modified=row[2],
        status_index=row[3],
        last_success=row[4],
        last_attempt=row[5],
        last_failure=row[6],
        failing_since=row[7],
        consecutive_failures=row[8],
        last_error=row[9],
        baseline_done=bool(row[10]),
        down_reported=bool(row[11]),
    )


def _subscriber_row(record: StoredSubscriber, now: datetime) -> tuple[Any, ...]:
    return (
        record.name,
        json.dumps(list(record.regions)),
        json.dumps(list(record.kinds)),
        json.dumps(list(record.advisories)),
        record.language,
        json.dumps(list(record.urls)),
        record.origin,
        record.status,
        now,
    )


def _subscriber(r: Any) -> StoredSubscriber:
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


def _pool_reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return _one_line(cause or exc)
