"""Dispatch planning (alertd.run.dispatch.PlanStage, AgeClock) against an in-memory store double.

What is checked is what residents get: which rows go out, in which form, and
which are held back or given up — plus that the store is asked once per
question per claim, not once per row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from alertd.config import DeliveryConfig
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.core.priority import delivery_priority, level_of
from alertd.core.tracker import event_id
from alertd.run.dispatch import AgeClock, Job, PlanStage
from alertd.store.base import OutboxItem

T0 = datetime(2026, 1, 15, 12, 3, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.CITY, name_uk="м. Київ", name_en="Kyiv", oblast="UA-30")


def event(
    status: EventStatus, *, kind: AlertKind = AlertKind.AIR_RAID, observed: datetime = T0
) -> AlertEvent:
    return AlertEvent(
        id=event_id(KYIV.code, kind, T0, status),
        source="test",
        kind=kind,
        status=status,
        region=KYIV,
        started_at=T0,
        ended_at=T0 + timedelta(minutes=30) if status == EventStatus.ENDED else None,
        observed_at=observed,
    )


class FakeStore:
    """The store calls planning makes, counted."""

    def __init__(
        self, events: Iterable[AlertEvent] = (), states: dict[tuple[str, str], str] | None = None
    ) -> None:
        self.events = {e.id: e for e in events}
        self.states = dict(states or {})
        self.calls: Counter[str] = Counter()

    def has_event(self, event_id: str) -> bool:
        self.calls["has_event"] += 1
        return event_id in self.events

    def event(self, event_id: str) -> AlertEvent | None:
        self.calls["event"] += 1
        return self.events.get(event_id)

    def outbox_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        self.calls["outbox_states"] += 1
        return {p: self.states[p] for p in pairs if p in self.states}

    def supersede(self, event_id: str, channel: str, reason: str) -> bool:
        self.calls["supersede"] += 1
        if self.states.get((event_id, channel)) == "pending":
            self.states[(event_id, channel)] = "superseded"
            return True
        return False


def item(ev: AlertEvent, n: int, channel: str | None = None) -> OutboxItem:
    return OutboxItem(
        id=n,
        event=ev,
        subscriber=f"s{n}",
        channel=channel or f"json://h/{n}",
        language="en",
        attempts=1,
        created_at=T0,
    )


def plan(store: FakeStore, items: list[OutboxItem], now: datetime = T0, **delivery: float) -> list[Job]:
    ages = AgeClock(lambda: now)
    stage = PlanStage(store, DeliveryConfig(**delivery), ages)  # type: ignore[arg-type]
    return stage.plan([Job(i) for i in items])


def test_fresh_starts_go_out_with_one_query_for_a_whole_fanout() -> None:
    start = event(EventStatus.STARTED)
    store = FakeStore([start])
    jobs = plan(store, [item(start, n) for n in range(500)])
    assert all(j.outcome is None and j.combined_start is None for j in jobs)
    assert store.calls == Counter({"has_event": 1})


def test_an_end_fanned_out_after_its_start_asks_once() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    urls = [f"json://h/{n}" for n in range(500)]
    store = FakeStore([start, end], {(start.id, u): "delivered" for u in urls})
    jobs = plan(store, [item(end, n, u) for n, u in enumerate(urls)])
    assert all(j.outcome is None and j.combined_start is None for j in jobs)
    assert store.calls == Counter({"outbox_states": 1})


def test_a_start_whose_alert_ended_is_superseded() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    (job,) = plan(FakeStore([start, end]), [item(start, 1)])
    assert job.outcome is not None and job.outcome.state == "superseded"


def test_a_stale_start_is_dead_lettered() -> None:
    start = event(EventStatus.STARTED, observed=T0 - timedelta(hours=2))
    (job,) = plan(FakeStore([start]), [item(start, 1)], start_max_age=1800)
    assert (
        job.outcome is not None
        and job.outcome.state == "dead"
        and "120 min old" in (job.outcome.detail or "")
    )


def test_a_forward_clock_step_does_not_make_a_fresh_start_stale() -> None:
    """Observed seconds ago, then the wall clock jumps 3 h ahead: the start still goes out."""
    wall = [T0]
    mono = [1000.0]
    ages = AgeClock(lambda: wall[0], lambda: mono[0])
    start = event(EventStatus.STARTED, observed=T0)
    mono[0] += 5
    wall[0] = T0 + timedelta(hours=3, seconds=5)  # NTP steps the clock forward
    assert ages.age(start.observed_at) == 5.0
    stage = PlanStage(FakeStore([start]), DeliveryConfig(start_max_age=1800), ages)
    (job,) = stage.plan([Job(item(start, 1))])
    assert job.outcome is None
    # an event stamped after the step is measured on the new wall clock
    later = event(EventStatus.STARTED, observed=wall[0] - timedelta(seconds=2))
    assert ages.age(later.observed_at) == 2.0
    # and a backward step does not make one either
    wall[0] = T0 - timedelta(hours=1)
    mono[0] += 1
    assert ages.age(start.observed_at) == 6.0


def test_an_end_takes_its_pending_start_along() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    url = "json://h/olena"
    store = FakeStore([start, end], {(start.id, url): "pending"})
    (job,) = plan(store, [item(end, 2, url)])
    assert job.outcome is None and job.combined_start == start
    assert store.states[(start.id, url)] == "superseded"


def test_an_end_claimed_with_its_start_carries_it() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    url = "json://h/olena"
    store = FakeStore([start, end])
    s_job, e_job = plan(store, [item(start, 1, url), item(end, 2, url)])
    assert s_job.outcome is not None and s_job.outcome.state == "superseded"
    assert e_job.outcome is None and e_job.combined_start == start


def test_an_end_waits_while_its_start_is_being_sent() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    url = "json://h/olena"
    (job,) = plan(FakeStore([start, end], {(start.id, url): "sending"}), [item(end, 2, url)])
    assert job.outcome is not None and job.outcome.state == "pending" and job.outcome.retry_at is not None


def test_an_end_after_a_delivered_start_is_a_plain_end() -> None:
    start, end = event(EventStatus.STARTED), event(EventStatus.ENDED)
    url = "json://h/olena"
    (job,) = plan(FakeStore([start, end], {(start.id, url): "delivered"}), [item(end, 2, url)])
    assert job.outcome is None and job.combined_start is None


def test_priority_order() -> None:
    """Urgent starts, other starts, ends, advisories, tests; topics first within a level."""
    raid = event(EventStatus.STARTED)
    artillery = event(EventStatus.STARTED, kind=AlertKind.ARTILLERY)
    end = event(EventStatus.ENDED)
    advisory = AlertEvent(
        id="adv", source="t", kind=AlertKind.ADVISORY, status=EventStatus.ISSUED, headline="h", observed_at=T0
    )
    order = [
        delivery_priority(raid, topic=True),
        delivery_priority(raid),
        delivery_priority(artillery, topic=True),
        delivery_priority(artillery),
        delivery_priority(end, topic=True),
        delivery_priority(end),
        delivery_priority(advisory),
        delivery_priority(advisory, test=True),
    ]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert [level_of(e) for e in (raid, artillery, end, advisory)] == [0, 1, 2, 3]
