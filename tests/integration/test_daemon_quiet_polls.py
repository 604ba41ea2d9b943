"""Polls that change nothing (the usual 304) cost no store write each, and keep every promise.

An idle daemon polls every source every few seconds and nearly every answer is "not
modified". Such a poll writes the store only when the stored record would change (a
failure, a recovery, new validators, a tracker step) and otherwise only refreshes the
time of the last good poll every ``HEALTH_PERSIST_EVERY`` seconds. What operators see
must not move: ``/healthz`` (through :class:`~alertd.run.daemon.LiveHealth`) counts every
good poll, a failure is recorded and logged at once, the recovery too, and a restart
continues with conditional requests and the same alert state.

Driven poll by poll with a :class:`FakeClock` against the simulated alerts.in.ua; the
state file is real SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, load, write_config

from alertd.config import Settings, SourceConfig
from alertd.core.clock import FakeClock
from alertd.core.model import iso_utc
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.logs import line as log_line
from alertd.run.daemon import HEALTH_PERSIST_EVERY, Daemon, LiveHealth
from alertd.store.base import SourceCursor
from alertd.store.sqlite import Store
from alertd.web.server import health

REGISTRY = RegionRegistry.load()
START = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
KYIV_CITY = 31  # alerts.in.ua uid of UA-30


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


class Quiet:
    """One alerts.in.ua source on a fake clock; reopenable to simulate a restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = FakeClock(START)
        self.store = Store(settings.db_path)
        self.daemon = Daemon(settings, REGISTRY, self.store, clock=self.clock)

    @property
    def cfg(self) -> SourceConfig:
        return self.daemon.sources[0]

    async def poll(self) -> None:
        self.daemon.clear_backoff()
        await self.daemon.poll(self.cfg)

    def stored(self) -> SourceCursor:
        """The source's record as the state file has it (what `alertd status` reads)."""
        return self.store.cursor("aiu")

    def healthz(self, at: datetime) -> tuple[bool, dict[str, Any]]:
        """What /healthz answers at ``at`` (the daemon's live view, as run_app wires it)."""
        return health(LiveHealth(self.store, self.daemon).cursors(), self.settings.sources, None, at, START)

    async def restart(self) -> None:
        await self.close()
        self.store = Store(self.settings.db_path)
        self.daemon = Daemon(self.settings, REGISTRY, self.store, clock=self.clock)

    async def close(self) -> None:
        await self.daemon.aclose()
        self.store.close()


@pytest.fixture
async def quiet(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Quiet]:
    q = Quiet(load(write_config(tmp_path, upstream, sources=("aiu",), tracker="end_confirmations = 2")))
    yield q
    await q.close()


def lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [text for r in caplog.records if needle in (text := log_line(r))]


async def test_an_unchanged_poll_counts_for_healthz_and_the_stored_time_follows_within_the_period(
    quiet: Quiet, upstream: Upstream
) -> None:
    allowance = quiet.cfg.effective_allowance
    period = min(HEALTH_PERSIST_EVERY, allowance / 4)
    await quiet.poll()  # baseline: written
    assert quiet.stored().last_success == START and quiet.stored().baseline_done

    quiet.clock.advance(period / 2)
    await quiet.poll()
    assert upstream.requests("alerts_in_ua")[-1].status == 304  # a conditional request, answered 304
    assert quiet.stored().last_success == START  # not written: nothing changed
    last_good = quiet.clock.now()
    # /healthz counts it: just past the allowance after the stored time, but within it after the poll
    ok, body = quiet.healthz(START + timedelta(seconds=allowance + 1))
    assert ok, body
    assert body["sources"]["aiu"]["last_success"] == iso_utc(last_good)
    # ...and still turns red once the allowance has passed since the last good poll
    ok, body = quiet.healthz(last_good + timedelta(seconds=allowance + 1))
    assert not ok and body["failing"] == ["aiu"]

    quiet.clock.advance(period / 2 + 1)  # the period has passed: this unchanged poll writes its time
    await quiet.poll()
    assert quiet.stored().last_success == quiet.clock.now()
    assert quiet.stored().consecutive_failures == 0


