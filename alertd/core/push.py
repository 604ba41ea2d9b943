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

from alertd.core.model import Snapshot
from alertd.core.tracker import Note, SourceDiff, StepResult, TrackerState, one_report_per_key

__all__ = ["apply_push"]


def apply_push(state: TrackerState, snapshot: Snapshot, now: datetime) -> StepResult:
    """Add the pushed alerts the source's last poll did not have; never end, never update.

    Before the source's first good poll (no baseline) a push changes nothing: what is
    active then is for the baseline to record, not for a push to announce.
    """
    src = snapshot.source
    status = state.sources.get(src)
    if status is None or not status.baseline_done:
        note = Note("push before the source's first good poll: left to the poll", {"source": src})
        return StepResult(state, [], [note], frozenset(), False)
    reported, _ends = one_report_per_key(snapshot)  # a pushed end is ignored (see above)
    old_entries = state.entries.get(src, {})
    diff = SourceDiff(state, src, now, frozenset(), announce=True)
    diff.entries = dict(old_entries)
    for key, alert in reported.items():
        old = old_entries.get(key)
        if old is not None and old.holds:
            continue  # known to the polls: whatever they decide about it stands
        # new, or this source had confirmed it over: it says "alert" again, so it holds it again
        diff.reported(key, alert, None)  # a start, unless another source already started it
    if diff.entries == old_entries:
        return StepResult(state, [], [], frozenset(), False)
    new_state = replace(state, entries={**state.entries, src: diff.entries}, active=diff.active)
    return StepResult(new_state, diff.events, [], frozenset(diff.changed), True)
