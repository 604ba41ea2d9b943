"""The tracker: turns what sources say now into events, keeping every promise of DESIGN §3.

Pure: state in, state and events out, no I/O and no clock (``now`` is passed in).
The store persists the returned state together with the events in one
transaction, so whatever the tracker decided survives a crash as a whole.

The promises, and where they live:

* **No false all-clear** — a failed poll never reaches here (the shell does not
  call the tracker); an alert ends only after ``end_confirmations`` consecutive
  good polls without it, or an explicit end record; a state feed dropping from
  many alerts to none at once is held as suspicious until it repeats.
* **No duplicates** — alerts are merged by (region, kind) across sources: the
  first source to report starts it, the end comes when no source whose word
  still counts reports it (see :meth:`SourceDiff.end`).
  Event ids derive from (region, kind, start, status) so a replay is a no-op.
* **No delayed all-clear** — a source that has confirmed the end while another
  still held the alert open keeps a *confirmed over* entry; each of its later polls
  asks again, so the end comes as soon as the other source says so too, or falls
  silent (down past its allowance), not only when that source comes back.
* **No flood on start-up** — a source's first ever good poll is a baseline:
  what is active is recorded with the source's own start time, not announced
  (unless ``announce_existing``).
* **Nothing missed while down** — the state is persisted; the first poll after a
  restart is diffed against it like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from alertd.core.model import (
    ActiveAlert,
    AlertEvent,
    AlertKind,
    EventStatus,
    Notice,
    Region,
    Severity,
    Snapshot,
)

Key = tuple[str, AlertKind]


@dataclass(frozen=True)
class TrackerPolicy:
    """The knobs of §3, from ``[tracker]`` in the configuration."""

    announce_existing: bool = False
    end_confirmations: int = 2
    suspicious_drop: int = 10
    #: None: an alert absent from ``end_confirmations`` good polls has ended. Seconds:
    #: the source's explicit end record ends it; absence alone only after this long.
    explicit_end_hold: float | None = None


@dataclass(frozen=True)
class SourceEntry:
    """One source's report of one alert, with how many good polls it has been missing.

    An entry with ``confirmed_over`` set is no longer a report: the source has confirmed the
    end of the alert whose start event id it holds, while another source still held it open.
    It never holds an alert open; it stays so that this source's later polls can end the
    alert once no other source whose word still counts reports it (:meth:`SourceDiff.recheck`).
    Its ``missing_since`` is then the end time this source gave.
    """

    region: Region
    kind: AlertKind
    source_id: str
    started_at: datetime
    severity: Severity = Severity.SEVERE
    details: str = ""
    missing: int = 0
    missing_since: datetime | None = None
    #: the ``start_event_id`` of the alert this source has confirmed over, else None (a report)
    confirmed_over: str | None = None

    @property
    def key(self) -> Key:
        return (self.region.code, self.kind)

    @property
    def holds(self) -> bool:
        """Whether this entry still says "alert" (reported, or missing but not yet confirmed over)."""
        return self.confirmed_over is None


@dataclass(frozen=True)
class Active:
    """An alert alertd considers active, merged over every source reporting it."""

    region: Region
    kind: AlertKind
    started_at: datetime
    source: str  # the first source to report it
    start_event_id: str
    announced: bool = True
    severity: Severity = Severity.SEVERE

    @property
    def key(self) -> Key:
        return (self.region.code, self.kind)


@dataclass(frozen=True)
class SourceStatus:
    """What the tracker remembers of a source between polls."""

    baseline_done: bool = False
    last_count: int = 0
    suspect: int = 0


@dataclass(frozen=True)
class TrackerState:
    """Everything the tracker needs to diff the next snapshot. Treated as immutable."""

    entries: dict[str, dict[Key, SourceEntry]] = field(default_factory=dict)
    active: dict[Key, Active] = field(default_factory=dict)
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    #: when the last alert that ended, per key, ended: an upstream that drops an alert and
    #: brings it back with its old start time must still yield a new start (see _Diff._start).
    recent_ends: dict[Key, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """Something an operator should see in the log: what happened, and its facts as fields.

    The shell logs it as ``log.info(note.message, **note.fields)``, so the facts stay data
    (``source``, ``region``…) in JSON logs; ``str(note)`` is the one-line text form.
    """

    message: str
    fields: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        from alertd.logs import format_fields  # the text renderer operators read; pure

        rendered = format_fields(self.fields)
        return f"{self.message} {rendered}" if rendered else self.message


@dataclass(frozen=True)
class StepResult:
    state: TrackerState
    events: list[AlertEvent]
    notes: list[Note]  # things an operator should see in the log (baseline, suspicious, …)
    changed_keys: frozenset[Key]  # active keys whose row changed (for the store)
    source_changed: bool  # whether this source's entries or status changed
    held: bool = False  # a suspicious poll was held: its cursor (ETag…) must not be kept either


def event_id(region_code: str, kind: AlertKind | str, started_at: datetime, status: EventStatus) -> str:
    """The dedup key of a state event: the same alert start or end always gets the same id."""
    return AlertEvent.make_id(region_code, str(kind), started_at, str(status))


def _state_event(
    active: Active, status: EventStatus, source: str, now: datetime, ended_at: datetime | None = None
) -> AlertEvent:
    return AlertEvent(
        id=event_id(active.region.code, active.kind, active.started_at, status),
        source=source,
        kind=active.kind,
        status=status,
        region=active.region,
        severity=active.severity,
        started_at=active.started_at,
        ended_at=ended_at,
        observed_at=now,
    )


def apply_snapshot(
    state: TrackerState,
    snapshot: Snapshot,
    now: datetime,
    policy: TrackerPolicy,
    silent_sources: frozenset[str] = frozenset(),
) -> StepResult:
    """Diff one good poll of a state feed against what is known.

    The steps: merge the payload's rows into one report per (region, kind); hold a suspicious
    empty answer; start or update what is reported; end or count down what is no longer reported.

    ``silent_sources`` are sources whose last word no longer counts: down longer than
    their allowance, or no longer configured. Their old reports must not hold an alert
    open after every live source has confirmed its end — the all-clear matters as
    much as the alarm — so an end is decided by the sources that still answer. A source
    that is failing but within its allowance is not silent: its last "alert" still holds.
    Because a source may pass its allowance long after this source confirmed the end,
    the confirmation is kept (a *confirmed over* entry) and checked again at every poll
    of this source: the end is emitted at the first poll that finds no holder left.
    """
    src = snapshot.source
    status = state.sources.get(src, SourceStatus())
    old_entries = state.entries.get(src, {})
    reported, explicit_ends = one_report_per_key(snapshot)

    if _suspicious_drop(reported, explicit_ends, status, policy):
        note = Note(
            "suspicious poll held: no alerts where there were many; state unchanged until it repeats",
            {"source": src, "had": status.last_count},
        )
        sources = {**state.sources, src: replace(status, suspect=status.suspect + 1)}
        return StepResult(replace(state, sources=sources), [], [note], frozenset(), True, held=True)

    diff = SourceDiff(
        state, src, now, silent_sources, announce=policy.announce_existing or status.baseline_done
    )
    for key, alert in reported.items():
        diff.reported(key, alert, old_entries.get(key))
    for key, old in old_entries.items():
        if key in reported:
            continue
        if not old.holds:
            diff.recheck(key, old)
        elif key in explicit_ends:
            diff.end(key, old, explicit_ends[key].ended_at or now)
        else:
            diff.missing(key, old, policy)

    # An explicit end for an alert only another source reported: that source will confirm it.
    new_entries = {**state.entries, src: diff.entries}
    if not diff.entries:
        new_entries.pop(src, None)
    new_status = SourceStatus(baseline_done=True, last_count=len(reported), suspect=0)
    new_state = TrackerState(
        entries=new_entries,
        active=diff.active,
        sources={**state.sources, src: new_status},
        recent_ends=diff.recent_ends,
    )
    source_changed = diff.entries != old_entries or new_status != status
    return StepResult(new_state, diff.events, diff.notes, frozenset(diff.changed), source_changed)


def one_report_per_key(snapshot: Snapshot) -> tuple[dict[Key, ActiveAlert], dict[Key, ActiveAlert]]:
    """The alerts a payload reports, one per (region, kind), and its explicit ends of others.

    Several rows for the same (region, kind) in one payload are one alert: the earliest start wins.
    An end record for a key the same payload still reports as active is ignored.
    """
    reported: dict[Key, ActiveAlert] = {}
    for alert in snapshot.alerts:
        prev = reported.get(alert.key)
        if prev is None or (
            alert.started_at and (prev.started_at is None or alert.started_at < prev.started_at)
        ):
            reported[alert.key] = alert
    explicit_ends = {a.key: a for a in snapshot.ended if a.key not in reported}
    return reported, explicit_ends


def _suspicious_drop(
    reported: dict[Key, ActiveAlert],
    explicit_ends: dict[Key, ActiveAlert],
    status: SourceStatus,
    policy: TrackerPolicy,
) -> bool:
    """Dozens of alerts and then none at all, with no end record: held once, believed when repeated."""
    return (
        policy.suspicious_drop > 0
        and not reported
        and not explicit_ends
        and status.last_count >= policy.suspicious_drop
        and status.suspect == 0
    )


class SourceDiff:
    """The working copies one report of one source changes, and what it yields.

    Lives for one :func:`apply_snapshot` (or :func:`alertd.core.push.apply_push`) call only;
    the state passed in is never mutated.
    """

    def __init__(
        self, state: TrackerState, src: str, now: datetime, silent_sources: frozenset[str], *, announce: bool
    ) -> None:
        self.state = state
        self.src = src
        self.now = now
        self.silent_sources = silent_sources
        self.announce = announce  # False on a baseline poll: record what is active, do not announce it
        self.entries: dict[Key, SourceEntry] = {}
        self.active = dict(state.active)
        self.recent_ends = dict(state.recent_ends)
        self.events: list[AlertEvent] = []
        self.notes: list[Note] = []
        self.changed: set[Key] = set()

    def reported(self, key: Key, alert: ActiveAlert, old: SourceEntry | None) -> None:
        """The source reports ``alert``: remember its entry; start the alert or update it."""
        started_at = alert.started_at or (old.started_at if old else self.now)
        self.entries[key] = SourceEntry(
            region=alert.region,
            kind=alert.kind,
            source_id=alert.source_id,
            started_at=started_at,
            severity=alert.severity,
            details=alert.details,
        )
        current = self.active.get(key)
        if current is None:
            self._start(key, alert, started_at)
        elif (
            old is not None
            and current.source == self.src
            and (old.severity != alert.severity or old.details != alert.details)
        ):
            # Only the source that started an alert may update it: two sources
            # describing it differently must not ping-pong updates.
            self._update(key, current, alert)

    def _start(self, key: Key, alert: ActiveAlert, started_at: datetime) -> None:
        previous = self.recent_ends.get(key)
        if previous is not None and started_at <= previous:
            # Announced as over, now back with its old start time: for the people who heard
            # the all-clear it is a new alert, running since that all-clear. Its start is
            # the recorded end, not "now": the event id then follows from stored facts, so
            # every process and every restart that sees the return mints the same id.
            started_at = previous
        current = Active(
            region=alert.region,
            kind=alert.kind,
            started_at=started_at,
            source=self.src,
            start_event_id=event_id(key[0], key[1], started_at, EventStatus.STARTED),
            announced=self.announce,
            severity=alert.severity,
        )
        self.active[key] = current
        self.changed.add(key)
        if self.announce:
            self.events.append(_state_event(current, EventStatus.STARTED, self.src, self.now))
        else:
            self.notes.append(
                Note(
                    "alert already active at first poll, recorded not announced",
                    {
                        "source": self.src,
                        "kind": alert.kind,
                        "region": alert.region.code,
                        "place": alert.region.name(),
                    },
                )
            )

    def _update(self, key: Key, current: Active, alert: ActiveAlert) -> None:
        updated = replace(current, severity=alert.severity)
        self.active[key] = updated
        self.changed.add(key)
        update_id = AlertEvent.make_id(updated.start_event_id, "updated", alert.severity, alert.details)
        self.events.append(
            _state_event(updated, EventStatus.UPDATED, self.src, self.now).model_copy(
                update={"id": update_id, "body": alert.details}
            )
        )

    def missing(self, key: Key, old: SourceEntry, policy: TrackerPolicy) -> None:
        """The source no longer reports ``old``: end it once confirmed, else count one more miss."""
        missing = old.missing + 1
        since = old.missing_since or self.now
        if policy.explicit_end_hold is not None:
            # Pulse feeds (Oref) drop an alert from the live list long before the danger
            # is over; only their end record counts, or a long silence as a last resort.
            confirmed = (self.now - since).total_seconds() >= policy.explicit_end_hold
        else:
            confirmed = missing >= policy.end_confirmations
        if confirmed:
            self.end(key, replace(old, missing=missing), since)
        else:
            self.entries[key] = replace(old, missing=missing, missing_since=since)

    def end(self, key: Key, old: SourceEntry, ended_at: datetime) -> None:
        """This source says ``key`` is over: it ends unless another source whose word counts holds it.

        Held open, this source's word is kept as a *confirmed over* entry for that very alert
        (its start event id), so that :meth:`recheck` can end it at a later poll.
        """
        current = self.active.get(key)
        if current is None:
            return
        if ended_at < current.started_at:
            # This source's word predates the alert: it stopped reporting an earlier one under
            # the same key (while silent), and another source started this one since. It says
            # "over" as of this poll; an end before the start would read absurdly, and as the
            # next start's floor (recent_ends) it could mint an id already used.
            ended_at = self.now
        if self._held_elsewhere(key):
            self.entries[key] = replace(old, missing_since=ended_at, confirmed_over=current.start_event_id)
            return
        self._end(key, current, ended_at)

    def recheck(self, key: Key, old: SourceEntry) -> None:
        """This source confirmed ``key`` over earlier; does another source still hold it open?

        Ends it once none does: the other source has confirmed the end itself meanwhile
        (its own poll ended it then), or it has fallen silent (down past its allowance).
        The confirmation is for one alert only: once that alert has ended, or a new one
        under the same key began that this source does not report, it is forgotten. So an
        alert only another source reports is never ended by this source's polls.
        """
        current = self.active.get(key)
        if current is None or current.start_event_id != old.confirmed_over:
            return  # dropped: the alert it confirmed over is gone
        if self._held_elsewhere(key):
            self.entries[key] = old
            return
        self._end(key, current, old.missing_since or self.now)

    def _held_elsewhere(self, key: Key) -> bool:
        """Whether another source whose word still counts (not silent) still says ``key`` is on."""
        for source, entries in self.state.entries.items():
            if source == self.src or source in self.silent_sources:
                continue
            entry = entries.get(key)
            if entry is not None and entry.holds:
                return True
        return False

    def _end(self, key: Key, current: Active, ended_at: datetime) -> None:
        del self.active[key]
        self.recent_ends[key] = ended_at
        self.changed.add(key)
        self.events.append(_state_event(current, EventStatus.ENDED, self.src, self.now, ended_at=ended_at))


@dataclass(frozen=True)
class KnownNotice:
    id: str
    hash: str


def diff_notices(
    source: str,
    notices: list[Notice],
    known: dict[str, str],
    known_hashes: set[str],
    *,
    baseline: bool,
    now: datetime,
    policy: TrackerPolicy,
) -> tuple[list[AlertEvent], dict[str, str], list[Note]]:
    """Events for an item feed's entries, deduplicated by id and by content hash.

    ``known`` maps ids already seen to their content hash; ``known_hashes`` are the
    hashes seen under any id of this source (a re-published item under a new id
    is not news). Returns the events, the (id → hash) rows to remember, and notes.
    """
    events: list[AlertEvent] = []
    remember: dict[str, str] = {}
    notes: list[Note] = []
    seen_hashes = set(known_hashes)
    announce = policy.announce_existing or not baseline
    silent = 0
    for notice in notices:
        digest = notice.content_hash()
        old = known.get(notice.id)
        if old == digest or (old is None and digest in seen_hashes):
            remember[notice.id] = digest
            continue
        remember[notice.id] = digest
        seen_hashes.add(digest)
        if not announce:
            silent += 1
            continue
        if notice.msg_type == "Cancel":
            status = EventStatus.CANCELLED
        elif old is not None or notice.msg_type == "Update":
            status = EventStatus.UPDATED
        else:
            status = EventStatus.ISSUED
        events.append(notice_event(notice, status, now, digest))
    if silent:
        notes.append(
            Note(
                "items already in the feed at its first poll, recorded not announced",
                {"source": source, "items": silent},
            )
        )
    return events, remember, notes


def notice_event(notice: Notice, status: EventStatus, now: datetime, digest: str) -> AlertEvent:
    severity = notice.severity
    return AlertEvent(
        id=AlertEvent.make_id(notice.source, notice.id, digest, status),
        source=notice.source,
        kind=notice.kind,
        status=status,
        region=None,
        severity=severity,
        headline=notice.title,
        body=notice.summary,
        url=notice.url,
        started_at=notice.published_at or notice.updated_at,
        observed_at=now,
        country=notice.country,
        level=notice.level,
    )


def unchanged_snapshot(state: TrackerState, source: str) -> Snapshot:
    """What ``source`` said at its last good poll, for a poll answered "not modified".

    Re-applying it counts one more good poll for alerts already missing, so a
    304 still moves a pending end towards confirmation, and re-checks the alerts this
    source confirmed over (their entries are not reports, so they are not repeated).
    """
    entries = state.entries.get(source, {}).values()
    return Snapshot(
        source=source,
        alerts=tuple(
            ActiveAlert(
                source_id=e.source_id,
                kind=e.kind,
                region=e.region,
                started_at=e.started_at,
                severity=e.severity,
                details=e.details,
            )
            for e in entries
            if e.missing == 0 and e.holds
        ),
    )


def shift_clock(state: TrackerState, step: timedelta) -> TrackerState:
    """The state after the wall clock stepped by ``step``: hold timers keep their true length.

    ``missing_since`` starts the explicit-end hold (Oref's hour). A forward step of three
    hours must not make a minute-old absence look like three hours (a false all-clear), and
    a backward step must not stretch it by the step either. Upstream times (starts, ends)
    are the upstream's facts and are left alone.
    """
    entries = {
        source: {
            # a confirmed-over entry's missing_since is the end time to announce, not a timer
            key: replace(entry, missing_since=entry.missing_since + step)
            if entry.missing_since and entry.holds
            else entry
            for key, entry in by_key.items()
        }
        for source, by_key in state.entries.items()
    }
    return replace(state, entries=entries)
