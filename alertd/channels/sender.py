"""Sending many messages fairly: worker threads, per-host lanes, rate limits, hard deadlines.

One mechanism answers four needs (issues 11 and 12):

* **No head-of-line blocking, no idle slots.** Every service host has its own
  lane. Slots go first to hosts below their fair share (``concurrency`` divided
  by the hosts that have work); a slot no such host can use right now (it is
  paused, over its rate, hung or has nothing queued) goes to a host that can,
  so a fast host beside a hanging one is not held to a third of the workers.
  No host ever holds more than three quarters of the slots.
* **A hanging host shrinks itself.** Each host also has an adaptive cap (slow
  start and AIMD on latency): it starts at :data:`INITIAL_HOST_CAP`, grows by one
  with every send answered quickly and falls to :data:`SLOW_HOST_CAP` while one of
  its sends has gone unanswered far longer than sends usually take here, to one
  after a send runs past its deadline. A host whose sends hang therefore holds
  only a few slots, and the others share the rest.
  :meth:`Sender.ready_in` tells callers when such a host's queue would drain,
  so they put its rows back instead of holding them in its lane.
* **A hard deadline per send, and the worker given back.** A send still running
  at its deadline is abandoned: its slot is freed at once and the result is
  "timed out, may have been delivered". Its thread is counted as *stalled* for
  its host until the plugin returns; a host with too many stalled threads gets
  no new ones (a hung service never grows the thread count without bound).
* **Rate limits per host.** A token bucket per host (``[delivery.limits]`` or
  :data:`alertd.channels.services.DEFAULT_HOST_RATES`). A "slow down" answer
  (429, Telegram's ``retry_after``) pauses that host only, for as long as the
  service asked, and lowers the host's rate to what it was getting through; the
  send is queued again (a bounded number of times) rather than failed.
* **Priority.** Each lane is a priority queue; among hosts that may send now,
  the one whose next message has the best priority goes first, ties taken in
  turn (round robin), so equal work is spread evenly over hosts.

Threads, not Apprise's ``async_notify``: Apprise hands every blocking send to
its own small shared pool (``min(32, cpus + 4)``), so one slow sink would queue
everyone behind it. Our workers are plain threads kept idle between sends.

A :class:`Sender` is cheap: the self-service web page builds its own (its own
threads, its own budget) so nothing a visitor does takes a slot alerting needs,
and may wrap sends with a ``guard`` (e.g. a connect-time address check).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from alertd import channels as _channels
from alertd.channels.guard import Guard
from alertd.channels.keepalive import KeepAlive

__all__ = ["Sender", "SenderStats"]

#: A send answered "slow down" is queued again at most this many times before it is reported.
RATE_LIMIT_REQUEUES = 3
#: Idle worker threads beyond the concurrency exit; idle ones exit after this many seconds.
IDLE_THREAD_SECONDS = 60.0
#: A host's adaptive cap starts here: a host never heard from cannot take every slot at once.
INITIAL_HOST_CAP = 8
#: … and falls to this while one of its sends goes unanswered for long (see :meth:`Sender._slow_after`).
SLOW_HOST_CAP = 2
#: A send is "slow" after this many times the usual latency, never sooner than SLOW_FLOOR seconds
#: and never later than half its timeout.
SLOW_FACTOR = 8.0
SLOW_FLOOR = 1.0


class _Workers:
    """Plain worker threads: an idle one takes the next job, a new one starts when none is idle.

    Unlike ``ThreadPoolExecutor`` a job that never returns does not keep its
    thread from being replaced: the caller stops waiting (see
    :meth:`Sender.send`) and the next job simply starts another thread. When
    the stuck job finally returns, its thread becomes idle like any other.
    """

    def __init__(self, name: str, max_idle: int) -> None:
        self._name = name
        self._max_idle = max(1, max_idle)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._closed = False
        self.threads = 0

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in an idle worker, or a new one. ``fn`` reports its own outcome (see :class:`_Inbox`)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                self.threads += 1
        if worker is None:
            worker = _Worker(self, f"{self._name}-{next(self._count)}")
            worker.start()
        worker.jobs.put(fn)

    def _parked(self, worker: _Worker) -> bool:
        """A worker finished its job: keep it idle (True) or let its thread end (False)."""
        with self._lock:
            if self._closed or len(self._idle) >= self._max_idle:
                self.threads -= 1
                return False
            self._idle.append(worker)
            return True

    def _retire(self, worker: _Worker) -> bool:
        """An idle worker timed out waiting: end its thread unless a job was just handed to it."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                self.threads -= 1
                return True
            return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self.threads -= len(idle)
        for worker in idle:
            worker.jobs.put(None)


