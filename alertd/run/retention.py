"""Retention: old history leaves the store in small batches, off the alert path.

Delivered and dead notices, their attempts and the events of alerts that ended
grow with every alert (about 400 bytes per delivery); left alone, the state
file grows without bound. :func:`prune_forever` deletes what is older than
``[store] retention`` every ``prune_interval`` seconds, one small batch per store
call with a pause between, so polls and deliveries queued on the store thread
are never held behind one long delete. What the tracker and the dispatcher still
need (active alerts, undelivered rows, the last end per place and kind) is kept
by the store's ``prune`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alertd.errors import StoreError
from alertd.logs import get_logger
from alertd.store.base import StateStore
from alertd.store.runner import StoreRunner

__all__ = ["prune_forever", "prune_once"]

log = get_logger(__name__)

#: Rows per store call: small enough that a poll waiting behind it is not delayed noticeably.
BATCH = 500
#: Seconds between two batches of one run.
PAUSE = 0.05


async def prune_once(
    store: StateStore,
    runner: StoreRunner,
    retention: timedelta,
    *,
    batch: int = BATCH,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Prune everything older than ``retention``, batch by batch; returns the rows removed."""
    before = clock() - retention
    total = 0
    while True:
        try:
            removed = await runner.call(store.prune, before, batch)
        except StoreError as exc:  # next run tries again; the alert path reports store trouble
            log.warning("history not pruned", cause=exc.cause, removed=total)
            return total
        total += removed
        if removed == 0:
            break
        await asyncio.sleep(PAUSE)
    if total:
        log.info("history pruned", rows=total, older_than=before)
    return total


async def prune_forever(
    store: StateStore,
    runner: StoreRunner,
    retention: timedelta,
    every: float,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Prune every ``every`` seconds until ``stop`` is set (first run after one interval)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        await prune_once(store, runner, retention, clock=clock)
