"""The tracker's promises (DESIGN §3), as examples and as properties over random timelines."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from alertd.core.model import ActiveAlert, AlertKind, EventStatus, Notice, Region, RegionLevel, Snapshot
from alertd.core.tracker import (
    TrackerPolicy,
    TrackerState,
    apply_snapshot,
    diff_notices,
    event_id,
    unchanged_snapshot,
)

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


# --- two sources, one failing: the all-clear is not delayed (the confirmed-over entry) ---------------
KYIV = ("UA-30", AlertKind.AIR_RAID)


def both_report(policy: TrackerPolicy = POLICY) -> TrackerState:
    """a and b past their baselines, both reporting the Kyiv air raid (started by a)."""
    state = run(TrackerState(), [snap("a"), snap("b")], policy)[0]
    state, events = run(state, [snap("a", alert("UA-30")), snap("b", alert("UA-30"))], policy)
    assert statuses(events) == [("started", "UA-30", "air_raid")]
    return state


def polls(
    state: TrackerState,
    source: str,
    n: int,
    *alerts: ActiveAlert,
    silent: frozenset[str] = frozenset(),
    at: datetime = T0 + timedelta(minutes=1),
    policy: TrackerPolicy = POLICY,
) -> tuple[TrackerState, list]:
    """``n`` good polls of ``source`` (10 s apart from ``at``) with ``silent`` as the daemon computes it."""
    events = []
    for i in range(n):
        step = apply_snapshot(state, snap(source, *alerts), at + timedelta(seconds=10 * i), policy, silent)
        state = step.state
        events.extend(step.events)
    return state, events


def test_a_failing_source_within_its_allowance_holds_the_alert_open():
    """b fails (its polls never reach the tracker) but is within its allowance: its "alert" counts."""
    state, events = polls(both_report(), "a", 5)
    assert events == [] and KYIV in state.active
    entry = state.entries["a"][KYIV]
    assert entry.confirmed_over == state.active[KYIV].start_event_id  # a's word is kept …
    assert entry.missing_since == T0 + timedelta(minutes=1)  # … with the end time a gave
    assert state.entries["b"][KYIV].holds


def test_the_end_comes_at_the_first_poll_after_the_failing_source_passes_its_allowance():
    """The reported bug: a confirmed the end, b fell silent later; nothing re-checked until b returned."""
    state, events = polls(both_report(), "a", 3)  # a confirms; b within its allowance
    assert events == []
    # b passes its allowance: the next poll of a (still without the alert) ends it, once
    later = T0 + timedelta(minutes=5)
    state, events = polls(state, "a", 4, silent=frozenset({"b"}), at=later)
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    (ended,) = events
    assert ended.source == "a"
    assert ended.ended_at == T0 + timedelta(minutes=1)  # a's end time, not the moment b fell silent
    assert ended.observed_at == later
    assert ended.id == event_id("UA-30", AlertKind.AIR_RAID, T0, EventStatus.ENDED)
    assert KYIV not in state.active and KYIV not in state.entries.get("a", {})


def test_the_end_is_the_same_event_whether_b_fell_silent_before_or_after_a_confirmed():
    before = polls(both_report(), "a", 2, silent=frozenset({"b"}))[1]
    state = polls(both_report(), "a", 2)[0]
    after = polls(state, "a", 1, silent=frozenset({"b"}), at=T0 + timedelta(minutes=9))[1]
    assert [(e.id, e.ended_at, e.started_at) for e in before] == [
        (e.id, e.ended_at, e.started_at) for e in after
    ]


def test_the_failing_source_recovers_still_reporting_the_alert_it_stays_open():
    state, _ = polls(both_report(), "a", 3)
    state, events = polls(state, "b", 3, alert("UA-30"), at=T0 + timedelta(minutes=5))
    assert events == []
    state, events = polls(state, "a", 3, at=T0 + timedelta(minutes=6))
    assert events == [] and KYIV in state.active
    # … and it ends when b, too, has gone two good polls without it
    state, events = polls(state, "b", 1, at=T0 + timedelta(minutes=7))
    assert events == []
    state, events = polls(state, "b", 3, at=T0 + timedelta(minutes=8))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert events[0].source == "b" and events[0].ended_at == T0 + timedelta(minutes=7)
    state, events = polls(state, "a", 2, at=T0 + timedelta(minutes=9))
    assert events == [] and not state.entries.get("a")  # a's kept word is dropped with the alert


def test_the_failing_source_recovers_without_the_alert_it_ends_after_its_confirmations():
    policy = TrackerPolicy(announce_existing=False, end_confirmations=3, suspicious_drop=0)
    state, _ = polls(both_report(policy), "a", 3, policy=policy)
    assert state.entries["a"][KYIV].confirmed_over is not None
    state, events = polls(state, "b", 2, at=T0 + timedelta(minutes=5), policy=policy)
    assert events == []  # b's own end needs end_confirmations good polls, as always
    state, events = polls(state, "b", 3, at=T0 + timedelta(minutes=6), policy=policy)
    assert statuses(events) == [("ended", "UA-30", "air_raid")]


def test_a_source_that_reports_the_alert_again_holds_it_again():
    state, _ = polls(both_report(), "a", 2)
    state, events = polls(state, "a", 1, alert("UA-30"), at=T0 + timedelta(minutes=3))
    assert events == [] and state.entries["a"][KYIV].holds
    # b silent now, but a says "alert" again: no end until a confirms once more
    state, events = polls(state, "a", 1, silent=frozenset({"b"}), at=T0 + timedelta(minutes=4))
    assert events == []
    state, events = polls(state, "a", 1, silent=frozenset({"b"}), at=T0 + timedelta(minutes=5))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert events[0].ended_at == T0 + timedelta(minutes=4)


def test_an_explicit_end_held_open_by_another_source_ends_when_it_falls_silent():
    state = both_report()
    end = alert("UA-30").model_copy(update={"ended_at": T0 + timedelta(seconds=45)})
    step = apply_snapshot(state, snap("a", ended=(end,)), T0 + timedelta(minutes=1), POLICY)
    assert step.events == [] and step.state.entries["a"][KYIV].confirmed_over is not None
    state, events = polls(step.state, "a", 1, silent=frozenset({"b"}), at=T0 + timedelta(minutes=2))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert events[0].ended_at == T0 + timedelta(seconds=45)


def test_not_modified_polls_recheck_but_never_repeat_a_confirmed_over_alert():
    """A 304 re-applies the last good word: a confirmed-over entry is not a report of the alert."""
    state, _ = polls(both_report(), "a", 2)
    assert unchanged_snapshot(state, "a").alerts == ()
    step = apply_snapshot(state, unchanged_snapshot(state, "a"), T0 + timedelta(minutes=2), POLICY)
    assert step.events == [] and not step.source_changed  # nothing to write on an idle poll
    step = apply_snapshot(
        state, unchanged_snapshot(state, "a"), T0 + timedelta(minutes=3), POLICY, frozenset({"b"})
    )
    assert statuses(step.events) == [("ended", "UA-30", "air_raid")]


def test_an_alert_only_another_source_reports_is_never_ended_by_this_sources_polls():
    """Oref's alert in Israel: a Ukrainian source's polls must not end it, silent or not."""
    state = run(TrackerState(), [snap("a"), snap("oref")])[0]
    israel = Region(code="IL-TA", level=RegionLevel.CITY, name_uk="Тель-Авів", name_en="Tel Aviv")
    il = ActiveAlert(source_id="5", kind=AlertKind.MISSILES, region=israel, started_at=T0)
    state, events = run(state, [snap("oref", il)])
    assert [e.status for e in events] == [EventStatus.STARTED]
    state, events = polls(state, "a", 5, silent=frozenset({"oref"}))
    assert events == [] and ("IL-TA", AlertKind.MISSILES) in state.active


def test_a_kept_word_is_for_one_alert_only_not_for_the_next_one_under_the_same_key():
    """a confirmed one Kyiv alert over; b ended it and b alone then reports a new one: a's old word
    must not end the new alert when b falls silent."""
    state, _ = polls(both_report(), "a", 2)
    state, events = polls(state, "b", 2, at=T0 + timedelta(minutes=2))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    assert state.entries["a"][KYIV].confirmed_over is not None  # a has not polled since: stale
    state, events = polls(
        state, "b", 1, alert("UA-30", started=T0 + timedelta(minutes=3)), at=T0 + timedelta(minutes=3)
    )
    assert statuses(events) == [("started", "UA-30", "air_raid")]
    state, events = polls(state, "a", 3, silent=frozenset({"b"}), at=T0 + timedelta(minutes=4))
    assert events == [] and KYIV in state.active
    assert KYIV not in state.entries.get("a", {})  # a's stale word is dropped at its next poll


def test_a_third_sources_polls_do_not_end_an_alert_it_never_reported():
    state, _ = polls(both_report(), "a", 2)
    state = run(state, [snap("c")])[0]
    state, events = polls(state, "c", 3, silent=frozenset({"b"}), at=T0 + timedelta(minutes=3))
    assert events == [] and KYIV in state.active  # c has no word on Kyiv; a's next poll decides
    state, events = polls(state, "a", 1, silent=frozenset({"b"}), at=T0 + timedelta(minutes=4))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]


# --- property: several sources, failures, allowances ---------------------------------------------------
ISRAEL = Region(code="IL-TA", level=RegionLevel.CITY, name_uk="Тель-Авів", name_en="Tel Aviv")
IL_KEYS = [("IL-TA", AlertKind.MISSILES)]
#: consecutive failed polls after which a source is down past its allowance (silent)
ALLOWANCE_POLLS = 2
#: a poll: None failed (never reaches the tracker), "304" not modified, else the keys it reports
#: (or the keys it reports and those it has explicit end records for)
two_keys = st.frozensets(st.sampled_from(KEYS[:2]))
multi_poll = st.one_of(st.none(), st.just("304"), two_keys, st.tuples(two_keys, two_keys))
il_poll = st.one_of(st.none(), st.just("304"), st.frozensets(st.sampled_from(IL_KEYS)))


def _il_snapshot(keys: frozenset) -> Snapshot:
    return snap("c", *(ActiveAlert(source_id="5", kind=k, region=ISRAEL, started_at=T0) for _, k in keys))


_KYIV_ONLY = frozenset({KEYS[0]})


@settings(max_examples=1000, deadline=None)
@example(  # the reported bug: b fails after a confirmed the end, then passes its allowance
    [("a", _KYIV_ONLY), ("b", _KYIV_ONLY), ("a", frozenset()), ("a", frozenset())]
    + [("b", None)] * ALLOWANCE_POLLS
    + [("a", "304")]
)
@example(  # a's kept word is for that alert only: b ends it, b alone starts the next one, b falls silent
    [("a", _KYIV_ONLY), ("b", _KYIV_ONLY), ("a", frozenset()), ("a", frozenset())]
    + [("b", frozenset()), ("b", frozenset()), ("b", _KYIV_ONLY)]
    + [("b", None)] * ALLOWANCE_POLLS
    + [("a", frozenset())]
)
@given(
    st.lists(
        st.one_of(st.tuples(st.sampled_from(["a", "b"]), multi_poll), st.tuples(st.just("c"), il_poll)),
        min_size=10,
        max_size=60,
    )
)
def test_property_an_end_comes_exactly_when_every_source_whose_word_counts_agrees(timeline):
    """Random timelines of two Ukrainian sources (a, b) and one Israeli source (c), with failures.

    The model: a source *holds* a key when it reported it in one of its last ``end_confirmations``
    good polls; it is *silent* after ALLOWANCE_POLLS failed polls in a row. Then:
    an end only when no source that is not silent holds the key (no false all-clear), and only
    at a poll of a source that reported that very alert; at most one end per start, never an
    end without a start or before it; and no delayed all-clear: after a poll of a source that
    held the alert and no longer does, the alert is over unless a source that is not silent
    still holds it. c's alerts are only ever changed by c's polls.
    """
    n = POLICY.end_confirmations
    state = run(TrackerState(), [snap("a"), snap("b"), snap("c")])[0]
    sources = ("a", "b", "c")
    last: dict[str, frozenset] = dict.fromkeys(sources, frozenset())
    absent: dict[str, dict] = {s: {} for s in sources}  # good polls since the source last reported key
    failures = dict.fromkeys(sources, 0)
    held_this_alert: dict = {}  # key -> sources that held it during its current activation
    starts: set[str] = set()
    ends: set[str] = set()

    def holds(s: str, key) -> bool:
        return key in absent[s] and absent[s][key] < n

    for i, (src, keys) in enumerate(timeline):
        if keys is None:
            failures[src] += 1
            continue
        silent = frozenset(s for s in sources if s != src and failures[s] >= ALLOWANCE_POLLS)
        failures[src] = 0
        end_records: frozenset = frozenset()
        if keys == "304":
            snapshot, keys = unchanged_snapshot(state, src), last[src]
        elif isinstance(keys, tuple):
            keys, end_records = keys
            snapshot = snap(
                src,
                *(alert(c, k) for c, k in sorted(keys)),
                ended=tuple(alert(c, k, started=None) for c, k in sorted(end_records)),
            )
        else:
            snapshot = _il_snapshot(keys) if src == "c" else _snapshot(src, keys)
        step = apply_snapshot(state, snapshot, T0 + timedelta(seconds=10 * (i + 1)), POLICY, silent)
        last[src] = keys
        for key in list(absent[src]):
            absent[src][key] += 1
        for key in keys:
            absent[src][key] = 0
        for key in end_records - keys:  # an end record confirms at once what the source held
            if key in absent[src]:
                absent[src][key] = max(absent[src][key], n)

        for e in step.events:
            key = (e.region.code, e.kind)
            assert (key in IL_KEYS) == (src == "c"), "a source changed an alert it never reported"
            if e.status == EventStatus.STARTED:
                assert key in keys and key not in state.active
                assert e.id not in starts, "a start id minted twice"
                starts.add(e.id)
            elif e.status == EventStatus.ENDED:
                assert key in state.active, "an end without a start"
                assert e.id == event_id(key[0], key[1], state.active[key].started_at, EventStatus.ENDED)
                assert e.id not in ends, "two ends for one start"
                assert e.ended_at is not None and e.ended_at >= e.started_at, "ended before it started"
                ends.add(e.id)
                holders = [s for s in sources if s not in silent and holds(s, key)]
                assert not holders, f"ended while {holders} still report it (false all-clear)"
                assert src in held_this_alert[key], f"{src} ended an alert it did not report"
        new = step.state
        for key, active in new.active.items():
            old = state.active.get(key)
            if old is None or old.start_event_id != active.start_event_id:
                held_this_alert[key] = set()
            if src in held_this_alert[key] and not holds(src, key):
                holders = [s for s in sources if s not in silent and holds(s, key)]
                assert holders, f"{key} still open after {src} confirmed its end and no one holds it"
            held_this_alert[key] |= {s for s in sources if holds(s, key)}
        state = new


def test_an_end_never_predates_the_start_of_the_alert_it_ends():
    """b stopped reporting one alert while silent; a ended it, started a new one and went silent.
    b's old first miss is not the new alert's end time: b's poll that ends it is."""
    state = both_report()
    state, _ = polls(state, "b", 1, at=T0 + timedelta(minutes=1))  # b: missing once, since 12:01
    state, events = polls(state, "a", 2, silent=frozenset({"b"}), at=T0 + timedelta(minutes=2))
    assert statuses(events) == [("ended", "UA-30", "air_raid")]
    state, events = polls(state, "a", 1, alert("UA-30"), at=T0 + timedelta(minutes=3))
    (restart,) = events
    assert restart.started_at == T0 + timedelta(minutes=2)  # from the recorded end
    state, events = polls(state, "b", 1, at=T0 + timedelta(minutes=4))  # b confirms: a holds it
    assert events == []
    state, events = polls(state, "b", 1, silent=frozenset({"a"}), at=T0 + timedelta(minutes=5))
    (ended,) = events
    assert ended.started_at == restart.started_at
    assert ended.ended_at == T0 + timedelta(minutes=4)  # b's confirming poll, not its 12:01
