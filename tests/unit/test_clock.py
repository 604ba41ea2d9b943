"""The clock-step rules: what counts as a step, the monotonic trigger, hold timers shifted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertd.core.model import AlertKind, Region, RegionLevel
from alertd.core.tracker import SourceEntry, TrackerState, shift_clock
from alertd.run.clock import ClockWatch, MonotonicInterval, describe_step

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class FakeClocks:
    def __init__(self) -> None:
        self.wall = 1_000_000.0
        self.mono = 50.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def test_steady_clocks_are_no_step_and_small_drift_is_ignored() -> None:
    c = FakeClocks()
    watch = ClockWatch(wall=lambda: c.wall, mono=lambda: c.mono)
    c.advance(10)
    assert watch.check() == 0.0
    c.wall += 0.5  # NTP slewing, not a step
    assert watch.check() == 0.0


@pytest.mark.parametrize("step", [-3600.0, 3 * 3600.0, 5.0])
def test_a_step_is_reported_once_with_its_sign(step: float) -> None:
    c = FakeClocks()
    watch = ClockWatch(wall=lambda: c.wall, mono=lambda: c.mono)
    c.advance(1)
    c.wall += step
    assert watch.check() == pytest.approx(step)
    c.advance(1)
    assert watch.check() == 0.0  # the new offset is the baseline now


def test_monotonic_interval_counts_from_now_not_from_the_previous_wall_time() -> None:
    trigger = MonotonicInterval(10)
    now = T0
    # a previous run one hour "in the future" (the clock was stepped back): still 10 s from now
    assert trigger.get_next_fire_time(now + timedelta(hours=1), now) == now + timedelta(seconds=10)
    # a previous run three hours ago (stepped forward): no catch-up burst, 10 s from now
    assert trigger.get_next_fire_time(now - timedelta(hours=3), now) == now + timedelta(seconds=10)
    jittered = MonotonicInterval(10, jitter=2).get_next_fire_time(None, now)
    assert jittered is not None and now + timedelta(seconds=10) <= jittered <= now + timedelta(seconds=12)
    with pytest.raises(ValueError):
        MonotonicInterval(0)


def test_shift_clock_keeps_hold_timers_true_and_upstream_times_untouched() -> None:
    region = Region(code="UA-32", level=RegionLevel.OBLAST, name_uk="Київська область")
    held = SourceEntry(
        region=region, kind=AlertKind.AIR_RAID, source_id="1", started_at=T0, missing=1, missing_since=T0
    )
    present = SourceEntry(region=region, kind=AlertKind.MISSILES, source_id="2", started_at=T0)
    state = TrackerState(entries={"oref": {held.key: held, present.key: present}})
    shifted = shift_clock(state, timedelta(hours=3))
    entries = shifted.entries["oref"]
    assert entries[held.key].missing_since == T0 + timedelta(hours=3)
    assert entries[held.key].started_at == T0
    assert entries[present.key] == present


def test_describe_step() -> None:
    assert describe_step(3600) == "1h00m00s"
    assert describe_step(14_405) == "4h00m05s"
    assert describe_step(125) == "2m05s"
    assert describe_step(3) == "3s"
