"""A pushed region state (a ukrainealarm webhook) as a tracker step that can only *start* alerts.

Pure, like the tracker. The asymmetry is the safety rule of pushes:

* a pushed **start** is announced at once — the push is authenticated only by the secret
  in its URL, and a false start is the cheap mistake (the next real polls do not confirm
  it, and it ends after ``end_confirmations`` of them, as any alert does);
* a pushed **end** (an alert missing from the region's pushed state, or an empty
  ``activeAlerts``) changes nothing here. Only real polls end an alert, under the usual
  confirmation rule, so a forged or stale push can never produce a false all-clear.

The daemon polls the source right after every push, which is what makes a real end
arrive quickly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from alertd.core.model import ActiveAlert, EventStatus, Snapshot
from alertd.core.tracker import (
    Active,
    Key,
    SourceEntry,
    StepResult,
    TrackerState,
    _state_event,
    event_id,
)

__all__ = ["apply_push"]


def apply_push(state: TrackerState, snapshot: Snapshot, now: datetime) -> StepResult:
    """Add the pushed alerts the source's last poll did not have; never end, never update.

    Before the source's first good poll (no baseline) a push changes nothing: what is
    active then is for the baseline to record, not for a push to announce.
    """
    src = snapshot.source
    status = state.sources.get(src)
    if status is None or not status.baseline_done:
        return StepResult(
            state, [], [f"push before the first good poll of {src}: left to the poll"], frozenset(), False
        )
    reported: dict[Key, ActiveAlert] = {}
    for alert in snapshot.alerts:
        prev = reported.get(alert.key)
        if prev is None or (
            alert.started_at and (prev.started_at is None or alert.started_at < prev.started_at)
        ):
            reported[alert.key] = alert
    old_entries = state.entries.get(src, {})
    entries = dict(old_entries)
    active = dict(state.active)
    events = []
    changed: set[Key] = set()
    for key, alert in reported.items():
        if key in old_entries:
            continue  # known to the polls: whatever they decide about it stands
        started_at = alert.started_at or now
        entries[key] = SourceEntry(
            region=alert.region,
            kind=alert.kind,
            source_id=alert.source_id,
            started_at=started_at,
            severity=alert.severity,
            details=alert.details,
        )
        if key in active:
            continue  # another source already started it
        previous = state.recent_ends.get(key)
        if previous is not None and started_at <= previous:
            started_at = now  # announced as over, back with its old start: a new alert for listeners
        current = Active(
            region=alert.region,
            kind=alert.kind,
            started_at=started_at,
            source=src,
            start_event_id=event_id(key[0], key[1], started_at, EventStatus.STARTED),
            announced=True,
            severity=alert.severity,
        )
        active[key] = current
        changed.add(key)
        events.append(_state_event(current, EventStatus.STARTED, src, now))
    if entries == old_entries:
        return StepResult(state, [], [], frozenset(), False)
    new_state = replace(state, entries={**state.entries, src: entries}, active=active)
    return StepResult(new_state, events, [], frozenset(changed), True)
