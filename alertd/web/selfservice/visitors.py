"""Work that visitors of the public page trigger, kept in its own bounded box (issue 15, item 1).

Six requests to a channel server that answers one byte every two seconds used
to hold every thread of the default executor — the pool httpx also resolves the
upstream feeds' host names on — and alert polling stalled. Now every blocking
thing a visitor can cause (sending a confirmation code, resolving the host of a
URL they typed) runs here:

* a **pool of its own** (``selfservice.visitor_threads`` threads, never the
  loop's default executor, which belongs to the daemon);
* a **global cap** on sends in flight (the pool size) and a **per-client cap**
  (``selfservice.per_client_inflight``): past either, the visitor gets 429/503
  at once instead of queueing;
* a **hard total deadline** per send (``selfservice.send_deadline``), enforced
  by :mod:`alertd.channels.guard` cutting the send's sockets — the thread comes
  back, whatever timeouts the URL asked for;
* name lookups bounded by the same pool and a deadline.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from alertd.channels.guard import Guard, GuardExpired, Resolver, run_guarded

__all__ = ["Busy", "VisitorWork"]

T = TypeVar("T")


class Busy(Exception):
    """No room for this visitor's work now (``scope`` is "client" or "global")."""

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope


class VisitorWork:
    """The bounded pool and in-flight counters for visitor-triggered blocking work. One per process."""

    def __init__(
        self,
        *,
        threads: int = 4,
        per_client: int = 1,
        send_deadline: float = 10.0,
        resolve_deadline: float = 3.0,
        resolver: Resolver | None = None,
    ) -> None:
        self.threads = max(1, threads)
        self.per_client = max(1, per_client)
        self.send_deadline = send_deadline
        self.resolve_deadline = resolve_deadline
        self.resolver = resolver
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="alertd-visitor")
        self._inflight = 0
        self._by_client: Counter[str] = Counter()

    @property
    def inflight(self) -> int:
        return self._inflight

    def _enter(self, client: str) -> None:
        if self._by_client[client] >= self.per_client:
            raise Busy("client")
        if self._inflight >= self.threads:
            raise Busy("global")
        self._by_client[client] += 1
        self._inflight += 1

    def _leave(self, client: str) -> None:
        self._inflight -= 1
        self._by_client[client] -= 1
        if self._by_client[client] <= 0:
            del self._by_client[client]

    async def send(self, client: str, fn: Callable[..., T], *args: Any, allow_private: bool = False) -> T:
        """Run the blocking send ``fn(*args)`` guarded (connect-time address check + hard deadline).

        Raises :class:`Busy` when the client or the box is full, :class:`GuardExpired`
        when the deadline passed.
        """
        self._enter(client)
        try:
            guard = Guard(allow_private=allow_private, resolver=self.resolver)
            return await run_guarded(self._pool, guard, self.send_deadline, fn, *args)
        finally:
            self._leave(client)

    async def resolve(self, client: str, host: str) -> list[str]:
        """The addresses ``host`` resolves to, looked up in this pool (never the default executor)."""
        self._enter(client)
        loop = asyncio.get_running_loop()
        lookup = self.resolver or socket.getaddrinfo
        try:
            future = loop.run_in_executor(self._pool, lookup, host, None, 0, socket.SOCK_STREAM)
        except BaseException:
            self._leave(client)
            raise
        # the slot is given back when the lookup really ends, not when we stop waiting for it
        future.add_done_callback(lambda _f: self._leave(client))
        try:
            infos = await asyncio.wait_for(asyncio.shield(future), self.resolve_deadline)
        except TimeoutError:
            raise GuardExpired(f"no DNS answer within {self.resolve_deadline:g}s") from None
        return [str(info[4][0]).split("%", 1)[0] for info in infos]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