class _Worker(threading.Thread):
    def __init__(self, pool: _Workers, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.pool = pool
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_THREAD_SECONDS)
            except queue.Empty:
                if self.pool._retire(self):
                    return
                continue
            if job is None:
                return
            with contextlib.suppress(Exception):  # a job reports its own errors; the worker must survive
                job()
            del job
            if not self.pool._parked(self):
                return


class _DeadlinePassed(Exception):
    """A send's hard deadline passed before its worker answered."""


class _Pending:
    """One send handed to a worker: the loop's future for it, and what to do if it returns too late."""

    __slots__ = ("future", "on_late", "returned")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.on_late: Callable[[], None] | None = None
        self.returned = False  # the worker's answer came in after the future was already settled

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(_DeadlinePassed())


class _Inbox:
    """Answers from worker threads back to the event loop, many per wake-up.

    A thread hand-off per send (``concurrent.futures.Future`` + ``wrap_future`` +
    ``wait_for``) cost the loop more than the send itself cost its worker at a
    thousand sends a second (py-spy, issue 12). Here a worker appends its answer
    to a deque and wakes the loop only if no wake-up is pending; the loop takes
    every answer waiting at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._answers: deque[tuple[_Pending, Any, BaseException | None]] = deque()
        self._woken = False

    def put(self, pending: _Pending, result: Any, error: BaseException | None) -> None:
        """From a worker thread."""
        self._answers.append((pending, result, error))
        if not self._woken:
            self._woken = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._woken = False  # before taking: an answer added from now on wakes the loop again
        answers = self._answers
        while answers:
            pending, result, error = answers.popleft()
            future = pending.future
            if not future.done():
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            elif pending.on_late is not None:  # abandoned at its deadline, returned since
                pending.on_late()
            else:  # settled (deadline, cancelled) but not abandoned yet: _abandon sees this
                pending.returned = True


@dataclass
class _Host:
    """One service host's lane."""

    name: str
    rate: float | None  # requests/s; None = unlimited
    burst: float
    tokens: float
    refilled: float
    queue: list[tuple[int, int, asyncio.Future[bool | None]]] = field(default_factory=list)
    inflight: int = 0
    stalled: int = 0
    paused_until: float = 0.0
    last_grant: int = 0
    configured: float | None = None  # the configured/default rate: the learned rate never exceeds it
    ok_streak: int = 0
    recent: deque[float] = field(default_factory=deque)  # completion times within the last second
    sent: int = 0
    throttled: int = 0
    timeouts: int = 0
    limit: float = float(INITIAL_HOST_CAP)  # adaptive concurrency cap (slow start, AIMD on latency)
    latency: float | None = None  # moving average of answered sends, seconds
    timeout: float = 0.0  # the last send's timeout
    running: dict[int, float] = field(default_factory=dict)  # send id -> start, oldest first

    def refill(self, now: float) -> None:
        if self.rate is None:
            return
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now

    def wait(self, now: float) -> float:
        """Seconds until this host may start a send (0 = now), pauses and rate together."""
        wait = max(0.0, self.paused_until - now)
        if self.rate is not None and self.tokens < 1.0:
            wait = max(wait, (1.0 - self.tokens) / self.rate)
        return wait


@dataclass(frozen=True)
class SenderStats:
    """Figures for metrics and benchmarks."""

    in_flight: int
    queued: int
    stalled: int
    threads: int
    abandoned: int
    per_host: dict[str, dict[str, float]]


