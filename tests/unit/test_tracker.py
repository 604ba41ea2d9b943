"""The tracker's promises (DESIGN §3), as examples and as properties over random timelines."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.core.model import ActiveAlert, AlertKind, EventStatus, Notice, Region, RegionLevel, Snapshot
from alertd.core.tracker import TrackerPolicy, TrackerState, apply_snapshot, diff_notices

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REGIONS = {
    code: Region(code=code, level=RegionLevel.OBLAST, name_uk=name, name_en=name, oblast=code)
    for code, name in [("UA-30", "Київ"), ("UA-32", "Київська область"), ("UA-63", "Харківська область")]
}
KINDS = [AlertKind.AIR_RAID, AlertKind.ARTILLERY]
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=2, suspicious_drop=0)


def alert(code: str, kind: AlertKind = AlertKind.AIR_RAID, started: datetime | None = T0) -> ActiveAlert:
    return ActiveAlert(source_id=f"{code}:{kind}", kind=kind, region=REGIONS[code], started_at=started)


def snap(source: str, *alerts: ActiveAlert, ended: tuple[ActiveAlert, ...] = ()) -> Snapshot:
    return Snapshot(source=source, alerts=alerts, ended=ended)


def run(state: TrackerState, snapshots: list[Snapshot], policy: TrackerPolicy = POLICY, start: datetime = T0):
    events = []
    for i, s in enumerate(snapshots):
        step = apply_snapshot(state, s, start + timedelta(seconds=10 * i), policy)
        state = step.state
        events.extend(step.events)
    return state, events


def statuses(events):
    return [(e.status.value, e.region.code, e.kind.value) for e in events]


def baseline(source: str = "a") -> TrackerState:
    """A state where ``source`` already had its first (empty) poll, so changes are announced."""
    return run(TrackerState(), [snap(source)])[0]


def test_start_then_end_needs_two_good_polls_without_the_alert():
    state, events = run(baseline(), [snap("a", alert("UA-30")), snap("a")])
    assert statuses(events) == [("started", "UA-30", "air_raid")]
    state, more = run(state, [snap("a")])
    assert statuses(more) == [("ended", "UA-30", "air_raid")]
    assert not state.active


def test_end_time_is_the_first_poll_without_the_alert():
    _, events = run(baseline(), [snap("a", alert("UA-30")), snap("a"), snap("a")], start=T0)
    ended = next(e for e in events if e.status == EventStatus.ENDED)
    assert ended.ended_at == T0 + timedelta(seconds=10)
    assert ended.started_at == T0


def test_a_flap_shorter_than_confirmation_is_one_alert():
    _, events = run(baseline(), [snap("a", alert("UA-30")), snap("a"), snap("a", alert("UA-30"))])
    assert statuses(events) == [("started", "UA-30", "air_raid")]


def test_first_poll_of_fresh_install_records_without_announcing():
    state, events = run(TrackerState(), [snap("a", alert("UA-30", started=T0 - timedelta(hours=1)))])
    assert events == []
    active = state.active[("UA-30", AlertKind.AIR_RAID)]
    assert active.started_at == T0 - timedelta(hours=1)  # the source's own start time
    assert not active.announced
    # its end is still announced: an all-clear is always worth hearing
    _, events = run(state, [snap("a"), snap("a")])
    assert statuses(events) == [("ended", "UA-30", "air_raid")]


def test_announce_existing_switch():
    policy = TrackerPolicy(announce_existing=True, end_confirmations=2, suspicious_drop=0)
    _, events = run(TrackerState(), [snap("a", alert("UA-30"))], policy)
    assert statuses(events) == [("started", "UA-30", "air_raid")]


def test_two_sources_give_one_start_and_one_end():
    state = run(TrackerState(), [snap("a"), snap("b")])[0]
    state, events = run(
        state, [snap("a", alert("UA-30")), snap("b", alert("UA-30", started=T0 + timedelta(seconds=3)))]
    )
    assert statuses(events) == [("started", "UA-30", "air_raid")]
    assert events[0].source == "a"
    # a stops reporting: b still does, so no end
    state, events = run(state, [snap("a"), snap("a"), snap("a")])
    assert events == []
    state, events = run(state, [snap("b"), snap("b")])
    assert statuses(events) == [("ended", "UA-30", "air_raid")]


def test_explicit_end_record_ends_at_once():
    state, _ = run(baseline(), [snap("a", alert("UA-30"))])
    end = alert("UA-30").model_copy(update={"ended_at": T0 + timedelta(minutes=5)})
    state, events = run(state, [snap("a", ended=(end,))])
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert events[0].ended_at == T0 + timedelta(minutes=5)


def test_suspicious_drop_to_zero_is_held_until_it_repeats():
    policy = TrackerPolicy(end_confirmations=2, suspicious_drop=3)
    many = [alert(c, k) for c in REGIONS for k in KINDS]
    state, _ = run(baseline(), [snap("a", *many)], policy)
    step = apply_snapshot(state, snap("a"), T0, policy)
    assert step.events == [] and step.notes and "suspicious" in step.notes[0].message
    assert step.notes[0].fields == {"source": "a", "had": len(many)}
    assert step.state.entries == state.entries  # nothing moved towards an end
    state, events = run(step.state, [snap("a"), snap("a")], policy)
    assert len([e for e in events if e.status == EventStatus.ENDED]) == len(many)


def test_same_key_twice_in_one_payload_is_one_alert():
    _, events = run(
        baseline(), [snap("a", alert("UA-30", started=T0), alert("UA-30", started=T0 - timedelta(minutes=1)))]
    )
    assert len(events) == 1 and events[0].started_at == T0 - timedelta(minutes=1)


def test_event_ids_are_stable_for_replays():
    _s1, e1 = run(baseline(), [snap("a", alert("UA-30"))])
    _, e2 = run(baseline(), [snap("a", alert("UA-30"))])
    assert [e.id for e in e1] == [e.id for e in e2]


# --- item feeds ------------------------------------------------------------------------------
def notice(nid: str, title: str = "Security alert", msg_type: str | None = None) -> Notice:
    return Notice(source="emb", id=nid, title=title, url=f"https://x/{nid}", msg_type=msg_type)


def test_item_feed_dedupes_by_id_and_content_hash():
    items = [notice("1"), notice("2", "Demonstration alert")]
    events, remember, notes = diff_notices("emb", items, {}, set(), baseline=True, now=T0, policy=POLICY)
    assert events == [] and len(remember) == 2 and notes
    known = dict(remember)
    hashes = set(known.values())
    items.append(notice("3", "Shelter in place"))
    items.append(notice("2-republished", "Demonstration alert").model_copy(update={"url": "https://x/2"}))
    events, remember, _ = diff_notices("emb", items, known, hashes, baseline=False, now=T0, policy=POLICY)
    assert [(e.status.value, e.headline) for e in events] == [("issued", "Shelter in place")]
    known.update(remember)
    changed = [notice("3", "Shelter in place — updated")]
    events, _, _ = diff_notices(
        "emb", changed, known, set(known.values()), baseline=False, now=T0, policy=POLICY
    )
    assert [e.status.value for e in events] == ["updated"]


def test_cap_cancel_yields_cancelled():
    events, _, _ = diff_notices(
        "cap", [notice("c1", msg_type="Cancel")], {}, set(), baseline=False, now=T0, policy=POLICY
    )
    assert [e.status for e in events] == [EventStatus.CANCELLED]


# --- properties ------------------------------------------------------------------------------
KEYS = [(c, k) for c in REGIONS for k in KINDS]
poll = st.one_of(st.none(), st.frozensets(st.sampled_from(KEYS), max_size=len(KEYS)))  # None: a failed poll


def _snapshot(source: str, keys: frozenset) -> Snapshot:
    return snap(source, *(alert(c, k) for c, k in sorted(keys)))


@settings(max_examples=300, deadline=None)
@given(st.lists(poll, min_size=1, max_size=30))
def test_property_single_source_timeline(timeline):
    state = TrackerState()
    events = []
    history: list[frozenset] = []  # good polls only: failed polls never reach the tracker
    first = True
    for i, keys in enumerate(timeline):
        if keys is None:
            continue
        step = apply_snapshot(state, _snapshot("a", keys), T0 + timedelta(seconds=i), POLICY)
        if first:
            assert step.events == []  # no flood on start-up
            first = False
        for e in step.events:
            key = (e.region.code, e.kind)
            if e.status == EventStatus.ENDED:
                # an end needs the last two good polls (this one included) without the alert
                assert key not in keys and len(history) >= 1 and key not in history[-1]
            if e.status == EventStatus.STARTED:
                assert key in keys
        history.append(keys)
        state = step.state
        events.extend(step.events)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "an event was emitted twice"
    # per key, events alternate start/end (an end may come first for a baseline alert)
    per_key: dict = {}
    for e in events:
        per_key.setdefault((e.region.code, e.kind), []).append(e.status)
    for seq in per_key.values():
        for a, b in itertools.pairwise(seq):
            assert a != b
    # whatever is active now was reported by the last good poll or is within its confirmation window
    if history:
        recent = history[-1] | (history[-2] if len(history) > 1 else frozenset())
        assert set(state.active) <= recent


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), poll), min_size=1, max_size=40))
def test_property_two_sources_never_end_while_one_still_reports(timeline):
    state = run(TrackerState(), [snap("a"), snap("b")])[0]
    last: dict[str, frozenset] = {"a": frozenset(), "b": frozenset()}
    open_keys: set = set()
    for i, (source, keys) in enumerate(timeline):
        if keys is None:
            continue
        step = apply_snapshot(state, _snapshot(source, keys), T0 + timedelta(seconds=i), POLICY)
        last[source] = keys
        for e in step.events:
            key = (e.region.code, e.kind)
            if e.status == EventStatus.STARTED:
                assert key not in open_keys, "second start for an alert already active"
                open_keys.add(key)
            elif e.status == EventStatus.ENDED:
                assert key in open_keys
                assert all(key not in last[s] for s in last), "ended while a source still reports it"
                open_keys.discard(key)
        state = step.state
    assert open_keys == set(state.active)


def test_pulse_feed_ends_only_on_its_end_record_or_after_the_hold():
    policy = TrackerPolicy(end_confirmations=2, suspicious_drop=0, explicit_end_hold=600)
    state, _ = run(baseline(), [snap("a", alert("UA-30"))], policy)
    # gone from the live list for five polls: still active (people stay in shelter)
    state, events = run(state, [snap("a")] * 5, policy, start=T0 + timedelta(seconds=10))
    assert events == [] and state.active
    # the end record ends it at once
    end = alert("UA-30").model_copy(update={"ended_at": T0 + timedelta(minutes=3)})
    _, events = run(state, [snap("a", ended=(end,))], policy, start=T0 + timedelta(minutes=3))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    # without an end record: after the hold, from the first poll without it
    _, events = run(state, [snap("a")], policy, start=T0 + timedelta(seconds=10 + 601))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert events[0].ended_at == T0 + timedelta(seconds=10)


def test_silent_sources_do_not_hold_an_alert_open():
    """A source that is down (or gone from the config) must not block the all-clear of a live one."""
    state = run(TrackerState(), [snap("a"), snap("b")])[0]
    state, events = run(state, [snap("a", alert("UA-30")), snap("b", alert("UA-30"))])
    assert statuses(events) == [("started", "UA-30", "air_raid")]
    # b falls silent still reporting the alert; a confirms the end
    step1 = apply_snapshot(state, snap("a"), T0, POLICY, frozenset({"b"}))
    step2 = apply_snapshot(step1.state, snap("a"), T0 + timedelta(seconds=10), POLICY, frozenset({"b"}))
    assert statuses(step2.events) == [("ended", "UA-30", "air_raid")]
    # without the hint, b's last report keeps it open (no false all-clear from one source)
    step2 = apply_snapshot(step1.state, snap("a"), T0 + timedelta(seconds=10), POLICY)
    assert step2.events == []
