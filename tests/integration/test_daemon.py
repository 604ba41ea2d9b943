"""The daemon end to end inside one process: real SQLite file, simulated upstreams, scripted timelines.

Each test drives :class:`~alertd.run.daemon.Daemon` poll by poll and asserts the exact
event log. ``aiu`` is the alerts.in.ua source, ``ualarm`` the ukrainealarm one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, load, write_config

from alertd.config import Settings, SourceConfig
from alertd.core.model import EventStatus
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import SimAlert, Upstream
from alertd.logs import line as log_line
from alertd.run.daemon import Daemon, run_forever
from alertd.store.sqlite import Store

REGISTRY = RegionRegistry.load()
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
# alerts.in.ua uid → region code (oblast uids equal ukrainealarm regionIds)
KYIV_CITY, KYIV_OBLAST, KHARKIV_OBLAST = 31, 14, 22


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN, timeout_delay=2.5) as up:
        yield up


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Promise of DESIGN §1: credentials never reach a log line, in any test of this module."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = log_line(record)  # message, fields and traceback
        assert AIU_TOKEN not in text and UA_TOKEN not in text, text


class Harness:
    """A daemon on a state file, reopenable to simulate a restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Store | None = None
        self.daemon: Daemon | None = None

    def open(self) -> Daemon:
        self.store = Store(self.settings.db_path)
        self.daemon = Daemon(self.settings, REGISTRY, self.store)
        return self.daemon

    async def close(self) -> None:
        if self.daemon is not None:
            await self.daemon.aclose()
        if self.store is not None:
            self.store.close()
        self.daemon = self.store = None

    async def restart(self) -> Daemon:
        await self.close()
        return self.open()

    def cfg(self, name: str) -> SourceConfig:
        return next(s for s in self.settings.sources if s.name == name)

    async def poll(self, *names: str) -> None:
        """One poll of the named sources (all when none), one after the other, backoff ignored."""
        assert self.daemon is not None
        for cfg in [self.cfg(n) for n in names] or self.daemon.sources:
            self.daemon.clear_backoff(cfg.name)
            await self.daemon.poll(cfg)

    def events(self) -> list[tuple[str, str | None, str, datetime | None]]:
        assert self.store is not None
        return [
            (str(e.status), e.region.code if e.region else None, str(e.kind), e.started_at)
            for e in self.store.events()
        ]

    def active(self) -> set[tuple[str, str]]:
        assert self.store is not None
        return {(a.region.code, str(a.kind)) for a in self.store.active_alerts()}


@pytest.fixture
async def harness(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Harness]:
    h = Harness(load(write_config(tmp_path, upstream)))
    h.open()
    yield h
    await h.close()


def messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [text for r in caplog.records if needle in (text := log_line(r))]


# -- 1. a whole day in the life of two sources ------------------------------------------------------


