"""The store contract: what every :class:`alertd.store.base.StateStore` backend must do.

Written against the protocol only (the ``store_factory`` fixture picks the backend),
so a second backend passes this file unchanged. Each test states a promise the
daemon, the dispatcher, the web side or the CLI relies on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertd.core.model import (
    ActiveAlert,
    AlertEvent,
    AlertKind,
    EventStatus,
    Notice,
    Region,
    RegionLevel,
    Snapshot,
)
from alertd.core.tracker import StepResult, TrackerPolicy, apply_snapshot, diff_notices
from alertd.errors import StoreError
from alertd.store.base import (
    OutboxRow,
    OutboxState,
    Outcome,
    StateStore,
    StoredSubscriber,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")
KHARKIV = Region(code="UA-63", level=RegionLevel.OBLAST, name_uk="Харків", name_en="Kharkiv", oblast="UA-63")
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=1, suspicious_drop=0)
CHANNELS = ("json://127.0.0.1:9/a", "json://127.0.0.1:9/b", "json://127.0.0.1:9/c")


def fan_out(event: AlertEvent) -> list[OutboxRow]:
    """Every event to three channels (the router runs inside the store's transaction)."""
    return [OutboxRow(event.id, f"s{i}", url, "uk") for i, url in enumerate(CHANNELS)]


def snap(*regions: Region, started: datetime = T0) -> Snapshot:
    return Snapshot(
        source="a",
        alerts=tuple(
            ActiveAlert(source_id=r.code, kind=AlertKind.AIR_RAID, region=r, started_at=started)
            for r in regions
        ),
    )


class Timeline:
    """Drives the real tracker and commits each step, as the daemon does."""

    def __init__(self, store: StateStore, now: datetime = T0) -> None:
        self.store = store
        self.state = store.load_tracker_state()
        self.now = now

    def poll(self, snapshot: Snapshot, cursor: dict[str, str | None] | None = None) -> list[AlertEvent]:
        step = apply_snapshot(self.state, snapshot, self.now, POLICY)
        new = self.store.commit_step("a", step, fan_out, cursor=cursor or {}, now=self.now)
        self.state = step.state
        self.now += timedelta(seconds=10)
        return new


def started_alert(store: StateStore, *regions: Region) -> list[AlertEvent]:
    """A baseline poll, then one poll with the alert(s): returns the start events."""
    t = Timeline(store)
    t.poll(snap())
    return t.poll(snap(*regions))


# -- tracker state and the one transaction ----------------------------------------------------------------
def test_a_step_its_events_and_outbox_rows_survive_a_restart(store_factory):
    first = store_factory()
    t = Timeline(first)
    assert t.poll(snap()) == []  # the baseline poll announces nothing
    (start,) = t.poll(snap(KYIV), cursor={"etag": '"v2"'})
    assert start.status == EventStatus.STARTED
    first.close()

    again = store_factory()
    state = again.load_tracker_state()
    assert list(state.active) == [("UA-30", AlertKind.AIR_RAID)]
    assert state.active[("UA-30", AlertKind.AIR_RAID)].start_event_id == start.id
    assert state.entries["a"][("UA-30", AlertKind.AIR_RAID)].started_at == T0
    assert state.sources["a"].baseline_done
    assert again.outbox_depth() == len(CHANNELS)
    assert again.has_event(start.id) and again.event(start.id) == start
    assert [e.id for e in again.events()] == [start.id]
    assert again.events_since(T0 + timedelta(seconds=10)) == [start]
    assert again.events_since(T0 + timedelta(seconds=11)) == []
    assert again.cursor("a").etag == '"v2"'
    assert [a.region.code for a in again.active_alerts()] == ["UA-30"]


def test_a_confirmed_end_another_source_holds_open_survives_a_restart(store_factory):
    """Source a confirms the Kyiv alert over while b (failing, within its allowance) still holds it:
    a's word is kept across a restart, and a's first poll after b has fallen silent ends it."""
    key = ("UA-30", AlertKind.AIR_RAID)
    first = store_factory()
    state, now = first.load_tracker_state(), T0
    started = []
    for source, regions in [("a", ()), ("b", ()), ("a", (KYIV,)), ("b", (KYIV,)), ("a", ())]:
        snapshot = Snapshot(source=source, alerts=snap(*regions).alerts)
        step = apply_snapshot(state, snapshot, now, POLICY)  # end_confirmations=1
        started += first.commit_step(source, step, fan_out, now=now)
        state, now = step.state, now + timedelta(seconds=10)
    assert [e.status for e in started] == [EventStatus.STARTED]
    assert [a.region.code for a in first.active_alerts()] == ["UA-30"]
    first.close()

    again = store_factory()
    state = again.load_tracker_state()
    kept = state.entries["a"][key]
    assert kept.confirmed_over == started[0].id and kept.missing_since == T0 + timedelta(seconds=40)
    assert state.entries["b"][key].confirmed_over is None  # b's last word: alert
    step = apply_snapshot(state, Snapshot(source="a"), now, POLICY, frozenset({"b"}))
    (ended,) = again.commit_step("a", step, fan_out, now=now)
    assert ended.status == EventStatus.ENDED and ended.ended_at == T0 + timedelta(seconds=40)
    assert again.active_alerts() == [] and "a" not in again.load_tracker_state().entries


def test_a_replayed_event_is_not_new_and_fans_out_nothing(store):
    (start,) = started_alert(store, KYIV)
    step = StepResult(
        state=store.load_tracker_state(),
        events=[start],
        notes=[],
        changed_keys=frozenset(),
        source_changed=False,
    )
    assert store.commit_step("a", step, fan_out, now=T0 + timedelta(minutes=1)) == []
    assert store.outbox_depth() == len(CHANNELS)


def test_a_failing_router_leaves_nothing_behind_and_its_error_is_the_one_raised(store):
    t = Timeline(store)
    t.poll(snap())

    class RouterBroke(Exception):
        pass

    def broken(event: AlertEvent) -> list[OutboxRow]:
        raise RouterBroke("routing failed")

    step = apply_snapshot(t.state, snap(KYIV), t.now, POLICY)
    with pytest.raises(RouterBroke):
        store.commit_step("a", step, broken, now=t.now)
    assert store.events() == []
    assert store.outbox_depth() == 0
    assert store.load_tracker_state().active == {}
    # the store is usable afterwards: the same step commits
    assert len(store.commit_step("a", step, fan_out, now=t.now)) == 1


def test_recent_ends_are_remembered_for_restart_dedup(store):
    t = Timeline(store)
    t.poll(snap())
    t.poll(snap(KYIV))
    (end,) = t.poll(snap())
    assert end.status == EventStatus.ENDED
    state = store.load_tracker_state()
    # when it ended (the first poll without it): a return with the old start time starts there
    assert end.ended_at == T0 + timedelta(seconds=20)
    assert state.recent_ends[("UA-30", AlertKind.AIR_RAID)] == end.ended_at
    assert state.active == {}


# -- item feeds -----------------------------------------------------------------------------------------------
def test_notices_are_remembered_with_their_hashes(store):
    notice = Notice(source="rss", id="n1", title="Level 4: do not travel", published_at=T0)
    events, remember, _ = diff_notices("rss", [notice], {}, set(), baseline=False, now=T0, policy=POLICY)
    new = store.commit_notices("rss", events, remember, fan_out, {"etag": "x"}, now=T0)
    assert [e.id for e in new] == [e.id for e in events] and new
    known, hashes = store.known_notices("rss")
    assert known == remember and hashes == set(remember.values())
    assert store.cursor("rss").baseline_done and store.cursor("rss").etag == "x"
    assert store.commit_notices("rss", events, remember, fan_out, now=T0) == []  # a replay
    assert store.outbox_depth() == len(CHANNELS)


# -- source cursors ----------------------------------------------------------------------------------------------
def test_failures_count_up_and_a_good_poll_clears_them(store):
    assert store.cursor("a").consecutive_failures == 0 and store.cursor("a").last_success is None
    c1 = store.record_failure("a", "HTTP 503", now=T0)
    c2 = store.record_failure("a", "timeout", now=T0 + timedelta(seconds=5))
    assert (c1.consecutive_failures, c2.consecutive_failures) == (1, 2)
    assert c2.failing_since == T0 and c2.last_error == "timeout"
    store.set_down_reported("a", True)
    assert store.cursor("a").down_reported
    store.record_unchanged("a", {"etag": '"e"', "status_index": "7"}, now=T0 + timedelta(seconds=9))
    c = store.cursor("a")
    assert c.consecutive_failures == 0 and c.failing_since is None
    assert c.last_success == T0 + timedelta(seconds=9) and c.etag == '"e"' and c.status_index == "7"
    store.record_failure("b", "x", now=T0)
    assert [c.name for c in store.cursors()] == ["a", "b"]


def test_a_pushed_step_starts_alerts_but_is_not_a_good_poll(store):
    """A push (alertd.core.push) commits its starts with polled=False: a failing source
    stays failing, so a push can never hide an upstream that stopped answering polls."""
    from alertd.core.push import apply_push

    t = Timeline(store)
    t.poll(snap())  # the baseline
    store.record_failure("a", "HTTP 503", now=T0 + timedelta(seconds=20))
    step = apply_push(t.state, snap(KYIV), T0 + timedelta(seconds=25))
    new = store.commit_step("a", step, fan_out, now=T0 + timedelta(seconds=25), polled=False)
    assert [(e.status, e.region.code) for e in new] == [(EventStatus.STARTED, "UA-30")]
    cursor = store.cursor("a")
    assert cursor.consecutive_failures == 1 and cursor.failing_since == T0 + timedelta(seconds=20)
    assert cursor.last_success == T0
    assert set(store.load_tracker_state().active) == {("UA-30", AlertKind.AIR_RAID)}


def test_events_since_is_the_recent_window_oldest_first(store):
    t = Timeline(store)
    t.poll(snap())
    (start,) = t.poll(snap(KYIV))  # observed at T0 + 10 s
    (other,) = t.poll(snap(KYIV, KHARKIV))  # T0 + 20 s
    assert [e.id for e in store.events_since(T0)] == [start.id, other.id]
    assert [e.id for e in store.events_since(T0 + timedelta(seconds=15))] == [other.id]
    assert store.events_since(T0 + timedelta(minutes=1)) == []


# -- the outbox ----------------------------------------------------------------------------------------------
def test_claim_marks_sending_and_no_row_is_claimed_twice(store):
    (start,) = started_alert(store, KYIV)
    now = T0 + timedelta(minutes=1)
    items = store.claim_due(now, limit=2)
    assert len(items) == 2 and all(i.event == start and i.attempts == 1 for i in items)
    rest = store.claim_due(now, limit=10)
    assert len(rest) == 1
    assert {i.channel for i in items + rest} == set(CHANNELS)
    assert store.claim_due(now) == []
    assert store.outbox_state(start.id, CHANNELS[0]) == OutboxState.SENDING
    assert store.outbox_depth() == 3
    assert store.outbox_counts() == {"sending": 3}


def test_outcomes_are_recorded_and_retries_wait_until_due(store):
    (start,) = started_alert(store, KYIV)
    now = T0 + timedelta(minutes=1)
    a, b, c = sorted(store.claim_due(now), key=lambda i: i.channel)
    later = now + timedelta(seconds=30)
    store.finish(
        [
            Outcome(a.id, 1, OutboxState.DELIVERED),
            Outcome(b.id, 1, OutboxState.PENDING, "HTTP 500", retry_at=later),
            Outcome(c.id, 1, OutboxState.DEAD, "gave up"),
        ],
        now,
    )
    assert store.outbox_state(start.id, a.channel) == OutboxState.DELIVERED
    assert store.outbox_state(start.id, c.channel) == OutboxState.DEAD
    assert store.outbox_depth() == 1
    assert store.claim_due(now) == []  # b waits out its backoff
    assert store.next_due() == later
    assert store.oldest_pending(now) is None  # a row in backoff is not lag
    (again,) = store.claim_due(later)
    assert again.id == b.id and again.attempts == 2
    store.finish([Outcome(b.id, 2, OutboxState.DELIVERED)], later)
    assert store.outbox_counts() == {"delivered": 2, "dead": 1}
    assert store.outbox_state(start.id, "json://127.0.0.1:9/unknown") is None


def test_rows_cut_off_while_sending_are_requeued_at_start_up(store_factory):
    first = store_factory()
    started_alert(first, KYIV)
    first.claim_due(T0 + timedelta(minutes=1), limit=2)
    first.close()
    again = store_factory()
    assert again.requeue_inflight() == 2
    assert again.outbox_counts() == {"pending": 3}
    assert len(again.claim_due(T0 + timedelta(minutes=1))) == 3


def test_oldest_pending_is_the_lag_of_due_and_sending_rows(store):
    started_alert(store, KYIV)
    created = T0 + timedelta(seconds=10)  # the second poll of started_alert committed the rows
    assert store.oldest_pending(T0 + timedelta(minutes=5)) == created
    store.claim_due(T0 + timedelta(minutes=1), limit=1)
    assert store.oldest_pending(T0 + timedelta(minutes=5)) == created


def test_only_a_pending_start_can_be_superseded(store):
    (start,) = started_alert(store, KYIV)
    assert store.supersede(start.id, CHANNELS[0], "carried by the end")
    assert store.outbox_state(start.id, CHANNELS[0]) == OutboxState.SUPERSEDED
    assert not store.supersede(start.id, CHANNELS[0], "again")
    claimed = store.claim_due(T0 + timedelta(minutes=1))
    assert len(claimed) == 2
    assert not store.supersede(start.id, claimed[0].channel, "too late: sending")


def test_urgent_starts_are_claimed_before_older_ends_and_topics_first_within_a_level(store):
    """Delivery priority (alertd.core.priority): the claim order, whatever the insertion order."""
    t = Timeline(store)
    t.poll(snap())
    (kyiv_start,) = t.poll(snap(KYIV))
    (kyiv_end,) = t.poll(snap())  # an end, written before the next start
    rows = [
        OutboxRow("", "s-person", "json://127.0.0.1:9/p", "uk"),
        OutboxRow("", "topic:ntfy:UA-63", "json://127.0.0.1:9/t", "uk"),
    ]
    step = apply_snapshot(t.state, snap(KHARKIV), t.now, POLICY)
    (kharkiv_start,) = store.commit_step(
        "a",
        step,
        lambda ev: [OutboxRow(ev.id, r.subscriber, r.channel, r.language) for r in rows],
        cursor={},
        now=t.now,
    )
    store.finish([], t.now)
    claimed = store.claim_due(t.now + timedelta(minutes=1), limit=100)
    order = [(i.event.id, i.subscriber) for i in claimed]
    # the topic first; then the starts, oldest first; then the (older) end
    assert order[0] == (kharkiv_start.id, "topic:ntfy:UA-63")
    assert [e for e, _ in order[1:]] == [kyiv_start.id] * 3 + [kharkiv_start.id] + [kyiv_end.id] * 3
    assert [i.priority for i in claimed] == sorted(i.priority for i in claimed)


def test_outbox_states_answers_many_pairs_at_once(store):
    (start,) = started_alert(store, KYIV)
    (item, *_rest) = sorted(store.claim_due(T0 + timedelta(minutes=1), limit=1), key=lambda i: i.channel)
    pairs = [(start.id, url) for url in CHANNELS] + [
        (start.id, "json://127.0.0.1:9/none"),
        ("nope", CHANNELS[0]),
    ]
    states = store.outbox_states(pairs)
    assert states[(start.id, item.channel)] == OutboxState.SENDING
    assert sorted(states.values()) == sorted([OutboxState.SENDING, OutboxState.PENDING, OutboxState.PENDING])
    assert (start.id, "json://127.0.0.1:9/none") not in states and ("nope", CHANNELS[0]) not in states
    assert store.outbox_states([]) == {}


def test_a_claimed_row_never_tried_goes_back_without_using_an_attempt(store):
    (start,) = started_alert(store, KYIV)
    now = T0 + timedelta(minutes=1)
    (item,) = store.claim_due(now, limit=1)
    later = now + timedelta(seconds=5)
    store.finish([Outcome(item.id, item.attempts, OutboxState.PENDING, None, later, counted=False)], now)
    assert store.outbox_state(start.id, item.channel) == OutboxState.PENDING
    again = [i for i in store.claim_due(later) if i.id == item.id]
    assert len(again) == 1 and again[0].attempts == 1  # still its first attempt


# -- retention -------------------------------------------------------------------------------------------------
def test_prune_removes_old_finished_rows_in_batches_and_keeps_what_dedup_needs(store):
    t = Timeline(store)
    t.poll(snap())
    t.poll(snap(KYIV, KHARKIV))
    t.poll(snap(KHARKIV))  # Kyiv ends; Kharkiv stays active
    t.now += timedelta(minutes=5)
    t.poll(snap(KYIV, KHARKIV, started=t.now))  # Kyiv again (a new start), Kharkiv still on
    t.poll(snap(KHARKIV, started=t.now - timedelta(seconds=10)))  # Kyiv ends again
    events = store.events()
    assert [(e.status.value, e.region.code) for e in events if e.region] == [
        ("started", "UA-30"),
        ("started", "UA-63"),
        ("ended", "UA-30"),
        ("started", "UA-30"),
        ("ended", "UA-30"),
    ]
    now = t.now + timedelta(minutes=1)
    items = store.claim_due(now, limit=1000)
    assert len(items) == 5 * len(CHANNELS)
    keep_pending = [i for i in items if i.event.status == EventStatus.ENDED and i.channel == CHANNELS[0]][-1]
    store.finish(
        [
            Outcome(i.id, 1, OutboxState.DELIVERED if i is not keep_pending else OutboxState.PENDING)
            for i in items
        ],
        now,
    )
    assert store.prune(now - timedelta(days=1)) == 0  # nothing is old enough yet

    removed = []
    while n := store.prune(now + timedelta(days=1), batch=4):
        assert n <= 4
        removed.append(n)
    assert len(removed) > 1  # small batches, not one big delete
    assert store.outbox_counts() == {"pending": 1}
    kept = {(e.status.value, e.region.code if e.region else None) for e in store.events()}
    # Kharkiv is active: its start stays; the pending row's event stays; the latest end per
    # (region, kind) stays (the tracker reads it at start-up to refuse a replayed alert)
    assert ("started", "UA-63") in kept
    assert ("ended", "UA-30") in kept
    assert ("started", "UA-30") not in kept
    assert store.has_event(keep_pending.event.id)
    state = store.load_tracker_state()
    assert ("UA-63", AlertKind.AIR_RAID) in state.active
    last_end = [e for e in events if e.status == EventStatus.ENDED][-1]
    assert state.recent_ends[("UA-30", AlertKind.AIR_RAID)] == last_end.ended_at


def test_size_is_reported(store):
    started_alert(store, KYIV)
    size = store.size_bytes()
    assert size is None or size > 0


# -- stored subscribers -------------------------------------------------------------------------------------------
def test_stored_subscribers_and_their_revision(store):
    v0 = store.subscribers_version()
    rec = StoredSubscriber(
        name="olena", regions=("UA-30",), kinds=("air_raid",), language="en", urls=(CHANNELS[0],)
    )
    store.add_subscriber(rec)
    assert store.subscribers() == [rec]
    assert store.subscribers_version() > v0
    with pytest.raises(StoreError):
        store.add_subscriber(rec)
    v1 = store.subscribers_version()
    assert store.set_subscriber_status("olena", "disabled")
    assert store.subscribers() == []
    assert [s.status for s in store.subscribers(status=None)] == ["disabled"]
    assert store.subscribers_version() > v1
    assert not store.set_subscriber_status("nobody", "active")
    assert store.remove_subscriber("olena") and not store.remove_subscriber("olena")
    assert store.subscribers(status=None) == []


# -- residents' self-service ---------------------------------------------------------------------------------------
def _web(store: StateStore, sub_id: str = "w1", expires: datetime = T0 + timedelta(hours=1)) -> None:
    store.web_create(
        sub_id=sub_id,
        record=StoredSubscriber(
            name=f"web-{sub_id}", regions=("UA-30",), urls=(f"ntfys://ntfy.sh/{sub_id}",)
        ),
        manage_token=f"token-{sub_id}",
        code_hash="hash",
        expires_at=expires,
        channel_kind="ntfy",
        destination="d" * 64,
        destination_masked="n…1",
        client="203.0.113.7",
        now=T0,
    )


def test_web_secret_is_created_once(store_factory):
    first = store_factory()
    secret = first.web_secret()
    assert len(bytes.fromhex(secret)) >= 16
    assert first.web_secret() == secret
    first.close()
    assert store_factory().web_secret() == secret


def test_web_subscription_lifecycle(store):
    v0 = store.subscribers_version()
    _web(store)
    row = store.web_get("w1")
    assert row is not None and row.status == "pending" and row.subscriber == "web-w1"
    assert row.expires_at == T0 + timedelta(hours=1) and row.created_at == T0 and row.regions == ("UA-30",)
    assert store.subscribers_version() > v0
    assert [s.origin for s in store.subscribers(status="pending")] == ["web"]
    assert store.web_count_pending() == 1
    assert store.web_count_pending("203.0.113.7") == 1 and store.web_count_pending("198.51.100.1") == 0
    assert store.web_manage_token_for("web-w1") is None  # not active yet
    assert store.web_wrong_code("w1") == 1 and store.web_wrong_code("w1") == 2
    assert store.web_wrong_code("nope") == 0
    assert store.web_activate("w1", T0 + timedelta(minutes=2))
    row = store.web_by_token("token-w1")
    assert row is not None and row.status == "active" and row.code_hash is None and row.expires_at is None
    assert row.confirmed_at == T0 + timedelta(minutes=2)
    assert store.web_manage_token_for("web-w1") == "token-w1"
    assert store.web_active_tokens() == {"web-w1": "token-w1"}
    store.web_update("w1", regions=["UA-63"], kinds=["air_raid"], language=None, now=T0)
    row = store.web_get("w1")
    assert (
        row is not None and row.regions == ("UA-63",) and row.kinds == ("air_raid",) and row.language is None
    )
    assert [r.id for r in store.web_all()] == ["w1"]
    assert store.web_delete("w1") and not store.web_delete("w1")
    assert store.web_get("w1") is None and store.subscribers(status=None) == []
    assert not store.web_activate("w1", T0)


def test_web_purge_drops_expired_pending_and_old_rate_hits(store):
    _web(store, "old", expires=T0 - timedelta(minutes=1))
    _web(store, "new", expires=T0 + timedelta(minutes=30))
    store.web_rate_hit("subscribe", "203.0.113.7", T0 - timedelta(days=3))
    store.web_rate_hit("subscribe", "203.0.113.7", T0)
    assert store.web_rate_count("subscribe", "203.0.113.7", T0 - timedelta(days=5)) == 2
    assert store.web_purge(T0, rate_before=T0 - timedelta(days=2)) == 1
    assert [r.id for r in store.web_all()] == ["new"]
    assert [s.name for s in store.subscribers(status=None)] == ["web-new"]
    assert store.web_rate_count("subscribe", "203.0.113.7", T0 - timedelta(days=5)) == 1
    assert store.web_rate_count("other", "203.0.113.7", T0 - timedelta(days=5)) == 0
