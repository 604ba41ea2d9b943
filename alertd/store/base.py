"""The store seam: the rows alertd keeps and the one protocol every backend implements.

Everything the daemon, the dispatcher, the web endpoints, the CLI and the
residents' self-service need from persistent state is a method of
:class:`StateStore`; nothing else of a backend (a connection, a cursor, SQL)
leaves its module. The rows are plain frozen dataclasses, so the pure core
(``alertd.core.route``) can build them without importing a backend.

A backend passes ``tests/store/test_contract.py`` unchanged; that suite is
the definition of the behaviour below where a docstring is not precise enough.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from alertd.core.model import AlertEvent
from alertd.core.tracker import Active, StepResult, TrackerState

__all__ = [
    "LeaseInfo",
    "OutboxItem",
    "OutboxRouter",
    "OutboxRow",
    "OutboxState",
    "Outcome",
    "SourceCursor",
    "StateStore",
    "StoredSubscriber",
    "WebSubscription",
    "channel_key",
    "pairs_by_event",
]


class OutboxState(StrEnum):
    """Where one notice for one channel stands.

    ``pending`` → ``sending`` (claimed) → ``delivered`` | ``pending`` (retry later)
    | ``dead`` (given up) | ``superseded`` (a pending start folded into its end).
    """

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"


#: States after which a row never changes again (what retention may prune).
FINAL_STATES = frozenset({OutboxState.DELIVERED, OutboxState.DEAD, OutboxState.SUPERSEDED})


def pairs_by_event(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """(event id, channel URL) pairs grouped by event, as channel key -> URL (for batched outbox reads)."""
    by_event: dict[str, dict[str, str]] = {}
    for event_id, channel in pairs:
        by_event.setdefault(event_id, {})[channel_key(channel)] = channel
    return by_event


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
    """One notice one channel must receive (what routing produces for a new event)."""

    event_id: str
    subscriber: str
    channel: str
    language: str


@dataclass(frozen=True)
class OutboxItem:
    """A claimed outbox row with its event, ready to render and send."""

    id: int
    event: AlertEvent
    subscriber: str
    channel: str
    language: str
    attempts: int
    created_at: datetime
    #: :func:`alertd.core.priority.delivery_priority` of the row; claims take the lowest first.
    priority: int = 3


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt.

    ``state`` is ``delivered``, ``pending`` (retry at ``retry_at``), ``dead`` or ``superseded``.
    ``counted=False``: the row was claimed but never tried (its service host was
    paused or over its rate, or the store could not plan it); it goes back to
    ``pending`` at ``retry_at`` with its attempt given back and no attempt recorded.
    """

    outbox_id: int
    attempt: int
    state: OutboxState | str
    detail: str | None = None
    retry_at: datetime | None = None
    counted: bool = True


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


@dataclass(frozen=True)
class WebSubscription:
    """A self-service subscription: the web-only columns joined with its subscriber row."""

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


@dataclass(frozen=True)
class LeaseInfo:
    """One source's poll lease in a shared store, as ``alertd status``, /healthz and /metrics show it."""

    source: str
    holder: str
    until: datetime
    since: datetime
    live: bool


#: Turns an event into the outbox rows that must carry it (routing, run inside the store's transaction).
OutboxRouter = Callable[[AlertEvent], list[OutboxRow]]


