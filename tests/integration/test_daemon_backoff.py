"""Poll backoff in the daemon: capped at min(60 s, 6 × interval), cut short by another source's activity.

Real SQLite file and simulated upstreams; the assertions read the daemon's own schedule
(``next_poll_hint``, monotonic) right after a poll, never elapsed time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, load, write_config

from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.run.daemon import Daemon, poll_backoff_cap
from alertd.store.sqlite import Store

REGISTRY = RegionRegistry.load()
KYIV_OBLAST = 14


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN, retry_after="30") as up:
        yield up


@pytest.fixture
async def daemon(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Daemon]:
    settings = load(write_config(tmp_path, upstream, interval=20, timeout=2))
    store = Store(settings.db_path)
    d = Daemon(settings, REGISTRY, store)
    yield d
    await d.aclose()
    store.close()


def cfg(daemon: Daemon, name: str):
    return next(s for s in daemon.sources if s.name == name)


def wait_left(daemon: Daemon, name: str) -> float:
    hint = daemon.next_poll_hint(name)
    return 0.0 if hint is None else hint - time.monotonic()


def test_cap_is_min_of_60_s_and_six_intervals() -> None:
    assert poll_backoff_cap(1) == 6
    assert poll_backoff_cap(10) == 60
    assert poll_backoff_cap(300) == 60


async def test_backoff_never_exceeds_the_cap_however_long_the_outage(
    daemon: Daemon, upstream: Upstream
) -> None:
    upstream.set_fault("http500", "alerts_in_ua")
    aiu = cfg(daemon, "aiu")
    waits = []
    for _ in range(12):  # 2**11 × 20 s would be hours without the cap
        daemon.clear_backoff("aiu")
        await daemon.poll(aiu)
        waits.append(wait_left(daemon, "aiu"))
    assert daemon.store.cursor("aiu").consecutive_failures == 12
    assert max(waits) <= poll_backoff_cap(aiu.interval) == 60
    assert any(w > 0 for w in waits)  # it does back off


async def test_activity_on_another_source_cuts_a_backoff_short(daemon: Daemon, upstream: Upstream) -> None:
    await daemon.poll_all()  # baseline of both
    upstream.set_fault("http500", "alerts_in_ua")
    aiu, ualarm = cfg(daemon, "aiu"), cfg(daemon, "ualarm")
    for _ in range(4):
        daemon.clear_backoff("aiu")
        await daemon.poll(aiu)
    assert daemon.next_poll_hint("aiu") is not None  # backing off
    # ukrainealarm reports an alert: the failing alerts.in.ua is asked again at its next tick
    upstream.add_alert(KYIV_OBLAST)
    await daemon.poll(ualarm)
    assert [str(e.status) for e in daemon.store.events()] == ["started"]
    assert daemon.next_poll_hint("aiu") is None


async def test_a_rate_limited_source_keeps_waiting_despite_activity(
    daemon: Daemon, upstream: Upstream
) -> None:
    await daemon.poll_all()
    upstream.set_fault("http429", "alerts_in_ua")  # Retry-After: 30
    await daemon.poll(cfg(daemon, "aiu"))
    assert wait_left(daemon, "aiu") > 20  # the upstream's own request is honoured
    upstream.add_alert(KYIV_OBLAST)
    await daemon.poll(cfg(daemon, "ualarm"))
    assert wait_left(daemon, "aiu") > 20
