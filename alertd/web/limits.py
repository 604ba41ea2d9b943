"""Connection limits for the HTTP server (issue 15, item 3).

1,100 idle connections that sent their headers slowly used to exhaust the
process's file descriptors (systemd's default is 1,024): ``/healthz`` timed out,
polls were skipped and a start was dead-lettered. uvicorn has no connection cap
(``limit_concurrency`` answers 503 but still accepts the socket) and no deadline
for a request head (``timeout_keep_alive`` only covers the gap between requests).
:func:`limited_h11` adds both to uvicorn's h11 protocol:

* **a cap on open connections**, sized below the descriptor limit by
  :func:`connection_cap`. At the cap a new connection does not wait: the oldest
  connection still *waiting for its request* (a slow-header client, an idle
  keep-alive) is dropped to make room, so an attacker's pile of half-open
  connections churns while a real request — whose head arrives in one packet and
  is answered at once — gets through. Only when every connection is busy with a
  request is the new one closed.
* **a request deadline**: a client has ``header_timeout`` seconds from its first
  byte (or from connecting) to deliver a complete request, head and body; then
  the connection is closed.

It is still one process's budget: in production put a buffering reverse proxy
(nginx, Caddy) in front, as the README says.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ACCEPT_BACKLOG", "DESCRIPTOR_RESERVE", "connection_cap", "limited_h11"]

#: The listen backlog, which is also how many connections asyncio accepts in one go before any
#: protocol sees them (uvicorn's default is 2,048: enough to run past the descriptor limit
#: before the cap below gets a say). The reserve covers this burst.
ACCEPT_BACKLOG = 64

#: Descriptors kept for the daemon itself (polls, deliveries, the store, logs), at least.
DESCRIPTOR_RESERVE = 256

_WAITING = (h11.IDLE, h11.SEND_BODY)  # their_state while a request has not fully arrived


def connection_cap(configured: int, soft_limit: int | None = None) -> int:
    """``configured``, lowered to leave the daemon a quarter of the descriptors (at least 256) and
    room for accept bursts (1,024 → 512; systemd's ``LimitNOFILE=4096`` → the default 1,024).

    ``soft_limit`` defaults to this process's ``RLIMIT_NOFILE``; systemd's unit
    raises it with ``LimitNOFILE=``.
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit <= 0:
        return configured
    # the daemon's share, plus accept bursts: asyncio accepts a backlog's worth before the cap
    # runs, and a dropped connection's descriptor is freed one loop turn later
    reserve = max(DESCRIPTOR_RESERVE, soft_limit // 4) + 4 * ACCEPT_BACKLOG
    return max(16, min(configured, soft_limit - reserve))


def limited_h11(max_connections: int, header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's ``H11Protocol`` with a connection cap and a request deadline (one class per server)."""
    waiting: OrderedDict[LimitedH11, None] = OrderedDict()  # oldest first

    class LimitedH11(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _admitted = False

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) >= max_connections and not _evict_oldest_waiting():
                transport.abort()  # every connection is mid-request: no room for this one
                return
            self._admitted = True
            super().connection_made(transport)
            self._wait()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state in _WAITING:
                self._arm()  # the first byte of a new request on a kept-alive connection
            super().data_received(data)
            self._settle()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._settle()

        def connection_lost(self, exc: Exception | None) -> None:
            waiting.pop(self, None)
            self._disarm()
            if self._admitted:  # a connection refused in connection_made never reached uvicorn
                super().connection_lost(exc)

        # -- bookkeeping --------------------------------------------------------------------------
        def _wait(self) -> None:
            waiting[self] = None
            self._arm()

        def _settle(self) -> None:
            """After any progress: a fully received request leaves the waiting list and its deadline."""
            if self.transport is None or self.transport.is_closing():
                return
            if self.conn.their_state in _WAITING:
                waiting.setdefault(self, None)  # evictable; the deadline (if armed) keeps running
            else:
                waiting.pop(self, None)
                self._disarm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.conn.their_state in _WAITING and not self.transport.is_closing():
                waiting.pop(self, None)
                self.transport.abort()

    def _evict_oldest_waiting() -> bool:
        while waiting:
            oldest, _ = waiting.popitem(last=False)
            if oldest.transport is not None and not oldest.transport.is_closing():
                oldest._disarm()
                oldest.transport.abort()
                return True
        return False

    return LimitedH11
