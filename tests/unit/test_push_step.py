"""A pushed region state as a tracker step (alertd.core.push) and as the daemon applies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alertd.config import Settings, SourceConfig
from alertd.core.model import ActiveAlert, AlertKind, EventStatus, Region, RegionLevel, Snapshot
from alertd.core.push import apply_push
from alertd.core.regions import RegionRegistry
from alertd.core.tracker import TrackerPolicy, TrackerState, apply_snapshot
from alertd.errors import StoreError
from alertd.run.daemon import Daemon
from alertd.store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")
LVIV = Region(code="UA-46", level=RegionLevel.OBLAST, name_uk="Львів", name_en="Lviv", oblast="UA-46")
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=2, suspicious_drop=0)


def snap(*regions: Region) -> Snapshot:
    return Snapshot(
        source="ua",
        alerts=tuple(
            ActiveAlert(source_id=r.code, kind=AlertKind.AIR_RAID, region=r, started_at=T0) for r in regions
        ),
    )


def polled(*snapshots: Snapshot) -> TrackerState:
    state = TrackerState()
    for i, s in enumerate(snapshots):
        state = apply_snapshot(state, s, T0 + timedelta(seconds=10 * i), POLICY).state
    return state


def test_a_push_starts_what_the_polls_have_not_seen_and_never_ends_anything() -> None:
    state = polled(snap(), snap(KYIV))
    step = apply_push(state, snap(LVIV), T0 + timedelta(seconds=30))  # Kyiv absent from the push
    assert [(e.status, e.region.code) for e in step.events] == [(EventStatus.STARTED, "UA-46")]
    assert set(step.state.active) == {("UA-30", AlertKind.AIR_RAID), ("UA-46", AlertKind.AIR_RAID)}
    # Kyiv's entry is untouched: no missing count from a push
    assert step.state.entries["ua"][("UA-30", AlertKind.AIR_RAID)].missing == 0
    empty = apply_push(step.state, snap(), T0 + timedelta(seconds=40))
    assert empty.events == [] and empty.state is step.state
    # the next real polls without Lviv end it, as any alert: a false start is the cheap mistake
    after = apply_snapshot(step.state, snap(KYIV), T0 + timedelta(seconds=50), POLICY)
    after = apply_snapshot(after.state, snap(KYIV), T0 + timedelta(seconds=60), POLICY)
    assert [(e.status, e.region.code) for e in after.events] == [(EventStatus.ENDED, "UA-46")]


def test_a_push_before_the_first_poll_changes_nothing() -> None:
    step = apply_push(TrackerState(), snap(KYIV), T0)
    assert step.events == [] and not step.source_changed and step.state == TrackerState()


def test_a_push_the_store_refuses_is_logged_and_changes_nothing(tmp_path: Path) -> None:
    class Refusing(SQLiteStore):
        def commit_step(self, *args: object, polled: bool = True, **kwargs: object):  # type: ignore[override]
            if not polled:
                raise StoreError("source ua is polled by another instance now")
            return super().commit_step(*args, **kwargs)  # type: ignore[arg-type]

    import asyncio

    store = Refusing(tmp_path / "alertd.sqlite3")
    try:
        daemon = Daemon(Settings(state_dir=tmp_path), RegionRegistry.load(), store)
        daemon.state = polled(snap())
        cfg = SourceConfig(name="ua", type="ukrainealarm", token="t")
        before = daemon.state
        assert asyncio.run(daemon.push(cfg, snap(KYIV), 0.0)) == []
        assert daemon.state is before and store.events() == []
    finally:
        store.close()


def test_a_push_of_an_alert_this_source_confirmed_over_holds_it_again() -> None:
    """ua confirmed the Kyiv alert over while another source held it open; a push from ua
    reporting it again is ua saying "alert" again: it holds it again, announces nothing."""
    key = ("UA-30", AlertKind.AIR_RAID)
    state = polled(snap(), snap(KYIV))
    other = Snapshot(source="aiu", alerts=snap(KYIV).alerts)
    state = apply_snapshot(state, Snapshot(source="aiu"), T0, POLICY).state  # aiu's baseline
    state = apply_snapshot(state, other, T0 + timedelta(seconds=30), POLICY).state
    for i in range(2):
        state = apply_snapshot(state, snap(), T0 + timedelta(seconds=40 + 10 * i), POLICY).state
    assert state.entries["ua"][key].confirmed_over is not None
    step = apply_push(state, snap(KYIV), T0 + timedelta(seconds=60))
    assert step.events == [] and step.source_changed
    assert step.state.entries["ua"][key].holds
