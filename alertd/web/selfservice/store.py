"""The self-service view of the store: a thin adapter over :class:`alertd.store.base.StateStore`.

A self-service subscriber is an ordinary stored subscriber (origin ``web``) so
routing and delivery treat it exactly like a configured one; the web-only
columns live beside it. The SQL for all of it is in the store backend
(``web_*`` methods); this class keeps the names the self-service code calls,
caches the per-install secret and derives the HMACs from it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from alertd.store.base import StateStore, StoredSubscriber, WebSubscription

__all__ = ["WebStore", "WebSubscription"]

#: Rate-limit records older than this are dropped by :meth:`WebStore.purge`.
RATE_KEEP = timedelta(days=2)


class WebStore:
    """Self-service queries over a :class:`~alertd.store.base.StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._secret: bytes | None = None

    # -- the per-install secret (CSRF tokens, code and destination HMACs) ---------------------------
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = bytes.fromhex(self.store.web_secret())
        return self._secret

    def digest(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    # -- housekeeping ----------------------------------------------------------------------------------
    def purge(self, now: datetime) -> int:
        """Drop expired pending subscriptions and rate records older than two days."""
        return self.store.web_purge(now, now - RATE_KEEP)

    def count_pending(self, client: str | None = None) -> int:
        """Unconfirmed subscriptions: all of them, or those one client (prefix) started."""
        return self.store.web_count_pending(client)

    # -- rate limits ---------------------------------------------------------------------------------
    def rate_count(self, bucket: str, key: str, since: datetime) -> int:
        return self.store.web_rate_count(bucket, key, since)

    def rate_hit(self, bucket: str, key: str, now: datetime) -> None:
        self.store.web_rate_hit(bucket, key, now)

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
        self.store.web_create(
            sub_id=sub_id,
            record=record,
            manage_token=manage_token,
            code_hash=code_hash,
            expires_at=expires_at,
            channel_kind=channel_kind,
            destination=destination,
            destination_masked=destination_masked,
            client=client,
            now=now,
        )

    def get(self, sub_id: str) -> WebSubscription | None:
        return self.store.web_get(sub_id)

    def by_token(self, token: str) -> WebSubscription | None:
        return self.store.web_by_token(token)

    def all(self) -> list[WebSubscription]:
        return self.store.web_all()

    def wrong_code(self, sub_id: str) -> int:
        """Count a wrong code; returns the attempts so far."""
        return self.store.web_wrong_code(sub_id)

    def activate(self, sub_id: str, now: datetime) -> bool:
        return self.store.web_activate(sub_id, now)

    def update(
        self,
        sub_id: str,
        *,
        regions: list[str] | None,
        kinds: list[str] | None,
        language: str | None,
        now: datetime,
    ) -> None:
        self.store.web_update(sub_id, regions=regions, kinds=kinds, language=language, now=now)

    def delete(self, sub_id: str) -> bool:
        return self.store.web_delete(sub_id)

    def manage_token_for(self, subscriber: str) -> str | None:
        """The management token of an active web subscriber (for the message footer), else None."""
        return self.store.web_manage_token_for(subscriber)

    def active_tokens(self) -> dict[str, str]:
        """subscriber name -> management token, for every active web subscriber."""
        return self.store.web_active_tokens()
