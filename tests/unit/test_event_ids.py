"""Event ids follow from upstream and stored facts, never from which process saw an alert when.

Two processes (or one before and after a restart) that load the same stored state
and then see the same upstream report must mint the same ids, whatever their
clocks say at that poll: the id is the dedup key that makes a second sighting a replay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertd.core.model import ActiveAlert, AlertKind, EventStatus, Region, RegionLevel, Snapshot
from alertd.core.tracker import TrackerPolicy, TrackerState, apply_snapshot

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=2, suspicious_drop=0)
ALERT = ActiveAlert(source_id="31", kind=AlertKind.AIR_RAID, region=KYIV, started_at=T0)


def step(state: TrackerState, now: datetime, *alerts: ActiveAlert) -> tuple[TrackerState, list]:
    result = apply_snapshot(state, Snapshot(source="a", alerts=alerts), now, POLICY)
    return result.state, result.events


def history() -> tuple[TrackerState, str]:
    """Baseline, the alert starts, is gone for two polls (ended): the state every process loads,
    and the id of that first start."""
    state, _ = step(TrackerState(), T0 - timedelta(seconds=10))
    state, started = step(state, T0 + timedelta(seconds=10), ALERT)
    state, _ = step(state, T0 + timedelta(seconds=20))
    state, events = step(state, T0 + timedelta(seconds=30))
    assert [e.status for e in events] == [EventStatus.ENDED]
    return state, started[0].id


def test_a_returning_alert_gets_the_same_ids_whoever_sees_it_and_when() -> None:
    stored, first_start = history()
    # the upstream brings the alert back with its old start time; two processes poll at different moments
    _, seen_by_a = step(stored, T0 + timedelta(minutes=5), ALERT)
    _, seen_by_b = step(stored, T0 + timedelta(minutes=5, seconds=7), ALERT)
    assert [e.status for e in seen_by_a] == [EventStatus.STARTED]
    assert [e.id for e in seen_by_a] == [e.id for e in seen_by_b]
    # a new start (not a replay of the first one), running since the all-clear was recorded
    assert seen_by_a[0].id != first_start
    assert seen_by_a[0].started_at == T0 + timedelta(seconds=20)


def test_its_end_id_is_the_same_too() -> None:
    stored, _ = history()
    ids = []
    for offset in (0, 3):
        state, _ = step(stored, T0 + timedelta(minutes=5, seconds=offset), ALERT)
        state, _ = step(state, T0 + timedelta(minutes=6, seconds=offset))
        state, events = step(state, T0 + timedelta(minutes=6, seconds=10 + offset))
        ids.append([(e.status, e.id) for e in events])
    assert ids[0] == ids[1] and ids[0][0][0] == EventStatus.ENDED
