"""Polling as the safety net of pushes: slower while a source's pushes arrive, normal when they stop.

A source that pushes (ukrainealarm webhooks) is still polled — pushes can stop without
anyone noticing (an expired registration, a proxy change, the upstream's own trouble),
and only polls end alerts. While pushes arrive, the source is polled every
``push_interval`` seconds instead of ``interval``; after ``push_silence`` seconds without
a push, polling returns to ``interval`` and the log says so once. The next push slows
it again (logged once too).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from alertd.config import SourceConfig
from alertd.logs import get_logger

__all__ = ["PushControl"]

log = get_logger(__name__)


class Scheduling(Protocol):
    """What PushControl needs from the daemon (alertd.run.daemon.Daemon)."""

    def set_interval(self, name: str, seconds: float) -> None: ...
    def poll_soon(self, name: str) -> None: ...


class Gauge(Protocol):
    def push_mode(self, source: str, slowed: bool) -> None: ...


class PushControl:
    """Per pushing source: when the last push came, and whether its polling is slowed."""

    def __init__(
        self,
        sources: list[SourceConfig],
        daemon: Scheduling,
        metrics: Gauge | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = {s.name: s for s in sources}
        self._daemon = daemon
        self._metrics = metrics
        self._clock = clock
        self._last: dict[str, float] = {}
        self._slowed: set[str] = set()

    def slowed(self, name: str) -> bool:
        return name in self._slowed

    def last_push_age(self, name: str) -> float | None:
        last = self._last.get(name)
        return None if last is None else self._clock() - last

    def pushed(self, name: str) -> None:
        """A good push of ``name`` arrived."""
        cfg = self._sources.get(name)
        if cfg is None:
            return
        self._last[name] = self._clock()
        if name in self._slowed:
            return
        self._slowed.add(name)
        self._daemon.set_interval(name, cfg.push_interval)
        if self._metrics is not None:
            self._metrics.push_mode(name, True)
        log.info(
            "pushes arriving: polling slowed",
            source=name,
            interval=f"{cfg.push_interval:g}s",
            normal=f"{cfg.interval:g}s",
        )

    def check(self) -> None:
        """Return every source silent for longer than its ``push_silence`` to normal polling."""
        now = self._clock()
        for name in sorted(self._slowed):
            cfg = self._sources[name]
            silent = now - self._last.get(name, now)
            if silent <= cfg.push_silence:
                continue
            self._slowed.discard(name)
            self._daemon.set_interval(name, cfg.interval)
            self._daemon.poll_soon(name)
            if self._metrics is not None:
                self._metrics.push_mode(name, False)
            log.warning(
                "pushes stopped: polling back to normal",
                source=name,
                silent_for=f"{silent:.0f}s",
                interval=f"{cfg.interval:g}s",
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Check a few times per ``push_silence`` until ``stop`` is set."""
        if not self._sources:
            return
        tick = max(0.2, min(5.0, min(s.push_silence for s in self._sources.values()) / 4))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
            self.check()
