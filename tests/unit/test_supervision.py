"""run/app.supervised: a dead dispatcher task is restarted with a log line, and stops with the process."""

from __future__ import annotations

import asyncio

import pytest

from alertd.logs import fields_of
from alertd.run.app import supervised


async def test_a_task_that_dies_is_restarted_until_stop(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    stop = asyncio.Event()

    async def flaky(stop_event: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("store exploded")
        if len(runs) == 2:
            return  # returned without being asked to stop
        await stop_event.wait()

    task = asyncio.create_task(supervised("dispatcher", flaky, first_delay=0.01)(stop))
    async with asyncio.timeout(10):
        while len(runs) < 3:
            await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(runs) == 3
    lines = [(r.getMessage(), fields_of(r)) for r in caplog.records]
    assert any(m == "task died; restarting" and "store exploded" in str(f.get("error")) for m, f in lines)
    assert ("task stopped by itself; restarting", {"task": "dispatcher", "retry_in": 0.02}) in lines
