"""The daemon reads the time from the clock it is given (alertd.core.clock), nowhere else.

Driven poll by poll against the simulated upstreams with a :class:`FakeClock` that moves
only when the test says so: a rule that depends on time (a failing source's allowance)
follows the injected clock, not the machine's. ``aiu`` is alerts.in.ua, ``ualarm``
ukrainealarm (see tests/integration/test_daemon.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, load, write_config

from alertd.config import Settings
from alertd.core.clock import FakeClock
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.run.daemon import Daemon
from alertd.store.sqlite import Store

REGISTRY = RegionRegistry.load()
KHARKIV_OBLAST = 22
#: far from the machine's clock on purpose: a stray datetime.now() would be years off
START = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN) as up:
        yield up


async def poll(daemon: Daemon) -> None:
    for cfg in daemon.sources:
        daemon.clear_backoff(cfg.name)
        await daemon.poll(cfg)


def statuses(store: Store) -> list[str]:
    return [str(e.status) for e in store.events()]


@pytest.mark.parametrize("down_for", ["within", "past"])
async def test_a_failing_sources_allowance_runs_on_the_injected_clock(
    tmp_path: Path, upstream: Upstream, down_for: str
) -> None:
    """ukrainealarm fails while alerts.in.ua clears an alert: the all-clear comes only once
    ukrainealarm has been down longer than its allowance *on the daemon's clock*; no real time
    passes in this test, and the fake dates are years from the machine's."""
    settings: Settings = load(write_config(tmp_path, upstream))
    clock = FakeClock(START)
    store = Store(settings.db_path)
    daemon = Daemon(settings, REGISTRY, store, clock=clock)
    try:
        ualarm = next(s for s in daemon.sources if s.name == "ualarm")
        await poll(daemon)  # baseline
        upstream.add_alert(KHARKIV_OBLAST, started_at=START)
        clock.advance(10)
        await poll(daemon)
        (started,) = store.events()
        assert str(started.status) == "started" and started.observed_at == clock.now()

        # ukrainealarm fails from now on; its last report still has the alert
        upstream.set_fault("http500", "ukrainealarm_status")
        upstream.set_fault("http500", "ukrainealarm")
        await poll(daemon)
        assert store.cursor("ualarm").failing_since == clock.now()
        allowance = ualarm.effective_allowance
        clock.advance(allowance - 5 if down_for == "within" else allowance + 1)

        upstream.clear_alerts()  # alerts.in.ua confirms the end over two polls
        await poll(daemon)
        await poll(daemon)
        if down_for == "within":
            assert statuses(store) == ["started"]  # ukrainealarm's word still holds it open
        else:
            assert statuses(store) == ["started", "ended"]
            assert store.events()[-1].observed_at == clock.now()  # stamped with the injected time
    finally:
        await daemon.aclose()
        store.close()


async def test_the_all_clear_comes_when_a_failing_source_passes_its_allowance_even_across_a_restart(
    tmp_path: Path, upstream: Upstream
) -> None:
    """alerts.in.ua confirms the end while ukrainealarm fails within its allowance: held open (its
    last word was "alert"). A restart and a garbage answer change nothing. Once ukrainealarm has
    been down past its allowance, alerts.in.ua's next good poll ends the alert, once — not only
    when ukrainealarm comes back."""
    settings: Settings = load(write_config(tmp_path, upstream))
    clock = FakeClock(START)
    store = Store(settings.db_path)
    daemon = Daemon(settings, REGISTRY, store, clock=clock)
    try:
        allowance = next(s for s in daemon.sources if s.name == "ualarm").effective_allowance
        await poll(daemon)  # baseline
        upstream.add_alert(KHARKIV_OBLAST, started_at=START)
        clock.advance(10)
        await poll(daemon)
        assert statuses(store) == ["started"]
        upstream.set_fault("http500", "ukrainealarm_status")
        upstream.set_fault("http500", "ukrainealarm")
        clock.advance(10)
        await poll(daemon)  # ukrainealarm's first failure; alerts.in.ua still reports the alert
        failing_since = clock.now()
        upstream.clear_alerts()
        clock.advance(10)
        await poll(daemon)
        first_miss = clock.now()
        clock.advance(10)
        await poll(daemon)  # alerts.in.ua has confirmed the end …
        clock.advance(10)
        await poll(daemon)
        assert statuses(store) == ["started"]  # … but ukrainealarm, within its allowance, holds it

        await daemon.aclose()  # a restart keeps alerts.in.ua's confirmed end
        store.close()
        store = Store(settings.db_path)
        daemon = Daemon(settings, REGISTRY, store, clock=clock)
        upstream.set_fault("garbage", "alerts_in_ua", count=1)
        clock.advance(allowance)  # ukrainealarm now down past its allowance
        assert (clock.now() - failing_since).total_seconds() > allowance
        await poll(daemon)  # alerts.in.ua answers garbage: no all-clear from a failed poll
        assert statuses(store) == ["started"]
        clock.advance(10)
        await poll(daemon)
        assert statuses(store) == ["started", "ended"]
        ended = store.events()[-1]
        assert ended.ended_at == first_miss and ended.observed_at == clock.now()
        assert store.active_alerts() == []

        upstream.clear_faults()  # ukrainealarm comes back without the alert: nothing more
        for _ in range(3):
            clock.advance(10)
            await poll(daemon)
        assert statuses(store) == ["started", "ended"]
    finally:
        await daemon.aclose()
        store.close()
