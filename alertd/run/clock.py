"""Wall-clock steps, noticed: the daemon schedules and measures on the monotonic clock.

A Raspberry Pi without a real-time clock boots with a stale wall clock and NTP steps it
forward minutes or years later; an operator may step it back. APScheduler computes its
next run times in wall time, so a backward step would stop every poll for as long as the
step (silence during an alert), and a forward one would make every pending run look
"missed". Two pieces keep polling on the monotonic clock:

* :class:`MonotonicInterval` — a trigger whose next run is always ``interval`` after the
  scheduler last looked, never "previous run + interval" on the wall clock. The wait itself
  is ``loop.call_later`` (monotonic), so between steps the interval is monotonic time.
* :class:`ClockWatch` — compares ``time.time()`` with ``time.monotonic()`` once a second;
  when the difference moves, the wall clock has stepped, and the daemon pulls every poll to
  "now" and shifts the tracker's in-memory hold timers so their durations stay true.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from alertd.logs import get_logger

log = get_logger("alertd.clock")

#: a step below this is clock jitter or NTP slewing, not a step
STEP_THRESHOLD = 2.0
#: a step above this is worth one line in the operator's log
LOG_THRESHOLD = 60.0


class MonotonicInterval(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """Fire ``seconds`` after the scheduler last computed the next run (plus optional jitter).

    IntervalTrigger chains ``previous + interval`` on the wall clock; this one starts from
    ``now`` each time, so a backward step cannot push the next run an hour away and a
    forward step cannot produce a burst of catch-up runs.
    """

    def __init__(self, seconds: float, jitter: float | None = None) -> None:
        if seconds <= 0:
            raise ValueError("interval must be positive")
        self.seconds = seconds
        self.jitter = jitter

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return self._apply_jitter(now + timedelta(seconds=self.seconds), self.jitter, now)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"every {self.seconds:g}s (monotonic)"

    def __repr__(self) -> str:
        return f"<MonotonicInterval (seconds={self.seconds!r}, jitter={self.jitter!r})>"


class ClockWatch:
    """Notices steps of the wall clock against the monotonic clock.

    ``offset = wall - monotonic`` is constant while nobody steps the wall clock; a change
    of more than :data:`STEP_THRESHOLD` seconds is a step. The clocks are injectable so the
    rule is tested without touching the machine's time.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        threshold: float = STEP_THRESHOLD,
    ) -> None:
        self._wall = wall
        self._mono = mono
        self.threshold = threshold
        self._offset = wall() - mono()

    def check(self) -> float:
        """The size of a step since the last check (seconds, signed; 0.0 when none)."""
        offset = self._wall() - self._mono()
        step = offset - self._offset
        if abs(step) < self.threshold:
            return 0.0
        self._offset = offset
        return step

    async def run(self, stop: asyncio.Event, on_step: Callable[[float], None], period: float = 1.0) -> None:
        """Check every ``period`` seconds until ``stop`` is set; call ``on_step`` for each step."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
            step = self.check()
            if step:
                if abs(step) >= LOG_THRESHOLD:
                    log.warning(
                        "wall clock stepped; polls rescheduled on the monotonic clock",
                        direction="forward" if step > 0 else "back",
                        step=describe_step(abs(step)),
                    )
                on_step(step)


def describe_step(seconds: float) -> str:
    """``3h00m05s`` style, short enough for one log line."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
