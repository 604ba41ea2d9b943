"""The one clock seam: every "what time is it" in the process asks a :class:`Clock`.

The composition root (:func:`alertd.run.app.run_app`) builds one :class:`SystemClock`
and hands it to the daemon, the dispatcher, operator notices, retention and the web
handlers. Tests hand a :class:`FakeClock` instead and move time by hand, so a
time-dependent rule (a source's allowance, Oref's end hold, an operator notice's rate
limit) is shown to follow the clock it was given, without sleeping.

Two readings, because they answer different questions: :meth:`Clock.now` is the
UTC wall time stamped on events and compared with stored timestamps; :meth:`Clock.monotonic`
measures intervals in-process (backoff, rate limits) and never jumps when the wall
clock is stepped. (:mod:`alertd.run.clock` watches the *real* clocks for steps and
stays on them by design.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the process reads the time from."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (only differences mean anything)."""
        ...

    def wall(self) -> float:
        """The current wall time as Unix seconds (for latency figures compared across processes)."""
        ...


class SystemClock:
    """The real clocks: ``datetime.now(UTC)``, ``time.monotonic()`` and ``time.time()``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to (tests): :meth:`advance` moves both readings together."""

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._mono = monotonic

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (negative values are refused: use :meth:`step` for a wall step)."""
        if seconds < 0:
            raise ValueError("time does not run backwards; use step() for a wall-clock step")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def step(self, seconds: float) -> None:
        """Step the wall clock alone (an NTP correction): the monotonic reading stays put."""
        self._now += timedelta(seconds=seconds)


#: The process default where a caller passes no clock (one stateless instance is enough).
SYSTEM_CLOCK: Clock = SystemClock()
