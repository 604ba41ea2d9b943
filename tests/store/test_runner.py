"""StoreRunner (store calls off the event loop, transient failures retried) and StoreHealth
(one outage: logged once, reported once, recovered once)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from alertd.errors import StoreError
from alertd.store.runner import StoreHealth, StoreRunner


async def test_calls_run_on_one_store_thread_not_the_loop() -> None:
    runner = StoreRunner()
    loop_thread = threading.get_ident()
    try:
        threads = await asyncio.gather(*(runner.call(threading.get_ident) for _ in range(5)))
        assert len(set(threads)) == 1 and loop_thread not in threads
        assert await runner.call(lambda a, *, b: a + b, 2, b=3) == 5
    finally:
        runner.close()


async def test_the_loop_keeps_running_while_the_store_thread_waits() -> None:
    runner = StoreRunner()
    release = threading.Event()
    try:
        blocked = asyncio.ensure_future(runner.call(release.wait, 30))
        ticks = 0
        while ticks < 3:  # the loop is free: these sleeps complete while the call blocks
            await asyncio.sleep(0.01)
            ticks += 1
        assert not blocked.done()
        release.set()
        assert await blocked is True
    finally:
        release.set()
        runner.close()


async def test_transient_errors_are_retried_and_others_are_not() -> None:
    runner = StoreRunner(retries=3, retry_pause=0.001)
    calls: list[str] = []

    def locked_twice() -> str:
        calls.append("x")
        if len(calls) <= 2:
            raise StoreError("database is locked", cause="database is locked", transient=True)
        return "written"

    def full() -> None:
        calls.append("full")
        raise StoreError("database or disk is full", cause="database or disk is full")

    try:
        assert await runner.call(locked_twice) == "written" and len(calls) == 3
        calls.clear()
        with pytest.raises(StoreError, match="full"):
            await runner.call(full)
        assert calls == ["full"]
    finally:
        runner.close()


def test_one_outage_is_reported_once_and_recovers_when_every_writer_has() -> None:
    now = [100.0]
    outages: list[str] = []
    recoveries: list[float] = []
    health = StoreHealth(lambda: now[0], on_outage=outages.append, on_recovery=recoveries.append)
    full = StoreError("x", cause="database or disk is full")
    assert health.writable and health.problem() is None
    assert health.failed("poll", full) is True
    assert health.failed("poll", full) is False
    assert health.failed("dispatch", full) is False
    assert outages == ["database or disk is full"]
    now[0] = 130.0
    problem = health.problem()
    assert problem is not None and problem["cause"] == "database or disk is full"
    assert problem["writers"] == ["dispatch", "poll"] and problem["failing_seconds"] == 30.0
    assert health.recovered("poll") is None  # the dispatcher still cannot write
    assert not health.writable and recoveries == []
    assert health.recovered("dispatch") == 30.0
    assert health.writable and health.problem() is None and recoveries == [30.0]
    assert health.recovered("dispatch") is None  # a good write outside an outage is nothing
    assert health.failed("poll", full) is True and len(outages) == 2  # a new outage is reported again