async def test_a_failure_after_quiet_polls_is_recorded_and_logged_at_once_and_so_is_the_recovery(
    quiet: Quiet, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await quiet.poll()
    quiet.clock.advance(2)
    await quiet.poll()  # quiet: not written
    last_good = quiet.clock.now()

    upstream.set_fault("http500", count=1)
    quiet.clock.advance(2)
    await quiet.poll()
    failed_at = quiet.clock.now()
    stored = quiet.stored()
    assert stored.consecutive_failures == 1 and stored.failing_since == failed_at
    assert stored.last_error is not None and "HTTP 500" in stored.last_error
    assert len(lines(caplog, "poll failed (alert state unchanged)")) == 1
    ok, body = quiet.healthz(failed_at)
    entry = body["sources"]["aiu"]
    assert ok and entry["consecutive_failures"] == 1  # within its allowance, and /healthz says so
    assert entry["last_success"] == iso_utc(last_good)  # the good poll, not the failure

    quiet.clock.advance(2)
    await quiet.poll()  # recovered: written at once, whatever the period
    stored = quiet.stored()
    assert stored.consecutive_failures == 0 and stored.failing_since is None
    assert stored.last_success == quiet.clock.now()
    assert len(lines(caplog, "source recovered")) == 1
    assert len(lines(caplog, "poll failed")) == 1  # one failure, one line

    recovered_at = quiet.clock.now()
    quiet.clock.advance(2)
    await quiet.poll()  # quiet again
    assert quiet.stored().last_success == recovered_at
    assert len(lines(caplog, "source recovered")) == 1


async def test_a_pending_end_confirmed_by_a_304_after_a_restart_is_announced_once(
    quiet: Quiet, upstream: Upstream
) -> None:
    upstream.add_alert(KYIV_CITY, started_at=START)
    await quiet.poll()  # fresh install: recorded, not announced
    quiet.clock.advance(2)
    await quiet.poll()  # quiet
    upstream.clear_alerts()
    quiet.clock.advance(2)
    await quiet.poll()  # absent once: the end waits for a second good poll
    assert [str(e.status) for e in quiet.store.events()] == []
    assert {a.region.code for a in quiet.store.active_alerts()} == {"UA-30"}

    await quiet.restart()
    quiet.clock.advance(2)
    await quiet.poll()  # a 304 after the restart: the second good poll without the alert
    assert upstream.requests("alerts_in_ua")[-1].status == 304
    assert [str(e.status) for e in quiet.store.events()] == ["ended"]
    assert quiet.store.active_alerts() == []

    for _ in range(3):  # quiet polls, then another restart: nothing repeats
        quiet.clock.advance(2)
        await quiet.poll()
    await quiet.restart()
    quiet.clock.advance(2)
    await quiet.poll()
    assert upstream.requests("alerts_in_ua")[-1].status == 304
    assert [str(e.status) for e in quiet.store.events()] == ["ended"]


async def test_a_wall_clock_step_makes_the_next_good_poll_write_its_time(quiet: Quiet) -> None:
    await quiet.poll()
    quiet.clock.step(-3600)  # NTP steps the wall clock back an hour
    quiet.daemon.clock_stepped(-3600)
    quiet.clock.advance(1)
    await quiet.poll()
    # not left an hour in the future: `alertd status` and /healthz agree with the clock again
    assert quiet.stored().last_success == quiet.clock.now()
    _, body = quiet.healthz(quiet.clock.now())
    assert body["sources"]["aiu"]["last_success"] == iso_utc(quiet.clock.now())


async def test_sources_with_one_interval_stay_in_step_and_share_the_schedulers_wakeups(
    tmp_path: Path,
) -> None:
    """Every source's first poll at one moment: sources with the same interval (no jitter) are
    then due together at every turn, so APScheduler wakes the process once for all of them."""
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN) as upstream:
        settings = load(write_config(tmp_path, upstream))  # alerts.in.ua and ukrainealarm, 1 s, no jitter
        store = Store(settings.db_path)
        daemon = Daemon(settings, REGISTRY, store)
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        try:
            daemon.schedule(scheduler)
            assert len({job.next_run_time for job in scheduler.get_jobs()}) == 1
            scheduler.start()
            for _ in range(600):  # three turns of each source (bounded: 60 s)
                if (
                    len(upstream.requests("alerts_in_ua")) >= 3
                    and len(upstream.requests("ukrainealarm_status")) >= 3
                ):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the sources were not polled three times")
            assert len({job.next_run_time for job in scheduler.get_jobs()}) == 1  # still in step
        finally:
            scheduler.shutdown(wait=False)
            await daemon.wait_inflight()
            await daemon.aclose()
            store.close()