class StateStore(Protocol):
    """What alertd asks of persistent state. One instance per process.

    Every method either completes or raises :class:`alertd.errors.StoreError`
    (never a driver exception); a write that raised changed nothing. Methods
    are blocking: async code calls them through :class:`alertd.store.runner.StoreRunner`.
    Times are timezone-aware UTC datetimes; ``now`` defaults to the wall clock.
    """

    #: Where the state lives, safe to log (a path; a URL without its password).
    location: str

    def close(self) -> None: ...

    # -- tracker (the daemon's poll path) --------------------------------------------------------
    def load_tracker_state(self) -> TrackerState: ...

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

        Returns the events that were new: an event id already stored is a replay and
        produces no outbox rows. Also records the poll as a success (cursor fields given),
        unless ``polled`` is False: a pushed step (alertd.core.push) is not a poll, and must
        not make a failing source look healthy.
        """
        ...

    def known_notices(self, source: str) -> tuple[dict[str, str], set[str]]:
        """An item feed's remembered items: ``({item id: content hash}, {content hashes})``."""
        ...

    def commit_notices(
        self,
        source: str,
        events: list[AlertEvent],
        remember: dict[str, str],
        outbox_for: OutboxRouter | None = None,
        cursor: dict[str, str | None] | None = None,
        now: datetime | None = None,
    ) -> list[AlertEvent]:
        """Item-feed counterpart of :meth:`commit_step`: events, outbox rows and remembered items."""
        ...

    # -- source cursors ----------------------------------------------------------------------------
    def record_unchanged(
        self, source: str, cursor: dict[str, str | None] | None = None, now: datetime | None = None
    ) -> None:
        """A good poll that said "nothing changed" (304, same status index)."""
        ...

    def record_failure(self, source: str, error: str, now: datetime | None = None) -> SourceCursor:
        """Count a failed poll; returns the cursor after the update."""
        ...

    def set_down_reported(self, source: str, value: bool) -> None: ...
    def cursor(self, source: str) -> SourceCursor: ...
    def cursors(self) -> list[SourceCursor]: ...

    # -- outbox (the dispatcher) ---------------------------------------------------------------------
    def requeue_inflight(self) -> int:
        """At start-up: rows left ``sending`` by a stop go back to ``pending``; returns how many."""
        ...

    def claim_due(self, now: datetime, limit: int = 500) -> list[OutboxItem]:
        """Take up to ``limit`` due ``pending`` rows, oldest first, marking them ``sending``."""
        ...

    def next_due(self) -> datetime | None: ...

    def finish(self, outcomes: Iterable[Outcome], now: datetime) -> None:
        """Record a batch of delivery outcomes (and each attempt) in one transaction."""
        ...

    def outbox_state(self, event_id: str, channel: str) -> OutboxState | None:
        """The delivery state of one event on one channel, or None if it has no row."""
        ...

    def outbox_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], OutboxState]:
        """:meth:`outbox_state` for many (event id, channel URL) pairs at once; pairs without a row are absent.

        The dispatcher plans a whole claim with it (an end fanned out to 10,000
        channels asks about 10,000 starts), so it must be batched, not a loop.
        """
        ...

    def supersede(self, event_id: str, channel: str, reason: str) -> bool:
        """Retire a pending start that an end will now carry; False if it is no longer pending."""
        ...

    def has_event(self, event_id: str) -> bool: ...
    def event(self, event_id: str) -> AlertEvent | None: ...
    def events(self, since_seq: int = 0) -> list[AlertEvent]:
        """Every stored event after ``since_seq``, in the order they were stored."""
        ...

    def events_since(self, since: datetime) -> list[AlertEvent]:
        """Events observed at or after ``since``, oldest first (the CAP feed's recent window)."""
        ...

    def outbox_depth(self) -> int:
        """Rows still to deliver (``pending`` + ``sending``)."""
        ...

    def outbox_counts(self) -> dict[str, int]: ...
    def oldest_pending(self, now: datetime | None = None) -> datetime | None:
        """Since when the longest-waiting *due* delivery has been due (rows in backoff are not lag)."""
        ...

    def active_alerts(self) -> list[Active]: ...

    # -- housekeeping ----------------------------------------------------------------------------------
    def prune(self, before: datetime, batch: int = 500) -> int:
        """Delete at most ``batch`` rows that ended before ``before`` and nothing depends on:
        final outbox rows with their attempts, and ended alerts' events that no kept row
        needs. Returns how many rows went (0: nothing left to prune). Kept: active alerts,
        pending/sending rows, the latest ``ended`` event per (region, kind) (dedup)."""
        ...

    def size_bytes(self) -> int | None:
        """How much space the state takes (for ``alertd status``), or None if unknown."""
        ...

    # -- stored subscribers (CLI and self-service) ---------------------------------------------------
    def add_subscriber(self, record: StoredSubscriber, now: datetime | None = None) -> None:
        """Raises StoreError if the name is taken."""
        ...

    def remove_subscriber(self, name: str) -> bool: ...
    def subscribers(self, *, status: str | None = "active") -> list[StoredSubscriber]: ...
    def subscribers_version(self) -> int:
        """A counter bumped by every change to stored subscribers, by any process."""
        ...

    def set_subscriber_status(self, name: str, status: str) -> bool: ...

    # -- residents' self-service (alertd.web.selfservice) ----------------------------------------------
    def web_secret(self) -> str:
        """The per-install secret (hex), created on first use and kept."""
        ...

    def web_purge(self, now: datetime, rate_before: datetime) -> int:
        """Drop expired pending web subscriptions (with their subscriber) and rate hits before
        ``rate_before``; returns how many subscriptions went."""
        ...

    def web_count_pending(self, client: str | None = None) -> int:
        """Unconfirmed web subscriptions: all of them, or those ``client`` started."""
        ...

    def web_rate_count(self, bucket: str, key: str, since: datetime) -> int: ...
    def web_rate_hit(self, bucket: str, key: str, now: datetime) -> None: ...
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
        """A pending subscriber (origin ``web``) and its web row, in one transaction."""
        ...

    def web_get(self, sub_id: str) -> WebSubscription | None: ...
    def web_by_token(self, token: str) -> WebSubscription | None: ...
    def web_all(self) -> list[WebSubscription]:
        """Every web subscription, oldest first."""
        ...

    def web_wrong_code(self, sub_id: str) -> int:
        """Count a wrong confirmation code; returns the attempts so far (0 if unknown)."""
        ...

    def web_activate(self, sub_id: str, now: datetime) -> bool: ...
    def web_update(
        self,
        sub_id: str,
        *,
        regions: list[str] | None,
        kinds: list[str] | None,
        language: str | None,
        now: datetime,
    ) -> None:
        """Change what a web subscriber hears (None: leave as is)."""
        ...

    def web_delete(self, sub_id: str) -> bool: ...
    def web_manage_token_for(self, subscriber: str) -> str | None:
        """The management token of an *active* web subscriber, else None."""
        ...

    def web_active_tokens(self) -> dict[str, str]:
        """subscriber name → management token, for every active web subscriber."""
        ...

    # -- several instances on one shared store (alertd.store.postgres) ------------------------------
    # An embedded store (SQLite) has one daemon per file: ``shared`` is False, every lease is
    # its own, nothing is stale, and there is nobody to share a once-only key with.

    #: True when several instances may share this store (leases and claims matter).
    shared: bool

    def tracker_stale(self) -> bool:
        """Did another instance step the tracker since this process last loaded or committed a view?"""
        ...

    def acquire_source_lease(self, source: str, instance: str, ttl: float) -> bool:
        """Take or renew ``source``'s poll lease for ``ttl`` seconds; True while ``instance`` holds it."""
        ...

    def release_source_lease(self, source: str, instance: str) -> None: ...

    def leases(self) -> list[LeaseInfo]:
        """Every poll lease: who holds it, until when (empty on an embedded store)."""
        ...

    def renew_claims(self, lease: float | None = None) -> int:
        """Extend this instance's claim on the outbox rows it is delivering; returns how many."""
        ...

    def claims(self) -> dict[str, int]:
        """Instance → outbox rows it has claimed right now (empty on an embedded store)."""
        ...

    def once(self, key: str, holder: str) -> bool:
        """True for the first caller of ``key`` across every instance (operator-notice dedup)."""
        ...