class Sender:
    """Sends through our own worker threads, fairly across service hosts, within each host's rate."""

    def __init__(
        self,
        concurrency: int,
        *,
        rates: Mapping[str, float] | None = None,
        name: str = "alertd-send",
        guard: Callable[[_channels.Channel], str | None] | None = None,
        send: Callable[..., _channels.SendResult] | None = None,
        keepalive: KeepAlive | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self._rates = dict(rates or {})
        self._guard = guard
        self._send = send or _channels.send
        self._workers = _Workers(name, self.concurrency)
        # Unguarded sends reuse their host's connections (room for every slot plus stalled threads).
        self.keepalive = keepalive or KeepAlive(2 * self.concurrency)
        self._reaper: asyncio.TimerHandle | None = None
        self._inbox: _Inbox | None = None
        self._hosts: dict[str, _Host] = {}
        self._free = self.concurrency
        self._seq = itertools.count()
        self._grants = itertools.count(1)
        self._runs = itertools.count(1)
        self._latency: float | None = None  # all hosts: what "usual" means for a host never answered
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.abandoned = 0
        # A host may hold at most this many slots, so a hanging one leaves room for the rest …
        self._host_cap = (
            self.concurrency - self.concurrency // 4 if self.concurrency >= 4 else self.concurrency
        )
        # … and at most this many stalled threads before it gets no new ones.
        self._stall_cap = max(1, self.concurrency // 4)

    # -- public --------------------------------------------------------------------------------
    def ready_in(self, host: str) -> float:
        """Seconds before ``host`` may be sent to again (a pause or its rate); 0 when it may now."""
        lane = self._hosts.get(host)
        if lane is None:
            return 0.0
        now = time.monotonic()
        lane.refill(now)
        backlog = len(lane.queue) / lane.rate if lane.rate else 0.0
        stalled = 5.0 if lane.stalled >= self._stall_cap else 0.0  # hung: no new thread until one returns
        return max(lane.wait(now) + backlog, stalled, self._hung_for(lane, now))

    def _hung_for(self, lane: _Host, now: float) -> float:
        """A host at its cap: about when its queue drains, so callers hold no rows that would wait long.

        One round of sends takes the host's usual latency, or, for a host that never
        answered while others did, at least as long as its oldest send has been running; a slow send
        (see :meth:`_slow_after`) is expected to take its whole timeout.
        """
        if not lane.running:
            return 0.0
        cap = self._lane_cap(lane, now)
        if lane.inflight < cap:
            return 0.0
        age = now - next(iter(lane.running.values()))
        if age > self._slow_after(lane):
            return max(0.0, lane.timeout - age) + lane.timeout * len(lane.queue) / cap
        if lane.latency is not None:
            per_round = lane.latency
        elif self._latency is not None and age > SLOW_FACTOR * self._latency:
            per_round = age  # never answered, while other hosts answer far sooner
        else:
            return 0.0  # too early to tell (a first send may load a plugin)
        return per_round * (len(lane.queue) + 1) / cap

    def pause(self, host: str, seconds: float) -> None:
        lane = self._lane(host)
        lane.paused_until = max(lane.paused_until, time.monotonic() + seconds)

    @property
    def busy(self) -> int:
        """Sends running or queued (the dispatcher's window)."""
        return self.concurrency - self._free + sum(len(h.queue) for h in self._hosts.values())

    @property
    def free(self) -> int:
        return self._free

    def stats(self) -> SenderStats:
        return SenderStats(
            in_flight=self.concurrency - self._free,
            queued=sum(len(h.queue) for h in self._hosts.values()),
            stalled=sum(h.stalled for h in self._hosts.values()),
            threads=self._workers.threads,
            abandoned=self.abandoned,
            per_host={
                h.name: {
                    "sent": h.sent,
                    "throttled": h.throttled,
                    "timeouts": h.timeouts,
                    "stalled": h.stalled,
                    "rate": h.rate or 0.0,
                }
                for h in self._hosts.values()
            },
        )

    async def send(
        self,
        channel: _channels.Channel,
        title: str,
        body: str,
        notify_type: str,
        body_format: str | None = "text",
        *,
        timeout: float,
        priority: int = 0,
        guard: Guard | None = None,
        max_wait: float | None = None,
        release_after: asyncio.Future[Any] | None = None,
    ) -> _channels.SendResult:
        """Send one message when its host's lane lets it, within ``timeout`` seconds of starting.

        Waiting for a slot or a rate token does not count against ``timeout``. A
        "slow down" answer pauses the host and queues the send again (at most
        :data:`RATE_LIMIT_REQUEUES` times). Under a ``guard``
        (:class:`alertd.channels.guard.Guard`, a resident's raw URL) every connect is
        checked and the send's sockets are cut at the deadline. ``max_wait``: give
        up waiting for the host's lane after this many seconds and return a result
        with ``not_sent`` set (the caller puts the message back in its queue), so
        messages for a slow host do not sit in the caller's window.

        ``release_after``: a send that ran keeps its slot until this future is done
        (the dispatcher resolves it once the outcome is durably recorded), so the
        sends that finished but are not recorded yet count against ``concurrency``:
        a kill can repeat at most ``concurrency`` sends. A send that did not run
        (throttled, not granted, cancelled) gives its slot back at once.
        """
        if not channel.usable:
            return _channels.SendResult(False, channel.error or "channel unusable")
        if self._guard is not None:
            refusal = self._guard(channel)
            if refusal:
                return _channels.SendResult(False, refusal)
        self._loop = asyncio.get_running_loop()
        lane = self._lane(channel.host)
        result = _channels.SendResult(False, "not sent")
        for _ in range(RATE_LIMIT_REQUEUES + 1):
            if not await self._acquire(lane, priority, max_wait):
                return _channels.SendResult(
                    False, "the service host is busy; queued again", not_sent=True, retry_after=max_wait
                )
            held = False
            try:
                result = await self._run(lane, channel, title, body, notify_type, body_format, timeout, guard)
                held = release_after is not None and result.retry_after is None
            finally:
                if held:
                    assert release_after is not None
                    release_after.add_done_callback(partial(self._give_back, lane))
                else:
                    self._release(lane)
            if result.retry_after is None:
                break
            self._throttled(lane, result.retry_after)
        return result

    def close(self) -> None:
        """Let idle threads end (a send still running finishes in the background)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._reaper is not None:
            self._reaper.cancel()
        self._workers.close()
        self.keepalive.close()

    # -- lanes ---------------------------------------------------------------------------------
    def _lane(self, host: str) -> _Host:
        lane = self._hosts.get(host)
        if lane is None:
            limit = _channels.host_rate(host, self._rates)
            now = time.monotonic()
            rate = limit.rate if limit else None
            burst = limit.burst if limit else 1.0
            lane = _Host(host, rate, burst, burst, now, configured=rate)
            self._hosts[host] = lane
        return lane

    async def _acquire(self, lane: _Host, priority: int, max_wait: float | None = None) -> bool:
        """Wait for a slot on ``lane``: True once granted; False when ``max_wait`` passed first.

        A slot free at once is taken without suspending, the usual case in a fan-out:
        no timer and no task per send (``asyncio.wait_for`` made both).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool | None] = loop.create_future()
        heapq.heappush(lane.queue, (priority, next(self._seq), waiter))
        self._grant()
        if waiter.done():
            return True
        timer = None if max_wait is None else loop.call_later(max_wait, self._expire, lane, waiter)
        try:
            granted = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled: give it back
                if waiter.result() is not False:
                    self._release(lane)
            else:
                self._unqueue(lane, waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return granted is not False

    def _expire(self, lane: _Host, waiter: asyncio.Future[bool | None]) -> None:
        """``max_wait`` passed without a slot: the send leaves the lane's queue, holding nothing."""
        if not waiter.done():
            waiter.set_result(False)
            self._unqueue(lane, waiter)

    @staticmethod
    def _unqueue(lane: _Host, waiter: asyncio.Future[Any]) -> None:
        lane.queue = [e for e in lane.queue if e[2] is not waiter]
        heapq.heapify(lane.queue)

    def _give_back(self, lane: _Host, _recorded: asyncio.Future[Any]) -> None:
        """The held slot of a send that ran: its outcome is recorded now."""
        self._release(lane)

    def _release(self, lane: _Host) -> None:
        lane.inflight -= 1
        self._free += 1
        self._grant()

    def _share(self) -> int:
        """A host's fair share: the slots divided among the hosts that have work."""
        active = sum(1 for h in self._hosts.values() if h.queue or h.inflight)
        return max(1, math.ceil(self.concurrency / max(1, active)))

    def _slow_after(self, lane: _Host) -> float:
        """Seconds after which a send to ``lane`` counts as slow: far beyond the usual latency."""
        usual = lane.latency if lane.latency is not None else self._latency
        slow = SLOW_FLOOR if usual is None else max(SLOW_FLOOR, SLOW_FACTOR * usual)
        return min(slow, lane.timeout / 2) if lane.timeout > 0 else slow

    def _lane_cap(self, lane: _Host, now: float) -> int:
        """The most sends ``lane`` may have running: its adaptive cap, fewer while a send is slow."""
        cap = min(self._host_cap, max(1, int(lane.limit)))
        if lane.running and now - next(iter(lane.running.values())) > self._slow_after(lane):
            cap = min(cap, SLOW_HOST_CAP)
        return cap

    def _grant(self) -> None:
        """Hand free slots to waiting sends: best priority first, hosts in turn, within rates.

        Hosts below their fair share go first; a slot none of them can take now
        goes to a host above its share (work-conserving), within its own cap.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        total_stalled = sum(h.stalled for h in self._hosts.values())
        retry_in: float | None = None
        while self._free > 0:
            share = self._share()
            best: _Host | None = None  # below its fair share
            spare: _Host | None = None  # above it: only when no host below can send now
            for lane in self._hosts.values():
                while lane.queue and lane.queue[0][2].done():  # cancelled waiters
                    heapq.heappop(lane.queue)
                if not lane.queue or lane.inflight >= self._lane_cap(lane, now):
                    continue
                if lane.stalled >= self._stall_cap or (lane.stalled and total_stalled >= self.concurrency):
                    continue  # a hung host gets no new threads until some of its sends return
                lane.refill(now)
                wait = lane.wait(now)
                if wait > 0:
                    retry_in = wait if retry_in is None else min(retry_in, wait)
                    continue
                key = (lane.queue[0][0], lane.last_grant)
                if lane.inflight < share:
                    if best is None or key < (best.queue[0][0], best.last_grant):
                        best = lane
                elif spare is None or key < (spare.queue[0][0], spare.last_grant):
                    spare = lane
            best = best or spare
            if best is None:
                break
            _, _, waiter = heapq.heappop(best.queue)
            best.inflight += 1
            best.last_grant = next(self._grants)
            if best.rate is not None:
                best.tokens -= 1.0
            self._free -= 1
            waiter.set_result(None)
        if retry_in is not None and self._loop is not None:
            self._timer = self._loop.call_later(retry_in + 0.001, self._grant)

    # -- one send ------------------------------------------------------------------------------
    async def _run(
        self,
        lane: _Host,
        channel: _channels.Channel,
        title: str,
        body: str,
        notify_type: str,
        body_format: str | None,
        timeout: float,
        guard: Guard | None,
    ) -> _channels.SendResult:
        send = self._send
        loop = asyncio.get_running_loop()
        if guard is None:  # over the host's kept-alive connections (never for a guarded send: see keepalive)
            work = partial(
                self.keepalive.run,
                channel.host,
                send,
                channel,
                title,
                body,
                notify_type,
                body_format,
                timeout=timeout,
            )
            timer = None
            deadline = timeout
            self._schedule_reap()
        else:  # the guard cuts the send's sockets at the deadline, so its thread really comes back
            work = partial(guard.run, send, channel, title, body, notify_type, body_format, timeout=timeout)
            timer = loop.call_later(timeout, guard.expire)
            deadline = timeout + 2.0
        pending = self._submit(loop, work)
        expiry = loop.call_later(deadline, pending.expire)
        lane.timeout = timeout
        run = next(self._runs)
        began = lane.running[run] = time.monotonic()  # running sends, oldest first (_hung_for, _lane_cap)
        try:
            result: _channels.SendResult = await pending.future
        except _DeadlinePassed:
            self._abandon(lane, pending)
            lane.timeouts += 1
            lane.limit = 1.0  # past its deadline: one send at a time until sends answer quickly again
            return _channels.SendResult(
                False,
                f"no answer within {timeout:g}s (may have been delivered)",
                timed_out=True,
                maybe_delivered=True,
                took=time.monotonic() - began,
            )
        except Exception as exc:  # a bug in the send path is a failed send, not a dead dispatcher
            return _channels.SendResult(False, f"internal error: {type(exc).__name__}")
        finally:
            lane.running.pop(run, None)
            expiry.cancel()
            if timer is not None:
                timer.cancel()
        if not result.ok and guard is not None and guard.refused:
            return _channels.SendResult(False, "refused: the channel's address is not a public one")
        self._completed(lane, result, time.monotonic() - began)
        return result

    def _schedule_reap(self) -> None:
        """Close idle hosts' connections :data:`keepalive.IDLE_SECONDS` after their last send."""
        if self._reaper is None and self._loop is not None and not self._loop.is_closed():
            self._reaper = self._loop.call_later(self.keepalive.idle + 1.0, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        if self.keepalive.reap():
            self._schedule_reap()

    def _submit(self, loop: asyncio.AbstractEventLoop, work: Callable[[], _channels.SendResult]) -> _Pending:
        """Hand ``work`` to a worker thread; its answer arrives on ``pending.future`` (via the inbox)."""
        inbox = self._inbox
        if inbox is None or inbox.loop is not loop:
            inbox = self._inbox = _Inbox(loop)
        pending = _Pending(loop.create_future())

        def job() -> None:
            try:
                result, error = work(), None
            except BaseException as exc:  # handed to the waiting coroutine
                result, error = None, exc
            inbox.put(pending, result, error)

        self._workers.submit(job)
        return pending

    def _abandon(self, lane: _Host, pending: _Pending) -> None:
        """Stop waiting for a send still running: its thread is stalled on this host until it returns."""
        if pending.returned:  # its answer came in right behind the deadline: nothing is stalled
            return
        self.abandoned += 1
        lane.stalled += 1
        pending.on_late = partial(self._unstall, lane)

    def _unstall(self, lane: _Host) -> None:
        lane.stalled = max(0, lane.stalled - 1)
        self._grant()

    def _completed(self, lane: _Host, result: _channels.SendResult, took: float) -> None:
        now = time.monotonic()
        while lane.recent and lane.recent[0] < now - 1.0:
            lane.recent.popleft()
        if result.retry_after is not None:
            return
        self._adapt(lane, took)
        lane.recent.append(now)  # answers that got through, for the rate after a "slow down"
        lane.sent += 1
        if lane.rate is not None and lane.rate != lane.configured:
            # additive increase after a "slow down": +5 % every 20 answers that were not one
            lane.ok_streak += 1
            if lane.ok_streak >= 20:
                lane.ok_streak = 0
                grown = lane.rate * 1.05
                lane.rate = grown if lane.configured is None or grown < lane.configured else lane.configured
                if lane.configured is None and lane.rate > 10_000:
                    lane.rate = None

    def _adapt(self, lane: _Host, took: float) -> None:
        """AIMD on latency: a quick answer widens the host's cap by one, a slow one halves it."""
        if took > self._slow_after(lane):
            lane.limit = max(1.0, min(lane.limit / 2, float(SLOW_HOST_CAP)))
        else:
            lane.limit = min(float(self._host_cap), lane.limit + 1.0)
        lane.latency = took if lane.latency is None else 0.8 * lane.latency + 0.2 * took
        self._latency = took if self._latency is None else 0.95 * self._latency + 0.05 * took

    def _throttled(self, lane: _Host, retry_after: float) -> None:
        """The host said "slow down": pause it for as long as it asked and lower its rate."""
        lane.throttled += 1
        lane.ok_streak = 0
        lane.paused_until = max(lane.paused_until, time.monotonic() + max(0.05, retry_after))
        got_through = max(1.0, len(lane.recent) * 0.8)
        lane.rate = got_through if lane.rate is None else max(0.2, min(lane.rate, got_through))
        lane.burst = max(1.0, min(lane.burst, lane.rate))
        lane.tokens = min(lane.tokens, lane.burst)
