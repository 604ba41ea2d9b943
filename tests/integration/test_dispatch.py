"""The dispatcher end to end: a real SQLite store, real events and outbox rows, real Apprise, local sinks.

Times in messages are deterministic: the dispatcher's clock is a fixed winter
instant (UTC+2 in Kyiv) that advances with real time, so retries still happen.
No assertion is about speed; waits are bounded and only order and counts count.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.sinks import JsonSink, SmtpSink

from alertd.channels import SendResult, mask
from alertd.channels.sender import Sender
from alertd.config import DeliveryConfig, OperatorsConfig, Settings
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.core.tracker import StepResult, TrackerState, event_id
from alertd.errors import StoreError
from alertd.logs import line as log_line
from alertd.run.dispatch import Dispatcher, retry_delay, send_test
from alertd.store.base import Outcome
from alertd.store.sqlite import OutboxRow, Store

T0 = datetime(2026, 1, 15, 12, 3, tzinfo=UTC)  # 14:03 in Kyiv
KYIV = Region(code="UA-30", level=RegionLevel.CITY, name_uk="м. Київ", name_en="Kyiv", oblast="UA-30")
SECRET = "s3cretpass"
PHONE = "+380501234567"


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at ``start`` and runs at real speed (so backoff delays elapse)."""
    real0 = datetime.now(UTC)
    return lambda: start + (datetime.now(UTC) - real0)


def started(
    at: datetime = T0, observed: datetime | None = None, kind: AlertKind = AlertKind.AIR_RAID
) -> AlertEvent:
    return AlertEvent(
        id=event_id(KYIV.code, kind, at, EventStatus.STARTED),
        source="test",
        kind=kind,
        status=EventStatus.STARTED,
        region=KYIV,
        started_at=at,
        observed_at=observed or at,
    )


def ended(
    start: datetime = T0, end: datetime | None = None, kind: AlertKind = AlertKind.AIR_RAID
) -> AlertEvent:
    end = end or start + timedelta(minutes=38)
    return AlertEvent(
        id=event_id(KYIV.code, kind, start, EventStatus.ENDED),
        source="test",
        kind=kind,
        status=EventStatus.ENDED,
        region=KYIV,
        started_at=start,
        ended_at=end,
        observed_at=end,
    )


Route = tuple[str, str, str]  # subscriber, url, language


def commit(store: Store, events: Iterable[AlertEvent], routes: list[Route], now: datetime) -> None:
    """Write events and their outbox rows the way the daemon does: one store step per poll."""
    step = StepResult(
        state=TrackerState(), events=list(events), notes=[], changed_keys=frozenset(), source_changed=False
    )
    store.commit_step(
        "test",
        step,
        outbox_for=lambda ev: [OutboxRow(ev.id, sub, url, lang) for sub, url, lang in routes],
        now=now,
    )


def make_settings(tmp_path: Path, operators: list[str] | None = None, **delivery: float) -> Settings:
    knobs: dict[str, float] = {"retry_base": 0.05, "retry_max": 0.2, "max_attempts": 5, "timeout": 10.0}
    knobs.update(delivery)
    return Settings(
        state_dir=tmp_path,
        timezone="Europe/Kyiv",
        delivery=DeliveryConfig(**knobs),  # type: ignore[arg-type]
        operators=OperatorsConfig(urls=operators or [], language="en"),  # type: ignore[arg-type]
    )


class Hooks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def delivered(self, event: AlertEvent, latency_seconds: float) -> None:
        self.calls.append(("delivered", event.id))

    def failed(self, event: AlertEvent) -> None:
        self.calls.append(("failed", event.id))

    def dead(self, event: AlertEvent) -> None:
        self.calls.append(("dead", event.id))


