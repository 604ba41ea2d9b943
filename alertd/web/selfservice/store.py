"""The self-service side of the store: SQL over ``web_subscriptions``, ``web_rate`` and ``subscribers``.

A self-service subscriber is an ordinary row of ``subscribers`` (origin ``web``)
so routing and delivery treat it exactly like a configured one; this module keeps
the web-only columns beside it and changes both in one transaction, bumping the
subscribers revision so the daemon's LiveRouter re-routes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alertd.store.sqlite import Store, StoredSubscriber

__all__ = ["WebStore", "WebSubscription"]

_SECRET_KEY = "selfservice_secret"


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class WebSubscription:
    id: str
    subscriber: str
    manage_token: str
    code_hash: str | None
    attempts: int
    expires_at: datetime | None
    channel_kind: str
    destination: str  # HMAC of the normalized destination
    destination_masked: str
    client: str
    created_at: datetime
    confirmed_at: datetime | None
    status: str
    regions: tuple[str, ...]
    kinds: tuple[str, ...]
    language: str | None
    urls: tuple[str, ...]


_SELECT = (
    "SELECT w.id, w.subscriber, w.manage_token, w.code_hash, w.attempts, w.expires_at, w.channel_kind, "
    "w.destination, w.destination_masked, w.client, w.created_at, w.confirmed_at, s.status, s.regions, "
    "s.kinds, s.language, s.urls FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber"
)


def _row(r: tuple) -> WebSubscription:
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
        created_at=_dt(r[10]),  # type: ignore[arg-type]
        confirmed_at=_dt(r[11]),
        status=r[12],
        regions=tuple(json.loads(r[13])),
        kinds=tuple(json.loads(r[14])),
        language=r[15],
        urls=tuple(json.loads(r[16])),
    )


class WebStore:
    """Self-service queries over a :class:`alertd.store.sqlite.Store` (same connection, same loop thread)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._secret: bytes | None = None

    # -- the per-install secret (CSRF tokens, code and destination HMACs) ---------------------------
    def secret(self) -> bytes:
        if self._secret is None:
            with self.store.transaction() as db:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (_SECRET_KEY,)).fetchone()
                if row is None:
                    value = secrets.token_hex(32)
                    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_SECRET_KEY, value))
                else:
                    value = row[0]
            self._secret = bytes.fromhex(value)
        return self._secret

    def digest(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    # -- housekeeping ----------------------------------------------------------------------------------
    def purge(self, now: datetime) -> int:
        """Drop expired pending subscriptions and rate records older than two days."""
        with self.store.transaction() as db:
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
                Store.subscribers_changed(db)
            db.execute("DELETE FROM web_rate WHERE at < ?", (_ts(now - timedelta(days=2)),))
        return len(names)

    def count_pending(self, client: str | None = None) -> int:
        """Unconfirmed subscriptions: all of them, or those one client (prefix) started."""
        sql = (
            "SELECT COUNT(*) FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
            "WHERE s.status = 'pending'"
        )
        with self.store.transaction() as db:
            if client is None:
                row = db.execute(sql).fetchone()
            else:
                row = db.execute(sql + " AND w.client = ?", (client,)).fetchone()
        return int(row[0])

    # -- rate limits ---------------------------------------------------------------------------------
    def rate_count(self, bucket: str, key: str, since: datetime) -> int:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM web_rate WHERE bucket = ? AND key = ? AND at >= ?",
                (bucket, key, _ts(since)),
            ).fetchone()
        return int(row[0])

    def rate_hit(self, bucket: str, key: str, now: datetime) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO web_rate (bucket, key, at) VALUES (?, ?, ?)", (bucket, key, _ts(now)))

    # -- lifecycle -------------------------------------------------------------------------------------
    def create(
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
        with self.store.transaction() as db:
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
                    "web",
                    "pending",
                    _ts(now),
                ),
            )
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
            Store.subscribers_changed(db)

    def get(self, sub_id: str) -> WebSubscription | None:
        with self.store.transaction() as db:
            row = db.execute(_SELECT + " WHERE w.id = ?", (sub_id,)).fetchone()
        return _row(row) if row else None

    def by_token(self, token: str) -> WebSubscription | None:
        with self.store.transaction() as db:
            row = db.execute(_SELECT + " WHERE w.manage_token = ?", (token,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[WebSubscription]:
        with self.store.transaction() as db:
            rows = db.execute(_SELECT + " ORDER BY w.created_at").fetchall()
        return [_row(r) for r in rows]

    def wrong_code(self, sub_id: str) -> int:
        """Count a wrong code; returns the attempts so far."""
        with self.store.transaction() as db:
            db.execute("UPDATE web_subscriptions SET attempts = attempts + 1 WHERE id = ?", (sub_id,))
            row = db.execute("SELECT attempts FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
        return int(row[0]) if row else 0

    def activate(self, sub_id: str, now: datetime) -> bool:
        with self.store.transaction() as db:
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
            Store.subscribers_changed(db)
        return True

    def update(
        self,
        sub_id: str,
        *,
        regions: list[str] | None,
        kinds: list[str] | None,
        language: str | None,
        now: datetime,
    ) -> None:
        with self.store.transaction() as db:
            row = db.execute("SELECT subscriber FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return
            for column, value in (
                ("regions", None if regions is None else json.dumps(regions)),
                ("kinds", None if kinds is None else json.dumps(kinds)),
                ("language", language),
            ):
                if value is not None:
                    db.execute(f"UPDATE subscribers SET {column} = ? WHERE name = ?", (value, row[0]))
            db.execute("UPDATE web_subscriptions SET updated_at = ? WHERE id = ?", (_ts(now), sub_id))
            Store.subscribers_changed(db)

    def delete(self, sub_id: str) -> bool:
        with self.store.transaction() as db:
            row = db.execute("SELECT subscriber FROM web_subscriptions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM web_subscriptions WHERE id = ?", (sub_id,))
            db.execute("DELETE FROM subscribers WHERE name = ?", (row[0],))
            Store.subscribers_changed(db)
        return True

    def manage_token_for(self, subscriber: str) -> str | None:
        """The management token of an active web subscriber (for the message footer), else None."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT w.manage_token FROM web_subscriptions w JOIN subscribers s ON s.name = w.subscriber "
                "WHERE w.subscriber = ? AND s.status = 'active'",
                (subscriber,),
            ).fetchone()
        return row[0] if row else None

    def active_tokens(self) -> dict[str, str]:
        """subscriber name -> management token, for every active web subscriber."""
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT w.subscriber, w.manage_token FROM web_subscriptions w "
                "JOIN subscribers s ON s.name = w.subscriber WHERE s.status = 'active'"
            ).fetchall()
        return {r[0]: r[1] for r in rows}
