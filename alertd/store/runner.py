"""StoreRunner: the store's calls, off the event loop, on one dedicated thread.

Why one thread: the daemon's loop must never wait on SQLite (a held write lock,
a slow disk, a full one): while it waits, ``/healthz`` cannot answer and no
poll or delivery moves. Every store call of the poll and dispatch paths goes
through :meth:`StoreRunner.call`, which runs it on this thread and awaits the
result. One thread, not a pool: store writes are serialized by the database
anyway, and one thread keeps their order the order they were asked in.

Transient failures (another writer holds the lock: ``StoreError.transient``)
are retried here a few times with a short pause, on top of the backend's own
short busy timeout; what still fails is raised to the caller, who treats it as
a condition (log once, back off, report), not a crash.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from alertd.errors import StoreError, StoreUnavailable
from alertd.logs import get_logger

__all__ = ["StoreHealth", "StoreRunner"]

log = get_logger("alertd.store")

P = ParamSpec("P")
T = TypeVar("T")


class StoreRunner:
    """``await runner.call(store.method, *args)``: the call runs on the store thread.

    ``retries`` extra attempts for a transient StoreError, ``retry_pause`` seconds
    times the attempt number between them (a write rolled back is safe to repeat).
    """

    def __init__(self, *, retries: int = 3, retry_pause: float = 0.25, name: str = "alertd-store") -> None:
        self.retries = retries
        self.retry_pause = retry_pause
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the store thread; its result, or its exception."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._attempts, fn, *args, **kwargs))

    def _attempts(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except StoreError as exc:
                if not exc.transient or attempt >= self.retries:
                    raise
                attempt += 1
                time.sleep(self.retry_pause * attempt)

    def close(self) -> None:
        """Finish what was asked, then stop the thread."""
        self._pool.shutdown(wait=True)


class StoreHealth:
    """Whether the store can be written, as its writers (the poll path, the dispatcher) find it.

    An *outage* runs from the first failed write of any writer until every writer
    that failed has written again. :meth:`failed` returns True only for the first
    failure of an outage and :meth:`recovered` returns the outage's length only for
    the write that ends it, so the caller logs (and tells operators) once each,
    however many polls and flushes fail in between. It writes those two log lines
    itself and calls ``on_outage(cause)`` / ``on_recovery(seconds)`` (operator
    notices). ``/healthz`` reads :meth:`problem`: 503 at once, naming the cause,
    until recovery.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_outage: Callable[[str], None] | None = None,
        on_recovery: Callable[[float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_outage = on_outage
        self._on_recovery = on_recovery
        self._failing: dict[str, str] = {}  # writer -> the cause it last saw
        self._since: float | None = None
        self._first_cause: str | None = None
        self._quiet = False  # this outage is a shared database's: it logs its own lines

    @property
    def writable(self) -> bool:
        return not self._failing

    def failed(self, writer: str, exc: StoreError) -> bool:
        """Record a failed write by ``writer``; True if this starts an outage."""
        new = not self._failing
        joined = writer not in self._failing
        self._failing[writer] = exc.cause
        # A shared database that cannot be reached logs its own outage and recovery, once each
        # (alertd.store.postgres): no second pair of lines for the same outage here.
        quiet = isinstance(exc, StoreUnavailable)
        if new:
            self._since = self._clock()
            self._first_cause = exc.cause
            self._quiet = quiet
            if not quiet:
                log.error("state store cannot be written", writer=writer, cause=exc.cause, error=str(exc))
            if self._on_outage is not None:
                self._on_outage(exc.cause)
        elif joined:  # the same outage seen by another writer: one line per outage, not one per writer
            log.debug("state store cannot be written", writer=writer, cause=exc.cause)
        return new

    def recovered(self, writer: str) -> float | None:
        """Record a good write by ``writer``; the outage's seconds if this ended it, else None."""
        if self._failing.pop(writer, None) is None or self._failing:
            return None
        since, self._since = self._since, None
        down = self._clock() - since if since is not None else 0.0
        if not self._quiet:
            log.info("state store writable again", writer=writer, down_for=f"{down:.0f}s")
        if self._on_recovery is not None:
            self._on_recovery(down)
        return down

    def problem(self) -> dict[str, Any] | None:
        """None when writable, else what ``/healthz`` shows: the cause, who fails, for how long."""
        if not self._failing:
            return None
        cause = next(reversed(self._failing.values()))
        down = self._clock() - self._since if self._since is not None else 0.0
        return {
            "ok": False,
            "reason": f"state store cannot be written: {cause}",
            "cause": cause,
            "first_cause": self._first_cause,
            "writers": sorted(self._failing),
            "failing_seconds": round(down, 1),
        }