async def run_until(dispatcher: Dispatcher, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run the dispatcher until ``done()`` holds (bounded), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not done():
                if task.done():
                    task.result()
                    raise AssertionError("dispatcher stopped on its own")
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def attempts(store: Store, event: str, url: str) -> list[tuple[int, str]]:
    from alertd.store.sqlite import channel_key

    with sqlite3.connect(store.path) as db:
        return db.execute(
            "SELECT a.attempt, a.outcome FROM attempts a JOIN outbox o ON o.id = a.outbox_id "
            "WHERE o.event_id = ? AND o.channel_key = ? ORDER BY a.attempt",
            (event, channel_key(url)),
        ).fetchall()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


# --------------------------------------------------------------------------------------------------


async def test_each_channel_gets_the_start_once(
    tmp_path: Path, store: Store, json_sink: JsonSink, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    u1 = json_sink.url(f"/u1/{PHONE}").replace("json://", f"json://olena:{SECRET}@")
    u2 = json_sink.url("/u2")
    mail = smtp_sink.url("olena@example.org", password=SECRET)
    routes = [("olena", u1, "uk"), ("petro", u2, "en"), ("olena", mail, "uk")]
    commit(store, [started()], routes, T0)
    hooks = Hooks()
    dispatcher = Dispatcher(store, make_settings(tmp_path), hooks=hooks, clock=clock_from(T0))
    try:
        await dispatcher.drain(timeout=20)
        await dispatcher.drain(timeout=20)  # nothing left: a second pass sends nothing again
    finally:
        dispatcher.close()

    (uk,) = json_sink.received(f"/u1/{PHONE}")
    assert (uk.title, uk.type) == ("Повітряна тривога", "failure")
    assert "Київ" in uk.message and "14:03" in uk.message
    (en,) = json_sink.received("/u2")
    assert (en.title, en.type) == ("Air raid alert", "failure")
    assert "Kyiv, 14:03" in en.message
    (msg,) = smtp_sink.messages()
    assert msg.recipients == ("olena@example.org",)
    assert msg.subject == "Повітряна тривога" and "Київ, 14:03" in msg.body
    assert store.outbox_counts() == {"delivered": 3}
    assert [c[0] for c in hooks.calls] == ["delivered"] * 3

    lines = [log_line(r) for r in caplog.records if r.getMessage() == "delivery ok"]
    assert len(lines) == 3
    assert all("kind=air_raid status=started attempt=1 latency_ms=" in line for line in lines)
    logged = "\n".join(log_line(r) for r in caplog.records)  # messages, fields and tracebacks
    assert SECRET not in logged and PHONE not in logged


async def test_failing_channel_is_retried_and_others_are_unaffected(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    json_sink.configure("/flaky", fail_first=2, fail_status=500)
    flaky, ok = json_sink.url("/flaky"), json_sink.url("/ok")
    event = started()
    commit(store, [event], [("a", flaky, "en"), ("b", ok, "en")], T0)
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(T0))
    try:
        await run_until(dispatcher, lambda: store.outbox_counts().get("delivered") == 2)
    finally:
        dispatcher.close()
    assert [r.status for r in json_sink.received("/flaky")] == [500, 500, 200]
    assert len(json_sink.received("/ok")) == 1
    assert attempts(store, event.id, flaky) == [(1, "pending"), (2, "pending"), (3, "delivered")]
    assert attempts(store, event.id, ok) == [(1, "delivered")]


async def test_dead_after_max_attempts_reported_to_operators_once(
    tmp_path: Path, store: Store, json_sink: JsonSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    json_sink.configure("/gone", status=404)
    gone = json_sink.url(f"/gone/{PHONE}").replace("json://", f"json://u:{SECRET}@")
    json_sink.configure(f"/gone/{PHONE}", status=404)
    gone2 = json_sink.url("/gone2")
    json_sink.configure("/gone2", status=404)
    ops = json_sink.url("/ops")
    event = started()
    commit(store, [event], [("a", gone, "en"), ("b", gone2, "en")], T0)
    hooks = Hooks()
    dispatcher = Dispatcher(
        store,
        make_settings(tmp_path, operators=[ops], max_attempts=3),
        hooks=hooks,
        clock=clock_from(T0),
        dead_letter_window=1.0,
    )
    try:
        await run_until(dispatcher, lambda: len(json_sink.received("/ops")) >= 1)
    finally:
        dispatcher.close()
    assert store.outbox_counts() == {"dead": 2}
    assert len(json_sink.received(f"/gone/{PHONE}")) == 3
    assert [o for _, o in attempts(store, event.id, gone)] == ["pending", "pending", "dead"]
    (notice,) = json_sink.received("/ops")
    assert "2 channel(s)" in notice.message and event.id in notice.message
    assert notice.type == "warning"
    assert [c for c in hooks.calls if c[0] == "dead"] == [("dead", event.id)] * 2

    failed = [log_line(r) for r in caplog.records if r.getMessage() == "delivery failed"]
    assert failed and all("retry_in=" in line and "error=" in line for line in failed)
    assert any(r.getMessage() == "delivery dead-lettered" for r in caplog.records)
    logged = "\n".join(log_line(r) for r in caplog.records)
    assert SECRET not in logged and PHONE not in logged


async def test_slow_channel_does_not_delay_a_fast_one(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    held = threading.Event()  # the slow channels answer only when the test says so
    json_sink.configure("/slow1", gate=held)
    json_sink.configure("/slow2", gate=held)
    routes = [("s1", json_sink.url("/slow1"), "en"), ("s2", json_sink.url("/slow2"), "en")]
    routes.append(("fast", json_sink.url("/fast"), "en"))  # last row: a sequential sender would reach it last
    commit(store, [started()], routes, T0)
    dispatcher = Dispatcher(store, make_settings(tmp_path, concurrency=4), clock=clock_from(T0))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        # The fast channel is served while both slow ones are still held at the sink: an order,
        # not a time. (With concurrency 1 the fast one never arrives while a slow one is held.)
        try:
            async with asyncio.timeout(15):
                while not (
                    json_sink.arrived("/slow1") == json_sink.arrived("/slow2") == 1
                    and json_sink.received("/fast", delivered=True)
                ):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(
                "the fast channel was not served while the slow ones were held: "
                f"slow arrived {json_sink.arrived('/slow1')}+{json_sink.arrived('/slow2')}, "
                f"fast arrived {json_sink.arrived('/fast')}"
            ) from None
        assert json_sink.received("/slow1") == [] and json_sink.received("/slow2") == []
        held.set()
        async with asyncio.timeout(15):
            while store.outbox_counts() != {"delivered": 3}:
                await asyncio.sleep(0.02)
    finally:
        held.set()
        stop.set()
        await asyncio.wait_for(task, 10)
        dispatcher.close()
    assert store.outbox_counts() == {"delivered": 3}


@pytest.mark.parametrize("start_waiting", ["claimed_together", "pending_retry"])
async def test_end_while_start_pending_becomes_one_combined_notice(
    tmp_path: Path, store: Store, json_sink: JsonSink, start_waiting: str
) -> None:
    url = json_sink.url("/u1")
    start, end = started(), ended(end=T0 + timedelta(minutes=38))
    commit(store, [start], [("olena", url, "en")], T0)
    if start_waiting == "pending_retry":
        # The start failed once and waits for a retry far away when the end arrives.
        from alertd.store.sqlite import Outcome

        (item,) = store.claim_due(T0)
        store.finish([Outcome(item.id, 1, "pending", "boom", T0 + timedelta(hours=1))], T0)
    commit(store, [end], [("olena", url, "en")], end.observed_at)
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(end.observed_at))
    try:
        await dispatcher.drain(timeout=20)
    finally:
        dispatcher.close()
    (msg,) = json_sink.received("/u1")
    assert msg.title == "Air raid alert 14:03–14:41"
    assert msg.type == "success" and "now over" in msg.message
    assert store.outbox_state(start.id, url) == "superseded"
    assert store.outbox_state(end.id, url) == "delivered"


async def test_end_after_start_delivered_is_a_normal_end(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    url = json_sink.url("/u1")
    start, end = started(), ended()
    commit(store, [start], [("olena", url, "en")], T0)
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(T0))
    try:
        await dispatcher.drain(timeout=20)
        commit(store, [end], [("olena", url, "en")], dispatcher._clock())
        dispatcher.wake()
        await dispatcher.drain(timeout=20)
    finally:
        dispatcher.close()
    assert [(r.title, r.type) for r in json_sink.received("/u1")] == [
        ("Air raid alert", "failure"),
        ("All clear", "success"),
    ]


async def test_stale_start_is_dead_lettered_not_sent(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    url, ops = json_sink.url("/u1"), json_sink.url("/ops")
    old = started(at=T0 - timedelta(hours=2))
    commit(store, [old], [("olena", url, "en")], T0)
    dispatcher = Dispatcher(
        store,
        make_settings(tmp_path, operators=[ops], start_max_age=1800),
        clock=clock_from(T0),
        dead_letter_window=0.1,
    )
    try:
        await run_until(dispatcher, lambda: len(json_sink.received("/ops")) >= 1)
    finally:
        dispatcher.close()
    assert json_sink.received("/u1") == []
    assert store.outbox_state(old.id, url) == "dead"
    assert "1 channel(s)" in json_sink.received("/ops")[0].message


async def test_end_is_never_dropped(tmp_path: Path, store: Store, json_sink: JsonSink) -> None:
    json_sink.configure("/down", status=500)
    url = json_sink.url("/down")
    end = ended(end=T0)
    commit(store, [end], [("olena", url, "en")], T0)
    dispatcher = Dispatcher(
        store, make_settings(tmp_path, max_attempts=2, retry_base=0.02, retry_max=0.1), clock=clock_from(T0)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        # Far more failures than max_attempts: still pending, never dead.
        await asyncio.to_thread(json_sink.wait_for, 5, 15.0, path="/down")
        assert store.outbox_state(end.id, url) in ("pending", "sending")
        json_sink.configure("/down", status=200)  # the sink recovers
        await asyncio.to_thread(json_sink.wait_for, 1, 15.0, path="/down", delivered=True)
        async with asyncio.timeout(10):
            while store.outbox_state(end.id, url) != "delivered":
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        dispatcher.close()
    assert len(json_sink.received("/down", delivered=True)) == 1
    assert len(attempts(store, end.id, url)) >= 6


class SlowWrites(Store):
    """A store whose outcome writes take a while (a busy disk), counting the outcomes written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written = 0

    def finish(self, outcomes: Iterable[Outcome], now: datetime) -> None:
        outcomes = list(outcomes)
        threading.Event().wait(0.05)
        super().finish(outcomes, now)
        self.written += len(outcomes)


async def test_a_kill_can_repeat_at_most_concurrency_sends(tmp_path: Path, json_sink: JsonSink) -> None:
    """Sends finished but not yet recorded count against ``delivery.concurrency`` (issue 13).

    At any moment, the rows a SIGKILL would send again are those whose send began
    and whose outcome is not written yet. Each send checks that count as it begins;
    outcome writes are slow, so a dispatcher that freed a slot before the write
    would start many more sends than its concurrency.
    """
    concurrency = 3
    store = SlowWrites(tmp_path / "state.sqlite")
    routes = [(f"s{i}", json_sink.url(f"/u{i}"), "en") for i in range(40)]
    commit(store, [started()], routes, T0)
    lock = threading.Lock()
    began = 0
    unrecorded: list[int] = []

    def send(*_args: object, **_kwargs: object) -> SendResult:
        nonlocal began
        with lock:
            began += 1
            unrecorded.append(began - store.written)
        return SendResult(True)

    sender = Sender(concurrency, send=send)
    dispatcher = Dispatcher(
        store, make_settings(tmp_path, concurrency=concurrency), sender=sender, clock=clock_from(T0)
    )
    try:
        await dispatcher.drain(timeout=60)
    finally:
        dispatcher.close()
        store.close()
    assert began == 40 and store.written == 40
    assert max(unrecorded) <= concurrency, unrecorded


async def test_rows_in_flight_at_a_stop_are_sent_again(
    tmp_path: Path, store: Store, json_sink: JsonSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = json_sink.url("/u1")
    commit(store, [started()], [("olena", url, "en")], T0)
    assert len(store.claim_due(T0)) == 1  # a previous process claimed it and was killed
    assert store.outbox_counts() == {"sending": 1}
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(T0))
    try:
        await run_until(dispatcher, lambda: store.outbox_counts() == {"delivered": 1})
    finally:
        dispatcher.close()
    assert len(json_sink.received("/u1")) == 1
    assert "deliveries were in flight at the last stop; sending again count=1" in [
        log_line(r) for r in caplog.records
    ]


async def test_send_test_reports_real_outcomes(tmp_path: Path, store: Store, json_sink: JsonSink) -> None:
    json_sink.configure("/missing", status=404)
    good, bad = json_sink.url("/good"), json_sink.url("/missing")
    results = await send_test(make_settings(tmp_path), [good, bad, "nonsense://x"], "en")
    (g_name, g_ok, _), (b_name, b_ok, b_detail), (n_name, n_ok, n_detail) = results
    assert n_name == "nonsense://****"
    assert (g_name, g_ok) == (mask(good), True)
    assert (b_name, b_ok) == (mask(bad), False) and "404" in b_detail
    assert n_ok is False and "cannot load" in n_detail
    (msg,) = json_sink.received("/good")
    assert "test" in msg.title.lower() and "not an alert" in msg.message
    assert store.outbox_counts() == {}  # not through the outbox


def test_retry_backoff_is_exponential_capped_and_never_sooner_than_half() -> None:
    assert retry_delay(1, 2.0, 300.0, rand=lambda: 0.0) == 1.0
    assert retry_delay(1, 2.0, 300.0, rand=lambda: 1.0) == 2.0
    assert retry_delay(3, 2.0, 300.0, rand=lambda: 0.5) == 6.0
    assert retry_delay(20, 2.0, 300.0, rand=lambda: 1.0) == 300.0
    assert 1.0 <= retry_delay(1, 2.0, 300.0) <= 2.0


async def test_end_waits_while_its_start_is_in_flight(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    from alertd.store.sqlite import Outcome

    url = json_sink.url("/u1")
    start, end = started(), ended(end=T0 + timedelta(minutes=1))
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(T0))
    await dispatcher.drain(timeout=20)  # start-up pass done: 'sending' rows from now on are in flight
    commit(store, [start], [("olena", url, "en")], T0)
    (item,) = store.claim_due(T0)  # the start is being sent right now
    commit(store, [end], [("olena", url, "en")], T0)
    try:
        await dispatcher.drain(timeout=20)
        assert json_sink.received("/u1") == []  # not before its start
        assert store.outbox_state(end.id, url) == "pending"
        store.finish([Outcome(item.id, 1, "delivered")], T0)  # the start went out
        await run_until(dispatcher, lambda: store.outbox_state(end.id, url) == "delivered")
    finally:
        dispatcher.close()
    ((title, kind),) = [(r.title, r.type) for r in json_sink.received("/u1")]
    assert (title, kind) == ("All clear", "success")


async def test_operator_notices_are_rate_limited(json_sink: JsonSink) -> None:
    from alertd.core.clock import FakeClock
    from alertd.run.operators import OperatorNotifier

    clock = FakeClock()
    ops = OperatorNotifier([json_sink.url("/ops")], "en", clock=clock)
    since = T0 - timedelta(minutes=12)
    assert await ops.source_down("alerts_in_ua", since, "HTTP 503", 300, now=T0)
    assert not await ops.source_down("alerts_in_ua", since, "HTTP 503", 300, now=T0)  # same outage
    assert await ops.source_down("ukrainealarm", since, "timeout", 300, now=T0)  # another subject
    assert await ops.source_recovered("alerts_in_ua", 900)
    clock.advance(601)
    assert await ops.source_down("alerts_in_ua", since, "HTTP 503", 300, now=T0)  # window passed
    titles = [r.title for r in json_sink.received("/ops")]
    assert titles == [
        "alertd: source alerts_in_ua is down",
        "alertd: source ukrainealarm is down",
        "alertd: source alerts_in_ua recovered",
        "alertd: source alerts_in_ua is down",
    ]
    assert "12 min" in json_sink.received("/ops")[0].message
    assert not await OperatorNotifier([]).notify("t", "b")  # no URLs: nothing to do


class FlakyStore(Store):
    """A real store whose outbox reads and writes fail while ``broken`` is set (a full disk, a lock)."""

    broken = False

    def _check(self) -> None:
        if self.broken:
            raise StoreError("database or disk is full", cause="database or disk is full")

    def claim_due(self, now: datetime, limit: int = 500):  # type: ignore[no-untyped-def]
        self._check()
        return super().claim_due(now, limit)

    def finish(self, outcomes, now):  # type: ignore[no-untyped-def]
        self._check()
        return super().finish(outcomes, now)


async def test_a_store_outage_is_survived_and_reported_to_health(
    tmp_path: Path, json_sink: JsonSink, caplog: pytest.LogCaptureFixture
) -> None:
    from alertd.store.runner import StoreHealth

    caplog.set_level(logging.INFO)
    store = FlakyStore(tmp_path / "flaky.sqlite")
    health = StoreHealth()
    urls = [json_sink.url(f"/u{i}") for i in range(5)]
    dispatcher = Dispatcher(store, make_settings(tmp_path), clock=clock_from(T0), store_health=health)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.sleep(0.05)
        store.broken = True  # the disk fills up
        commit_store = Store(tmp_path / "flaky.sqlite")  # the daemon's write still lands (space freed later)
        commit(commit_store, [started()], [(f"s{i}", u, "en") for i, u in enumerate(urls)], T0)
        commit_store.close()
        dispatcher.wake()
        async with asyncio.timeout(15):
            while health.problem() is None:
                await asyncio.sleep(0.02)
        problem = health.problem()
        assert (
            problem is not None
            and "disk is full" in problem["reason"]
            and problem["writers"] == ["dispatcher"]
        )
        assert not task.done()  # a condition, not a death
        store.broken = False  # space is back
        async with asyncio.timeout(20):
            while store.outbox_counts() != {"delivered": 5}:
                assert not task.done()
                await asyncio.sleep(0.05)
        assert health.problem() is None
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        dispatcher.close()
        store.close()
    assert [len(json_sink.received(f"/u{i}")) for i in range(5)] == [1] * 5
    assert caplog.text.count("state store cannot be written") == 1  # once per outage, not per retry
    assert "state store writable again" in caplog.text


async def test_a_stop_waits_for_sends_in_flight_and_records_them(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    """SIGTERM during slow sends: they finish (within the timeout) and are recorded, so nothing repeats."""
    for i in range(6):
        json_sink.configure(f"/slow{i}", delay=1.0)
    urls = [json_sink.url(f"/slow{i}") for i in range(6)]
    commit(store, [started()], [(f"s{i}", u, "en") for i, u in enumerate(urls)], T0)
    dispatcher = Dispatcher(store, make_settings(tmp_path, timeout=10.0), clock=clock_from(T0))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        async with asyncio.timeout(15):
            while store.outbox_counts().get("sending", 0) < 6:
                await asyncio.sleep(0.01)
        stop.set()  # a clean stop while every send is waiting for its answer
        await asyncio.wait_for(task, 20)
    finally:
        stop.set()
        dispatcher.close()
    assert store.outbox_counts() == {"delivered": 6}
    assert store.requeue_inflight() == 0  # a restart would send nothing again


async def test_a_fan_out_larger_than_the_channel_cache_reaches_everyone_once_in_order(
    tmp_path: Path, store: Store, json_sink: JsonSink
) -> None:
    """Loaded channels are a bounded LRU (at least 4 claim windows: 256 here): channels dropped
    from it are loaded again, never skipped, and a retried channel still gets its one delivery."""
    json_sink.configure("/r7", fail_first=1, fail_status=500)
    urls = [json_sink.url(f"/r{i}") for i in range(300)]
    routes = [(f"resident{i}", url, "en") for i, url in enumerate(urls)]
    commit(store, [started()], routes, T0)
    dispatcher = Dispatcher(store, make_settings(tmp_path, channel_cache=64), clock=clock_from(T0))
    bound = 4 * dispatcher.sender.concurrency
    assert bound < len(urls)
    try:
        await run_until(dispatcher, lambda: store.outbox_counts().get("delivered") == 300, timeout=60)
        assert len(dispatcher._channels) <= bound
        commit(store, [ended()], routes, T0)  # due at once on the dispatcher's clock
        dispatcher.wake()
        await run_until(dispatcher, lambda: store.outbox_counts().get("delivered") == 600, timeout=60)
        assert len(dispatcher._channels) <= bound
    finally:
        dispatcher.close()
    for i in range(300):
        got = [(r.status, r.type) for r in json_sink.received(f"/r{i}")]
        expected = [(200, "failure"), (200, "success")]
        assert got == ([(500, "failure"), *expected] if i == 7 else expected), i


def test_the_channel_cache_size_is_the_operators_choice(tmp_path: Path, store: Store) -> None:
    """``[delivery] channel_cache``: a city that prefers speed to megabytes keeps every channel loaded."""
    big = Dispatcher(store, make_settings(tmp_path, channel_cache=20_000), clock=clock_from(T0))
    small = Dispatcher(store, make_settings(tmp_path, channel_cache=64), clock=clock_from(T0))
    try:
        assert big._channels._size == 20_000
        assert small._channels._size == 4 * small.sender.concurrency  # never below 4 claim windows
    finally:
        big.close()
        small.close()
    with pytest.raises(ValidationError, match="channel_cache"):
        DeliveryConfig(channel_cache=10)
