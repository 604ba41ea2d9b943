"""Poll leases: with several instances on one shared store, each source is polled by one of them.

The :class:`LeaseKeeper` runs beside the scheduler. Every ``tick`` it asks the store to
take or renew the poll lease of every configured source for this instance
(``store.acquire_source_lease``, judged on the database's clock) and keeps this
instance's outbox claims alive (``store.renew_claims``) and wakes the dispatcher: rows that
another instance committed are due here too. A poll goes out only while
:meth:`LeaseKeeper.holds` says so; every instance schedules every source, so when the
holder dies its lease runs out and the next tick of another instance takes it and polls
at once.

Timing: a lease lasts ``max(2 × interval, 10 s) / 2`` and is renewed every tick (1 s),
so a dead holder's source is taken over within about half of the promised
``max(2 × interval, 10 s)`` plus a tick: the other half is room for the first poll.

A holder that cannot reach the database stops polling once its last renewal is older
than the lease (its own monotonic clock, measured from *before* the renewal was sent),
and the store refuses a step from an instance that no longer holds the lease: an
instance frozen for a minute cannot overwrite what its successor wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from alertd.config import SourceConfig
from alertd.core.clock import SYSTEM_CLOCK, Clock
from alertd.errors import StoreError
from alertd.logs import get_logger
from alertd.store.base import StateStore

log = get_logger("alertd.leases")

#: seconds between two lease rounds (take or renew every source's lease, renew claims)
TICK = 1.0


def lease_ttl(cfg: SourceConfig) -> float:
    """How long one renewal of a source's poll lease lasts (half of the takeover promise)."""
    return max(2.0 * cfg.interval, 10.0) / 2.0


class LeaseKeeper:
    """Takes, renews and gives up this instance's poll leases; see the module docstring."""

    def __init__(
        self,
        store: StateStore,
        sources: list[SourceConfig],
        instance: str,
        *,
        on_acquired: Callable[[SourceConfig], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        tick: float = TICK,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock  # monotonic: a lease's validity is measured in-process
        self.store = store
        self.sources = sources
        self.instance = instance
        self.on_acquired = on_acquired or (lambda cfg: None)
        self.on_tick = on_tick or (lambda: None)
        self.tick = tick
        self._valid_until: dict[str, float] = {}  # source -> monotonic time our lease surely lasts to

    def holds(self, source: str) -> bool:
        """Does this instance hold ``source``'s poll lease right now?"""
        return self.clock.monotonic() < self._valid_until.get(source, 0.0)

    def held(self) -> list[str]:
        return sorted(name for name in self._valid_until if self.holds(name))

    def renew_once(self) -> list[SourceConfig]:
        """One lease round (blocking; the keeper runs it in a worker thread). Returns the sources
        whose lease this round newly took (the caller polls them at once)."""
        taken: list[SourceConfig] = []
        for cfg in self.sources:
            sent = self.clock.monotonic()
            had = self.holds(cfg.name)
            ttl = lease_ttl(cfg)
            try:
                ours = self.store.acquire_source_lease(cfg.name, self.instance, ttl)
            except StoreError:
                continue  # the store logged the outage once; the lease lapses by itself
            if ours:
                self._valid_until[cfg.name] = sent + ttl
                if not had:
                    log.info("poll lease taken", source=cfg.name, instance=self.instance, ttl=f"{ttl:g}s")
                    taken.append(cfg)
            elif had:
                self._valid_until.pop(cfg.name, None)
                log.warning("poll lease lost", source=cfg.name, instance=self.instance)
        with contextlib.suppress(StoreError):
            self.store.renew_claims()
        return taken

    def release_all(self) -> None:
        """At a clean stop: hand every held lease back so another instance takes over at once."""
        for name in self.held():
            try:
                self.store.release_source_lease(name, self.instance)
            except StoreError:
                continue
            log.info("poll lease released", source=name, instance=self.instance)
        self._valid_until.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Lease rounds every ``tick`` until ``stop``; then release the leases."""
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                started = self.clock.monotonic()
                for cfg in await asyncio.to_thread(self.renew_once):
                    self.on_acquired(cfg)
                self.on_tick()  # rows other instances committed are due here too
                wait = max(0.05, self.tick - (self.clock.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            await loop.run_in_executor(None, self.release_all)