async def test_timeline_baseline_start_dedupe_failures_recovery_end(
    harness: Harness, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add_alert(KYIV_CITY, started_at=T0)

    # fresh install: recorded, not announced
    await harness.poll()
    assert harness.events() == []
    assert harness.active() == {("UA-30", "air_raid")}
    assert messages(caplog, "alert already active at first poll")

    # a new alert: one start, from the first source to report it
    t1 = T0 + timedelta(minutes=5)
    upstream.add_alert(KYIV_OBLAST, started_at=t1)
    await harness.poll("aiu")
    assert harness.events() == [("started", "UA-32", "air_raid", t1)]
    assert harness.store.events()[0].source == "aiu"
    # the second source reports the same region+kind: no second start
    await harness.poll("ualarm")
    assert len(harness.events()) == 1
    assert harness.active() == {("UA-30", "air_raid"), ("UA-32", "air_raid")}

    # every kind of upstream failure: state unchanged, a log line naming the source, counted, backoff
    before_events, before_active = harness.events(), harness.active()
    daemon = harness.daemon
    assert daemon is not None
    aiu = harness.cfg("aiu")
    for failures, mode in enumerate(
        ["http500", "garbage", "html200", "truncated", "empty_body", "timeout"], start=1
    ):
        caplog.clear()
        upstream.set_fault(mode, "alerts_in_ua", count=1)
        await harness.poll("aiu")
        assert harness.events() == before_events, mode
        assert harness.active() == before_active, mode
        failed = messages(caplog, "poll failed")
        assert len(failed) == 1 and "source=aiu" in failed[0] and "alert state unchanged" in failed[0], mode
        assert harness.store.cursor("aiu").consecutive_failures == failures, mode
        hint = daemon.next_poll_hint("aiu")
        assert hint is not None and hint > time.monotonic(), mode
        # backing off: the scheduler's next call is skipped without a request
        sent = len(upstream.requests("alerts_in_ua"))
        await daemon.poll(aiu)
        assert len(upstream.requests("alerts_in_ua")) == sent, mode
    assert harness.store.cursor("aiu").last_error

    # recovery
    caplog.clear()
    await harness.poll("aiu")
    recovered = messages(caplog, "source recovered")
    assert len(recovered) == 1 and "source=aiu" in recovered[0] and "failures=6" in recovered[0]
    assert harness.store.cursor("aiu").consecutive_failures == 0
    assert daemon.next_poll_hint("aiu") is None

    # one empty answer is not an end (it takes two good polls without the alert)
    upstream.set_fault("empty_list", "alerts_in_ua", count=1)
    await harness.poll("aiu")
    await harness.poll("aiu")
    await harness.poll()
    assert harness.events() == before_events
    assert harness.active() == before_active

    # the Kyiv oblast alert ends: absent from two good polls of every source reporting it
    upstream.clear_alert(KYIV_OBLAST)
    first_without = datetime.now(UTC)
    await harness.poll()  # both sources fetch the new state: missing once
    after_first = datetime.now(UTC)
    assert len(harness.events()) == 1
    upstream.clear_requests()
    await harness.poll()  # aiu: 304; ualarm: index unchanged, list not fetched — both good polls
    assert [r.status for r in upstream.requests("alerts_in_ua")] == [304]
    assert [r.endpoint for r in upstream.requests() if r.endpoint != "alerts_in_ua"] == [
        "ukrainealarm_status"
    ]
    assert harness.events() == [
        ("started", "UA-32", "air_raid", t1),
        ("ended", "UA-32", "air_raid", t1),
    ]
    ended = harness.store.events()[-1]
    assert first_without <= ended.ended_at <= after_first  # the first poll without it
    assert harness.active() == {("UA-30", "air_raid")}

    # and nothing more however often it is polled
    for _ in range(3):
        await harness.poll()
    assert len(harness.events()) == 2
    ids = [e.id for e in harness.store.events()]
    assert len(ids) == len(set(ids))


async def test_end_waits_for_every_source(harness: Harness, upstream: Upstream) -> None:
    """The end comes when no source reports the alert any more, not when the first one drops it."""
    await harness.poll()  # baseline, nothing active
    upstream.add_alert(KHARKIV_OBLAST, started_at=T0)
    await harness.poll()
    assert harness.events() == [("started", "UA-63", "air_raid", T0)]
    # alerts.in.ua drops it, ukrainealarm still reports it
    upstream.set_alerts([SimAlert(KHARKIV_OBLAST, started_at=T0, feeds=frozenset({"ukrainealarm"}))])
    for _ in range(3):
        await harness.poll()
    assert [e[0] for e in harness.events()] == ["started"]
    upstream.clear_alerts()
    await harness.poll()
    await harness.poll()
    assert harness.events() == [("started", "UA-63", "air_raid", T0), ("ended", "UA-63", "air_raid", T0)]


async def test_a_source_down_past_its_allowance_does_not_hold_an_alert_open(
    harness: Harness, upstream: Upstream
) -> None:
    """ukrainealarm stops answering while alerts.in.ua confirms the end: the all-clear still comes."""
    await harness.poll()
    upstream.add_alert(KHARKIV_OBLAST, started_at=T0)
    await harness.poll()
    assert [e[0] for e in harness.events()] == ["started"]
    # ukrainealarm has been failing for five minutes (allowance: 60 s), and still fails
    harness.store.record_failure("ualarm", "HTTP 500", now=datetime.now(UTC) - timedelta(minutes=5))
    upstream.set_fault("http500", "ukrainealarm_status")
    upstream.set_fault("http500", "ukrainealarm")
    upstream.clear_alerts()
    await harness.poll()
    assert [e[0] for e in harness.events()] == ["started"]  # one good poll without it: not yet
    await harness.poll()
    assert [e[0] for e in harness.events()] == ["started", "ended"]
    assert harness.store.cursor("ualarm").consecutive_failures >= 3


# -- 2. restarts ------------------------------------------------------------------------------------


async def test_restart_nothing_missed_nothing_repeated(harness: Harness, upstream: Upstream) -> None:
    t_a, t_b, t_c = T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    upstream.add_alert(KYIV_CITY, started_at=t_a)
    await harness.poll()  # baseline: A recorded
    upstream.add_alert(KYIV_OBLAST, started_at=t_b)
    await harness.poll()
    assert harness.events() == [("started", "UA-32", "air_raid", t_b)]

    # down: A ends, C starts
    await harness.close()
    upstream.clear_alert(KYIV_CITY)
    upstream.add_alert(KHARKIV_OBLAST, started_at=t_c)
    harness.open()

    await harness.poll()
    assert harness.events()[1:] == [("started", "UA-63", "air_raid", t_c)]
    await harness.poll()
    assert harness.events() == [
        ("started", "UA-32", "air_raid", t_b),
        ("started", "UA-63", "air_raid", t_c),
        ("ended", "UA-30", "air_raid", t_a),
    ]

    # restart again, and again mid-confirmation: nothing repeated
    await harness.restart()
    await harness.poll()
    upstream.clear_alert(KYIV_OBLAST)
    await harness.poll()  # missing once …
    await harness.restart()
    await harness.poll()  # … and twice, across the restart
    await harness.restart()
    for _ in range(2):
        await harness.poll()
    assert harness.events() == [
        ("started", "UA-32", "air_raid", t_b),
        ("started", "UA-63", "air_raid", t_c),
        ("ended", "UA-30", "air_raid", t_a),
        ("ended", "UA-32", "air_raid", t_b),
    ]
    ids = [e.id for e in harness.store.events()]
    assert len(ids) == len(set(ids)) == 4
    assert harness.active() == {("UA-63", "air_raid")}


# -- 3. suspicious drop -----------------------------------------------------------------------------


async def test_suspicious_drop_is_held(
    harness: Harness, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    oblast_uids = [3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 17]
    upstream.set_alerts([SimAlert(uid, started_at=T0) for uid in oblast_uids])
    await harness.poll("aiu")
    assert len(harness.active()) == 12 and harness.events() == []
    assert harness.settings.tracker.suspicious_drop == 10

    # a glitch: one empty answer is held (no missing count even), then the alerts are back
    upstream.set_fault("empty_list", "alerts_in_ua", count=1)
    caplog.clear()
    await harness.poll("aiu")
    held = [r for r in caplog.records if "suspicious poll held" in r.getMessage()]
    assert len(held) == 1 and held[0].levelno == logging.WARNING and "source=aiu" in log_line(held[0])
    await harness.poll("aiu")
    await harness.poll("aiu")
    assert len(harness.active()) == 12 and harness.events() == []

    # a real all-clear: held once, then confirmed by two more good polls
    upstream.clear_alerts()
    await harness.poll("aiu")
    assert len(harness.active()) == 12
    await harness.poll("aiu")
    assert len(harness.active()) == 12 and harness.events() == []
    await harness.poll("aiu")
    assert harness.active() == set()
    assert sorted(e[0] for e in harness.events()) == ["ended"] * 12


# -- 4. ukrainealarm's status index -----------------------------------------------------------------


async def test_ukrainealarm_polls_status_index_first(harness: Harness, upstream: Upstream) -> None:
    def calls() -> list[str]:
        return [
            r.endpoint
            for r in upstream.requests()
            if r.endpoint not in ("alerts_in_ua", "ukrainealarm_regions")
        ]

    await harness.poll("ualarm")
    assert calls() == ["ukrainealarm_status", "ukrainealarm"]
    assert harness.store.cursor("ualarm").status_index == str(upstream.status_index)

    upstream.clear_requests()
    await harness.poll("ualarm")
    await harness.poll("ualarm")
    assert calls() == ["ukrainealarm_status", "ukrainealarm_status"]

    upstream.clear_requests()
    upstream.add_alert(KYIV_CITY, started_at=T0)
    await harness.poll("ualarm")
    assert calls() == ["ukrainealarm_status", "ukrainealarm"]
    assert harness.events() == [("started", "UA-30", "air_raid", T0)]
    assert harness.store.events()[0].source == "ualarm"

    # the list fails after the index moved: the index is not kept, the next poll fetches the list again
    upstream.add_alert(KYIV_OBLAST, started_at=T0)
    upstream.set_fault("http500", "ukrainealarm", count=1)
    upstream.clear_requests()
    await harness.poll("ualarm")
    assert harness.store.cursor("ualarm").consecutive_failures == 1
    await harness.poll("ualarm")
    assert calls() == ["ukrainealarm_status", "ukrainealarm", "ukrainealarm_status", "ukrainealarm"]
    assert [e[1] for e in harness.events()] == ["UA-30", "UA-32"]

    # status order and the raw Authorization header on every request
    for request in upstream.requests():
        assert request.headers["authorization"] == UA_TOKEN

    # a 429 on the status endpoint: failure with the server's Retry-After as the minimum backoff
    upstream.set_fault("http429", "ukrainealarm_status", count=1)
    await harness.poll("ualarm")
    hint = harness.daemon.next_poll_hint("ualarm")
    assert hint is not None and hint - time.monotonic() > 1.5


async def test_ukrainealarm_without_a_usable_status_index_still_delivers(
    harness: Harness, upstream: Upstream
) -> None:
    """The index is a shortcut: when it fails or is garbage, the full list decides."""
    await harness.poll("ualarm")
    upstream.add_alert(KYIV_CITY, started_at=T0)
    upstream.set_fault("http500", "ukrainealarm_status")
    await harness.poll("ualarm")
    assert harness.events() == [("started", "UA-30", "air_raid", T0)]
    assert harness.store.cursor("ualarm").consecutive_failures == 0
    upstream.clear_faults()
    upstream.set_fault("garbage", "ukrainealarm_status")
    upstream.clear_alert(KYIV_CITY, "air_raid")
    await harness.poll("ualarm")
    await harness.poll("ualarm")
    assert [e[0] for e in harness.events()] == ["started", "ended"]


async def test_alerts_in_ua_conditional_requests(harness: Harness, upstream: Upstream) -> None:
    upstream.add_alert(KYIV_CITY, started_at=T0)
    await harness.poll("aiu")
    await harness.poll("aiu")
    first, second = upstream.requests("alerts_in_ua")
    assert "if-none-match" not in first.headers  # the baseline poll is unconditional
    assert second.headers["if-none-match"] == harness.store.cursor("aiu").etag
    assert second.status == 304
    for request in upstream.requests():
        assert request.headers["authorization"] == f"Bearer {AIU_TOKEN}"


# -- 5. tokens ---------------------------------------------------------------------------------------


async def test_rejected_token_is_a_failure_and_never_logged(
    tmp_path: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """The autouse fixture checks the real tokens; here the wrong ones must stay out of the log too."""
    wrong_aiu, wrong_ua = "wrong-aiu-token-91ab", "wrong-ua-token-55cd"
    h = Harness(load(write_config(tmp_path, upstream, aiu_token=wrong_aiu, ua_token=wrong_ua)))
    h.open()
    try:
        await h.poll()
        failed = messages(caplog, "poll failed")
        assert len(failed) == 2 and all("HTTP 401" in m for m in failed)
        assert h.store.cursor("aiu").consecutive_failures == 1
        assert upstream.requests("alerts_in_ua")[0].headers["authorization"] == f"Bearer {wrong_aiu}"
        for record in caplog.records:
            assert wrong_aiu not in log_line(record) and wrong_ua not in log_line(record)
    finally:
        await h.close()


async def test_malformed_token_stays_out_of_logs_and_state(
    tmp_path: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A token pasted with a stray newline: httpx refuses it quoting the value; alertd must not."""
    h = Harness(load(write_config(tmp_path, upstream, aiu_token="pasted-token-6b2f\\n", sources=["aiu"])))
    assert h.cfg("aiu").token.get_secret_value() == "pasted-token-6b2f\n"
    h.open()
    try:
        await h.poll()
        failed = messages(caplog, "poll failed")
        assert len(failed) == 1 and "malformed" in failed[0]
        cursor = h.store.cursor("aiu")
        assert cursor.consecutive_failures == 1 and "6b2f" not in (cursor.last_error or "")
        # alertd's own lines; httpcore's DEBUG trace quotes the value too, which is why
        # alertd.logs.setup_logging keeps httpx/httpcore at WARNING
        for record in caplog.records:
            if record.name.startswith("alertd"):
                assert "6b2f" not in log_line(record)
    finally:
        await h.close()


# -- 6. the scheduler -------------------------------------------------------------------------------


async def test_run_forever_polls_on_schedule_and_stops_cleanly(
    harness: Harness, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add_alert(KYIV_CITY, started_at=T0)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(3.2, stop.set)
    await asyncio.wait_for(run_forever(harness.daemon, stop=stop), timeout=20)
    aiu = upstream.requests("alerts_in_ua")
    status = upstream.requests("ukrainealarm_status")
    assert len(aiu) >= 2 and len(status) >= 2
    assert harness.active() == {("UA-30", "air_raid")}
    assert harness.events() == []
    assert messages(caplog, "alertd stopped")
    # the store is still usable after the daemon stopped (its client is closed, the store is not)
    assert harness.store.cursor("aiu").last_success is not None
    assert EventStatus.STARTED == "started"
