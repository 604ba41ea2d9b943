"""The daemon: schedules polls, feeds the tracker, commits to the store, wakes the dispatcher.

This is the imperative shell. Each poll is: fetch+parse (may fail: then nothing
changes but the source's failure count) → pure tracker step → one store
transaction (state, events, outbox rows) → log lines → wake delivery.

Every store call runs on the store thread (:class:`alertd.store.runner.StoreRunner`),
never on the event loop. A poll that changes nothing (the usual 304) costs no store
round trip on an embedded store: the source's cursor is kept in memory and the store is
written only when something changes, plus the time of the last good poll every
:data:`HEALTH_PERSIST_EVERY` seconds (``/healthz`` reads it live, see :class:`LiveHealth`). A store write that fails (disk full, lock held) is a
condition, not a crash: the step is not applied in memory either (the next poll
diffs again and mints the same event ids), the source backs off, and
:class:`~alertd.store.runner.StoreHealth` logs the outage once, tells operators
and turns ``/healthz`` red until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alertd.config import Settings, SourceConfig
from alertd.core.backoff import backoff_delay
from alertd.core.clock import SYSTEM_CLOCK, Clock
from alertd.core.model import AlertEvent, EventStatus, Snapshot
from alertd.core.push import apply_push
from alertd.core.regions import RegionRegistry
from alertd.core.tracker import (
    StepResult,
    TrackerPolicy,
    apply_snapshot,
    diff_notices,
    shift_clock,
    unchanged_snapshot,
)
from alertd.errors import FetchError, LeaseLost, ParseError, StoreError, TrackerConflict
from alertd.logs import get_logger
from alertd.run.clock import ClockWatch, MonotonicInterval
from alertd.run.fetch import make_client
from alertd.run.poll import MessageCache, PollResult, poll_source, refresh_registry, spec_of
from alertd.sources.spec import FeedShape
from alertd.store.base import OutboxRouter, SourceCursor, StateStore
from alertd.store.runner import StoreHealth, StoreRunner

log = get_logger(__name__)

#: Longest wait between polls of a failing source: a feed back after an outage is heard within this.
MAX_POLL_BACKOFF = 60.0
#: seconds at least between two push-triggered polls of one source
PUSH_POLL_GAP = 1.0
#: Item keys remembered per source for "logged once" notes (refused-but-fine items).
_TOLD_LIMIT = 10_000
#: A good poll that changed nothing writes its time to an embedded store at most this often
#: (capped at a quarter of the source's allowance). Every other write (a change, a failure,
#: a recovery, new ETags) still goes out at once. Only ``alertd status``, run as another
#: process, sees the stored time; this process's ``/healthz`` and ``/metrics`` see every poll.
HEALTH_PERSIST_EVERY = 30.0


#: A task run beside the polls: given the stop event, returns what to await (dispatcher, HTTP server…).
Background = Callable[[asyncio.Event], Awaitable[object]]


def poll_backoff_cap(interval: float) -> float:
    """``min(60 s, 6 × interval)``: back off, but never so long that a returning feed goes unheard."""
    return min(MAX_POLL_BACKOFF, 6 * interval)


class Hooks(Protocol):
    """What the daemon tells the rest of the process (metrics, operator notices, delivery)."""

    def poll_ok(self, source: str, received_wall: float) -> None: ...
    def poll_failed(self, source: str, error: str) -> None: ...
    def recovered(self, source: str, down_seconds: float) -> None: ...
    def events(self, events: list[AlertEvent], received_wall: float) -> None: ...


class NoHooks:
    def poll_ok(self, source: str, received_wall: float) -> None:
        pass

    def poll_failed(self, source: str, error: str) -> None:
        pass

    def recovered(self, source: str, down_seconds: float) -> None:
        pass

    def events(self, events: list[AlertEvent], received_wall: float) -> None:
        pass


def describe_event(event: AlertEvent) -> tuple[str, dict[str, object]]:
    """The log line for an event: what happened, and its facts as fields (``event`` is its id)."""
    fields: dict[str, object] = {"kind": str(event.kind)}
    if event.region is not None:
        message = {
            EventStatus.STARTED: "alert started",
            EventStatus.ENDED: "alert ended",
            EventStatus.UPDATED: "alert updated",
        }.get(event.status, f"alert {event.status}")
        fields.update(region=event.region.code, place=event.region.name(), source=event.source)
        if event.status == EventStatus.ENDED and event.started_at and event.ended_at:
            fields["duration"] = f"{int((event.ended_at - event.started_at).total_seconds() // 60)}m"
    else:
        message = f"notice {event.status}"
        fields.update(
            source=event.source, title=event.headline[:80], country=event.country, level=event.level
        )
    fields.update(event=event.id, status=str(event.status))
    return message, fields


class LiveHealth:
    """What ``/healthz`` reads: the store's cursors, with this process's newest good polls.

    A poll that changes nothing is not written to an embedded store every time (see
    :data:`HEALTH_PERSIST_EVERY`), so the stored ``last_success`` may be a few seconds
    behind; the daemon's own record of its last good poll of each source is exact.
    Failures are always written at once, so everything else comes from the store.
    """

    def __init__(self, store: StateStore, daemon: Daemon) -> None:
        self._store = store
        self._daemon = daemon

    def cursors(self) -> list[SourceCursor]:
        return [self._live(c) for c in self._store.cursors()]

    def _live(self, cursor: SourceCursor) -> SourceCursor:
        seen = self._daemon.succeeded_at.get(cursor.name)
        if seen is None or (cursor.last_success is not None and cursor.last_success >= seen):
            return cursor  # never polled by this process, or the store knows a later poll
        return replace(cursor, last_success=seen, last_attempt=max(seen, cursor.last_attempt or seen))

    def oldest_pending(self) -> datetime | None:
        return self._store.oldest_pending()


class Daemon:
    """One process's polling loop. Configuration and collaborators are passed in, nothing global."""

    def __init__(
        self,
        settings: Settings,
        registry: RegionRegistry,
        store: StateStore,
        *,
        router: OutboxRouter | None = None,
        hooks: Hooks | None = None,
        client: httpx.AsyncClient | None = None,
        on_commit: Callable[[], None] | None = None,
        runner: StoreRunner | None = None,
        store_health: StoreHealth | None = None,
        clock: Clock | None = None,
    ) -> None:
        #: every "now" of the poll path (event stamps, backoff, allowances, the end hold)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.settings = settings
        self.registry = registry
        self.store = store
        self.runner = runner or StoreRunner()
        self._own_runner = runner is None
        self.store_health = store_health or StoreHealth()
        self._store_failures: dict[str, int] = {}  # per source: polls in a row whose store write failed
        self.router = router
        self.hooks = hooks or NoHooks()
        self.on_commit = on_commit or (lambda: None)
        self.policy = TrackerPolicy(
            announce_existing=settings.tracker.announce_existing,
            end_confirmations=settings.tracker.end_confirmations,
            suspicious_drop=settings.tracker.suspicious_drop,
        )
        self.state = store.load_tracker_state()
        #: Whether this instance may poll a source now. Always on an embedded store; with several
        #: instances on a shared one, only while it holds the source's poll lease (run/leases.py).
        self.may_poll: Callable[[str], bool] = lambda name: True
        self._client = client
        self._own_client = client is None
        self._not_before: dict[str, float] = {}  # monotonic time before which a backing-off source is skipped
        self._rng = random.Random()
        self._inflight: set[asyncio.Task[object]] = set()
        self._refresh_due: dict[str, float] = {}  # monotonic time of the next registry refresh per source
        self._rate_limited: set[str] = set()  # sources backing off on the upstream's own request
        self._messages: dict[str, MessageCache] = {}  # linked messages of thin indexes, per source
        self._told: dict[str, set[str]] = {}  # items already logged once at info, per source
        self.sources = [s for s in settings.sources if s.enabled]
        self._scheduler: AsyncIOScheduler | None = None
        self._locks: dict[str, asyncio.Lock] = {}  # one poll (or push) of a source at a time
        self._wanted: set[str] = set()  # sources with a push-triggered poll waiting to run
        self._pushed_poll_at: dict[str, float] = {}  # monotonic start of the last push-triggered poll
        # Embedded store only (one daemon per file, so nobody else writes these rows): each source's
        # cursor as last read, dropped on every write but the skipped ones (see _cursor, _may_skip).
        self._cursors: dict[str, SourceCursor] = {}
        self._generation: dict[str, int] = {}  # per source: bumped by every write, so no stale read is kept
        self._persisted_at: dict[str, float] = {}  # monotonic time of the last poll record written
        #: this process's last good poll per source (what /healthz shows, see LiveHealth)
        self.succeeded_at: dict[str, datetime] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client()
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._own_runner:
            await asyncio.to_thread(self.runner.close)

    def next_poll_hint(self, name: str) -> float | None:
        return self._not_before.get(name)

    def clear_backoff(self, name: str | None = None) -> None:
        """Forget the backoff of one source (or all): its next poll goes out right away.

        For tests and operator tools that step the daemon by hand; the scheduler
        never needs it (a good poll clears the backoff by itself).
        """
        if name is None:
            self._not_before.clear()
        else:
            self._not_before.pop(name, None)

    # -- one poll --------------------------------------------------------------------
    async def poll(self, cfg: SourceConfig) -> None:
        """Poll one source once. Never raises: a failure is logged and changes no alert state."""
        if self.clock.monotonic() < self._not_before.get(cfg.name, 0.0):
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        async with self._lock(cfg.name):
            await self._poll_guarded(cfg)

    async def _poll_guarded(self, cfg: SourceConfig) -> None:
        """One poll, if this instance may poll ``cfg`` now (always, unless several instances share
        the store: then only while it holds the source's poll lease, see run/leases.py)."""
        if self.may_poll(cfg.name):
            await self._poll(cfg)

    async def _sync_state(self) -> None:
        """On a shared store another instance may have stepped the tracker: continue from its view."""
        if self.store.shared and await self.runner.call(self.store.tracker_stale):
            self.state = await self.runner.call(self.store.load_tracker_state)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # -- pushes (ukrainealarm webhooks, alertd.web.hooks) ------------------------------
    def poll_soon(self, name: str) -> None:
        """Poll ``name`` now, after any poll of it under way; several requests meanwhile are one poll.

        A push says the upstream changed: the poll that follows confirms its starts
        and is one of the good polls an end needs.
        """
        cfg = next((s for s in self.sources if s.name == name), None)
        if cfg is None or name in self._wanted:
            return
        self._wanted.add(name)
        task = asyncio.ensure_future(self._poll_wanted(cfg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _poll_wanted(self, cfg: SourceConfig) -> None:
        # A burst of pushes (many regions changing at once) must not become a burst of
        # polls at the upstream's rate limit: at most one push-triggered poll per
        # PUSH_POLL_GAP; pushes meanwhile are covered by it (they stay coalesced here).
        wait = PUSH_POLL_GAP - (self.clock.monotonic() - self._pushed_poll_at.get(cfg.name, -PUSH_POLL_GAP))
        if wait > 0:
            await asyncio.sleep(wait)
        async with self._lock(cfg.name):
            self._wanted.discard(cfg.name)
            self._pushed_poll_at[cfg.name] = self.clock.monotonic()
            if self.clock.monotonic() >= self._not_before.get(cfg.name, 0.0):  # a backing-off source waits
                await self._poll_guarded(cfg)

    def set_interval(self, name: str, seconds: float) -> None:
        """Poll ``name`` every ``seconds`` from now on (slower while pushes arrive, see run/push.py)."""
        cfg = next((s for s in self.sources if s.name == name), None)
        job = self._scheduler.get_job(f"poll:{name}") if self._scheduler is not None else None
        if cfg is None or job is None:
            return
        job.reschedule(MonotonicInterval(seconds, jitter=cfg.jitter or None))

    async def push(self, cfg: SourceConfig, snapshot: Snapshot, received_wall: float) -> list[AlertEvent]:
        """Announce the starts a push reports (never its ends: alertd.core.push), in one transaction,
        then poll the source.

        Applied under the source's poll lock: a poll fetched before the push must not
        land after it and count the pushed alert as one poll missing.
        """
        async with self._lock(cfg.name):
            try:
                events = await self._apply_push(cfg, snapshot, received_wall)
            except StoreError as exc:  # the poll that follows tries again
                self.store_health.failed("poll", exc)
                events = []
        self.poll_soon(cfg.name)
        return events

    async def _apply_push(
        self, cfg: SourceConfig, snapshot: Snapshot, received_wall: float
    ) -> list[AlertEvent]:
        now = self.clock.now()
        await self._sync_state()
        step = apply_push(self.state, snapshot, now)
        for note in step.notes:
            log.info(note.message, **note.fields)
        if not step.source_changed:
            return []
        self._forget(cfg.name)  # the step may set baseline_done
        new_events = await self.runner.call(
            self.store.commit_step, cfg.name, step, self.router, now=now, polled=False
        )
        self.store_health.recovered("poll")
        self.state = step.state
        for event in new_events:
            message, fields = describe_event(event)
            log.info(message, **fields, via="push")
        if new_events:
            self.hooks.events(new_events, received_wall)
            self.on_commit()
        return new_events

    async def wait_inflight(self, timeout: float = 10.0) -> None:
        """On shutdown: let polls under way finish (their commit is one transaction either way)."""
        pending = [t for t in self._inflight if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def _refresh(self, cfg: SourceConfig) -> None:
        """Fetch the type's refresh list (ukrainealarm's /regions, daily) into the region registry.

        A failure here is not a poll failure: the shipped registry still places
        most alerts, and unknown ids still yield ``<source>:<id>`` regions.
        """
        refresh = spec_of(cfg).refresh
        if refresh is None or self.clock.monotonic() < self._refresh_due.get(cfg.name, 0.0):
            return
        self._refresh_due[cfg.name] = self.clock.monotonic() + refresh.every
        try:
            registry = await refresh_registry(self.client, cfg, self.registry)
        except (FetchError, ParseError) as exc:
            self._refresh_due[cfg.name] = self.clock.monotonic() + refresh.retry_after_failure
            log.warning("region list not fetched", source=cfg.name, error=str(exc))
            return
        if registry is None:
            return
        before = len(self.registry)
        self.registry = registry
        log.info("region list fetched", source=cfg.name, added=len(self.registry) - before)

    def _log_skipped(self, cfg: SourceConfig, result: PollResult) -> None:
        """Refused items: a warning each time; fine-but-not-for-residents ones once, at info."""
        told = self._told.setdefault(cfg.name, set())
        for item in result.skipped:
            if item.warning:
                log.warning("item refused", source=cfg.name, reason=item.reason)
            elif item.key not in told:
                if len(told) >= _TOLD_LIMIT:
                    told.clear()
                told.add(item.key)
                log.info("item not announced", source=cfg.name, reason=item.reason)

    async def _cursor(self, name: str) -> SourceCursor:
        """The source's cursor: from memory on an embedded store while nothing was written since
        it was read, else from the store. Raises StoreError."""
        cursor = self._cursors.get(name)
        if cursor is None:
            generation = self._generation.get(name, 0)
            cursor = await self.runner.call(self.store.cursor, name)
            # Kept unless the row was written (or a write was asked for) while it was being read,
            # and never for a shared store, whose rows other instances change under us.
            if not self.store.shared and self._generation.get(name, 0) == generation:
                self._cursors[name] = cursor
        return cursor

    def _written(self, name: str) -> None:
        """The source's row was just written: read it again next time."""
        self._generation[name] = self._generation.get(name, 0) + 1
        self._cursors.pop(name, None)
        self._persisted_at[name] = self.clock.monotonic()

    def _may_skip(self, cfg: SourceConfig, cursor: SourceCursor, new_cursor: dict[str, str | None]) -> bool:
        """Whether a good poll that changed no alert state may leave the store alone.

        Only on an embedded store, only while the stored row already says what this poll would
        write (no failures to clear, the same ETag/Last-Modified/status index) and its time of
        the last good poll is recent (:data:`HEALTH_PERSIST_EVERY`). The caller has checked that
        the tracker step changed nothing the store holds.
        """
        if self.store.shared or cfg.name not in self._cursors:
            return False
        if cursor.consecutive_failures or cursor.failing_since is not None or cursor.down_reported:
            return False
        if any(getattr(cursor, column) != value for column, value in new_cursor.items()):
            return False
        every = min(HEALTH_PERSIST_EVERY, cfg.effective_allowance / 4)
        written = self._persisted_at.get(cfg.name)
        return written is not None and self.clock.monotonic() - written < every

    def _forget(self, name: str) -> None:
        """A poll failed or was not recorded: the next one reads the store and writes its outcome."""
        self._generation[name] = self._generation.get(name, 0) + 1
        self._cursors.pop(name, None)
        self._persisted_at.pop(name, None)

    async def _poll(self, cfg: SourceConfig) -> None:
        await self._refresh(cfg)
        try:
            cursor = await self._cursor(cfg.name)
        except StoreError as exc:
            self._store_failed(cfg, exc)
            return
        try:
            result = await poll_source(
                self.client,
                cfg,
                cursor,
                self.registry,
                self._messages.setdefault(cfg.name, MessageCache()),
                clock=self.clock,
            )
        except FetchError as exc:
            await self._failed(cfg, str(exc), exc.retry_after, exc.status)
            return
        except ParseError as exc:
            await self._failed(cfg, str(exc), None)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a parser must not kill the daemon or flip state
            log.exception("poll crashed", source=cfg.name, error=type(exc).__name__)
            await self._failed(cfg, f"internal error: {type(exc).__name__}: {exc}", None)
            return
        try:
            written, new_events = await self._commit(cfg, cursor, result)
        except StoreError as exc:
            self._store_failed(cfg, exc)
            return
        if written:  # only a write proves the store writable again
            self._store_failures.pop(cfg.name, None)
            self.store_health.recovered("poll")
        self.succeeded_at[cfg.name] = self.clock.now()
        log.debug("poll ok", source=cfg.name, events=len(new_events), recorded=written)
        for event in new_events:
            message, fields = describe_event(event)
            log.info(message, **fields)
        self.hooks.poll_ok(cfg.name, result.received_wall)
        if new_events:
            self.hooks.events(new_events, result.received_wall)
            self.on_commit()
            if spec_of(cfg).shape is FeedShape.STATE:
                self._activity(cfg.name)

    def _store_failed(self, cfg: SourceConfig, exc: StoreError) -> None:
        """The store could not be read or written for this poll: nothing was applied (not even in
        memory), so the next poll diffs again. Back off like a failing source; StoreHealth logs
        the outage once and reports it."""
        self._forget(cfg.name)
        if isinstance(exc, LeaseLost):  # another instance polls this source now: not an outage
            log.warning("poll not committed: lease lost", source=cfg.name, reason=str(exc))
            return
        failures = self._store_failures[cfg.name] = self._store_failures.get(cfg.name, 0) + 1
        delay = backoff_delay(
            failures, base=cfg.interval, cap=poll_backoff_cap(cfg.interval), draw=self._rng.random()
        )
        self._not_before[cfg.name] = self.clock.monotonic() + delay
        self.store_health.failed("poll", exc)
        log.debug(
            "poll not recorded", source=cfg.name, failures=failures, retry_in=f"{delay:.0f}s", cause=exc.cause
        )

    async def _commit(
        self, cfg: SourceConfig, cursor: SourceCursor, result: PollResult
    ) -> tuple[bool, list[AlertEvent]]:
        """A good poll's store work (the tracker step, or the item diff), on the store thread.

        Returns whether the store was written (see :meth:`_may_skip`) and the new events."""
        self._not_before.pop(cfg.name, None)
        self._rate_limited.discard(cfg.name)
        self._log_skipped(cfg, result)
        if cursor.consecutive_failures:
            log.info(
                "source recovered",
                source=cfg.name,
                failures=cursor.consecutive_failures,
                down_since=cursor.failing_since,
            )
        if cursor.down_reported:
            self._forget(cfg.name)
            await self.runner.call(self.store.set_down_reported, cfg.name, False)
            since = cursor.failing_since or self.clock.now()
            self.hooks.recovered(cfg.name, (self.clock.now() - since).total_seconds())
        now = self.clock.now()
        payload = result.payload
        await self._sync_state()
        if isinstance(payload, Snapshot) or (payload is None and spec_of(cfg).shape is FeedShape.STATE):
            snapshot = payload if isinstance(payload, Snapshot) else unchanged_snapshot(self.state, cfg.name)
            for warning in snapshot.warnings:
                log.warning("payload warning", source=cfg.name, warning=warning)
            policy = self.policy
            if cfg.effective_end_hold is not None:
                policy = replace(policy, explicit_end_hold=cfg.effective_end_hold)
            silent = await self._silent_sources(cfg.name, now)
            for attempt in range(3):
                step = apply_snapshot(self.state, snapshot, now, policy, silent)
                if self._step_is_noop(cfg.name, step) and self._may_skip(cfg, cursor, result.cursor):
                    self.state = step.state
                    return False, []
                try:
                    new_events = await self.runner.call(
                        self.store.commit_step,
                        cfg.name,
                        step,
                        self.router,
                        cursor={} if step.held else result.cursor,
                        now=now,
                    )
                except TrackerConflict:  # another instance stepped the tracker meanwhile: its view
                    if attempt == 2:
                        raise
                    self.state = await self.runner.call(self.store.load_tracker_state)
                    continue
                break
            self._written(cfg.name)
            for note in step.notes:
                log.log(logging.WARNING if step.held else logging.INFO, note.message, **note.fields)
            self.state = step.state
        elif payload is None:
            if self._may_skip(cfg, cursor, result.cursor):
                return False, []
            await self.runner.call(self.store.record_unchanged, cfg.name, result.cursor, now=now)
            self._written(cfg.name)
            new_events = []
        else:
            known, hashes = await self.runner.call(self.store.known_notices, cfg.name)
            events, remember, notes = diff_notices(
                cfg.name,
                payload,
                known,
                hashes,
                baseline=not cursor.baseline_done,
                now=now,
                policy=self.policy,
            )
            for note in notes:
                log.info(note.message, **note.fields)
            new_events = await self.runner.call(
                self.store.commit_notices, cfg.name, events, remember, self.router, result.cursor, now=now
            )
            self._written(cfg.name)
        return True, new_events

    def _step_is_noop(self, name: str, step: StepResult) -> bool:
        """Whether a tracker step leaves everything the store holds as it is: no event, no active
        row, and this source's entries (missing counts included) and status unchanged. A held
        (suspicious) step, or one with a note to log, is never skipped."""
        return (
            not step.events
            and not step.changed_keys
            and not step.source_changed
            and not step.held
            and not step.notes
            and name in self.state.sources
            and step.state.sources.get(name) == self.state.sources.get(name)
            and step.state.entries.get(name) == self.state.entries.get(name)
        )

    def _activity(self, reporter: str) -> None:
        """Another source just reported a change: failing sources retry at their next scheduled poll.

        Alerts come in waves; when one feed sees activity, a backed-off second feed is
        worth asking now rather than after its backoff. A source rate-limited by its
        upstream (Retry-After, 429/503) keeps waiting: it asked us to.
        """
        for name in list(self._not_before):
            if name != reporter and name not in self._rate_limited:
                del self._not_before[name]

    async def _silent_sources(self, polling: str, now: datetime) -> frozenset[str]:
        """Other sources whose reports no longer hold an alert open (see tracker.apply_snapshot):
        those down longer than their allowance, and those no longer in the configuration."""
        configured = {s.name: s for s in self.sources}
        silent = set()
        for name in self.state.entries:
            if name == polling:
                continue
            cfg = configured.get(name)
            if cfg is None:
                silent.add(name)
                continue
            since = (await self._cursor(name)).failing_since
            if since is not None and (now - since).total_seconds() > cfg.effective_allowance:
                silent.add(name)
        return frozenset(silent)

    async def _failed(
        self, cfg: SourceConfig, error: str, retry_after: float | None, status: int | None = None
    ) -> None:
        self._forget(cfg.name)
        try:
            failures = (
                await self.runner.call(self.store.record_failure, cfg.name, error, now=self.clock.now())
            ).consecutive_failures
            self.store_health.recovered("poll")
        except StoreError as exc:  # not recorded: count in memory, back off all the same
            self.store_health.failed("poll", exc)
            failures = self._store_failures[cfg.name] = self._store_failures.get(cfg.name, 0) + 1
        delay = backoff_delay(
            failures,
            base=cfg.interval,
            cap=poll_backoff_cap(cfg.interval),
            draw=self._rng.random(),
        )
        if retry_after is not None or status in (429, 503):
            self._rate_limited.add(cfg.name)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        self._not_before[cfg.name] = self.clock.monotonic() + delay
        log.warning(
            "poll failed (alert state unchanged)",
            source=cfg.name,
            failures=failures,
            retry_in=f"{delay:.0f}s",
            error=error,
        )
        self.hooks.poll_failed(cfg.name, error)

    async def poll_all(self) -> None:
        await asyncio.gather(*(self.poll(cfg) for cfg in self.sources))

    # -- scheduling ------------------------------------------------------------------
    def schedule(self, scheduler: AsyncIOScheduler) -> None:
        """One job per source on the monotonic clock (see :mod:`alertd.run.clock`).

        ``misfire_grace_time=None``: a poll that comes late (a stalled loop, a clock step)
        still runs, once (``coalesce``), instead of being dropped as "missed".
        """
        self._scheduler = scheduler
        start = self.clock.now()
        for cfg in self.sources:
            scheduler.add_job(
                self.poll,
                MonotonicInterval(cfg.interval, jitter=cfg.jitter or None),
                args=[cfg],
                id=f"poll:{cfg.name}",
                name=f"poll {cfg.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                # The first poll of every source right away, all at once: sources with the same
                # interval (and no jitter) then stay in step, and the scheduler wakes the process
                # once per interval for all of them instead of once each. An idle poll's CPU is
                # mostly that wakeup on cold caches (bench/README.md, issue 12 item 3).
                next_run_time=start,
            )

    def clock_stepped(self, step: float) -> None:
        """The wall clock jumped by ``step`` seconds: poll now, keep hold timers true.

        APScheduler keeps its next run times in wall time; after a step they are an hour
        away (back) or an hour overdue (forward). Pulling every job to "now" restarts the
        monotonic chain; shifting the tracker's ``missing_since`` keeps Oref's end hold as
        long as it really was.
        """
        self.state = shift_clock(self.state, timedelta(seconds=step))
        self._persisted_at.clear()  # every source's next good poll writes its (new) time
        self.succeeded_at.clear()
        if self._scheduler is None:
            return
        now = self.clock.now()
        for job in self._scheduler.get_jobs():
            job.modify(next_run_time=now)


async def run_forever(
    daemon: Daemon,
    *,
    background: list[Background] | None = None,
    stop: asyncio.Event | None = None,
    stop_grace: float = 10.0,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set): polls on schedule, background tasks beside them.

    Each ``background`` callable gets the stop event and returns an awaitable
    (the dispatcher, the HTTP server); they are awaited for a clean finish, up to
    ``stop_grace`` seconds (the dispatcher needs its delivery timeout to let the
    sends in flight answer and to record them).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
    daemon.schedule(scheduler)
    tasks = [asyncio.ensure_future(factory(stop)) for factory in (background or [])]
    scheduler.start()
    watch = ClockWatch()
    tasks.append(asyncio.ensure_future(watch.run(stop, daemon.clock_stepped)))
    log.info("alertd running", sources=len(daemon.sources), state=daemon.store.location)
    try:
        await stop.wait()
    finally:
        log.info("alertd stopping")
        # No new polls; let the ones under way finish (APScheduler's shutdown would cancel
        # them mid-request and log each as a crash), then stop the scheduler.
        scheduler.pause()
        await daemon.wait_inflight()
        scheduler.shutdown(wait=False)
        # let the background tasks see the stop event and finish what is in flight
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=stop_grace)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    log.error("background task failed", error=repr(task.exception()))
        await daemon.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("alertd stopped")
