"""The dispatcher: drains the outbox through Apprise, records every outcome, retries, gives up honestly.

Shape (DESIGN §1 step 6, §3 "stale work", §6 logs):

* **One pump.** :meth:`Dispatcher.run` claims due outbox rows (``store.claim_due``
  marks them ``sending``), delivers them concurrently and records outcomes in
  batches (one ``store.finish`` per flush), then sleeps until :meth:`wake` is
  called, a retry falls due, or it is stopped. A slow channel occupies one worker,
  never the loop: new events are claimed while old deliveries are still in flight.
* **Apprise runs in our own threads.** Apprise 2.3 has ``async_notify``, but it
  hands every blocking ``send()`` to Apprise's *shared* pool, sized
  ``min(32, cpus + 4)`` (6 threads on a 2-CPU box) whatever our ``concurrency``
  says, and one slow sink would queue everyone behind it. So each channel's
  Apprise object is built with ``AppriseAsset(async_mode=False, service_timeout=0)``
  — which makes ``notify()`` run the plugin inline in the calling thread — and
  called in a ``ThreadPoolExecutor`` of our own sized to ``delivery.concurrency``
  (capped, see :data:`MAX_WORKERS`); ``delivery.timeout`` is enforced around it
  with ``asyncio.wait_for``.
* **One Apprise object per channel URL**, cached (bounded LRU): a URL is parsed
  once, and Apprise's per-plugin throttling (``request_rate_per_sec``) works
  because the same plugin object sends every message to that channel. One URL
  per object means the object's boolean result *is* the channel's outcome.
* **No URL in logs.** Apprise's own records are kept away from the application's
  handlers (the ``apprise`` logger does not propagate, see
  :func:`isolate_apprise_logging`); what Apprise says during a send is read back
  from the per-call capture in its result, scrubbed of every part of the URL and
  of phone numbers, and becomes the ``error=`` of our one log line per outcome.

Stale work (DESIGN §3): a start whose alert has already ended is superseded (the
end carries it as one combined notice); a start older than
``delivery.start_max_age`` is dead-lettered rather than sent late; an end is
never dropped (it retries forever, backoff capped at ``retry_max``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from alertd import channels
from alertd.channels import Channel, ChannelCache
from alertd.channels.guard import Guard
from alertd.config import Settings
from alertd.core import render
from alertd.core.model import AlertEvent, AlertKind, EventStatus
from alertd.core.tracker import event_id
from alertd.errors import StoreError
from alertd.logs import kv, mask_phone
from alertd.store.base import OutboxItem, Outcome, StateStore

if TYPE_CHECKING:
    from alertd.run.operators import OperatorNotifier

__all__ = [
    "MAX_WORKERS",
    "DispatchHooks",
    "Dispatcher",
    "backoff_delay",
    "send_test",
]

log = logging.getLogger("alertd.run.dispatch")

#: Threads are the unit of Apprise concurrency; beyond this many they cost more than they give.
MAX_WORKERS = 256
#: How long an end waits when its channel's start is being sent right now.
END_WAITS_FOR_START = 2.0
#: Outcomes are written together: at most this long after the first of them finished …
FLUSH_INTERVAL = 0.1
#: … or as soon as this many are waiting.
FLUSH_SIZE = 200
#: Rendered messages kept (per event × language × channel limits × footer); cleared when full.
RENDER_CACHE_SIZE = 512
#: Seconds before the pump looks again after a shared store could not be reached.
STORE_RETRY = 1.0
#: Upper bound on one idle sleep, so rows written by another process are seen eventually.
IDLE_RECHECK = 30.0

_DIGITS = re.compile(r"\+?\d{8,}")


def _known_channels(settings: Settings, store: StateStore) -> int:
    """How many channel URLs the configuration and the store name (the fan-out's upper bound)."""
    count = sum(len(sub.urls) for sub in settings.subscribers) + len(settings.operators.urls)
    with contextlib.suppress(Exception):  # sizing a cache must never stop delivery
        count += sum(len(rec.urls) for rec in store.subscribers())
    return count


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """``base * 2**(attempt-1)`` capped at ``cap``, with ±25 % jitter so a recovering sink is not stampeded."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return min(cap, delay * (0.75 + 0.5 * rand()))


# ------------------------------------------------------------------------------------------------
# hooks


class DispatchHooks(Protocol):
    """What the dispatcher tells the rest of the process (metrics)."""

    def delivered(self, event: AlertEvent, latency_seconds: float) -> None: ...
    def failed(self, event: AlertEvent) -> None: ...
    def dead(self, event: AlertEvent) -> None: ...


class NoHooks:
    """The default: tell nobody."""

    def delivered(self, event: AlertEvent, latency_seconds: float) -> None:
        pass

    def failed(self, event: AlertEvent) -> None:
        pass

    def dead(self, event: AlertEvent) -> None:
        pass


# ------------------------------------------------------------------------------------------------
# the dispatcher


@dataclass(frozen=True)
class _Send:
    """A claimed row that must go out, and the start it carries when it is a combined notice."""

    item: OutboxItem
    combined_start: AlertEvent | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """Drains the outbox through Apprise. One per process; lives on one asyncio loop."""

    def __init__(
        self,
        store: StateStore,
        settings: Settings,
        *,
        hooks: DispatchHooks | None = None,
        operators: OperatorNotifier | None = None,
        clock: Callable[[], datetime] = _utcnow,
        batch_size: int = 500,
        cache_size: int = 4096,
        dead_letter_window: float = 5.0,
        footer_for: Callable[[str, str], str | None] | None = None,
        guard_for: Callable[[str, Channel], Guard | None] | None = None,
    ) -> None:
        # Self-service subscribers get "Manage or leave: <link>" under every message:
        # footer_for(subscriber name, language) -> footer line or None (alertd.web.selfservice).
        self._footer_for = footer_for
        # Channels a resident typed as a raw URL are sent under the connect-time guard:
        # guard_for(subscriber name, channel) -> Guard or None (alertd.web.selfservice; issue 15).
        self._guard_for = guard_for
        self.store = store
        self.settings = settings
        self.delivery = settings.delivery
        self.hooks: DispatchHooks = hooks if hooks is not None else NoHooks()
        if operators is None:
            from alertd.run.operators import OperatorNotifier

            operators = OperatorNotifier(
                [u.get_secret_value() for u in settings.operators.urls], settings.operators.language
            )
        self.operators = operators
        self._clock = clock
        self._batch_size = max(1, batch_size)
        # An LRU smaller than one event's fan-out misses on *every* delivery (a cyclic scan evicts
        # each URL just before it is needed again), and each miss re-parses the URL with Apprise:
        # so the cache holds at least every channel known at start-up (config + store).
        self._channels = ChannelCache(
            max(cache_size, _known_channels(settings, store)), timeout=self.delivery.timeout
        )
        self._workers = max(1, min(self.delivery.concurrency, MAX_WORKERS))
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="alertd-send")
        self._sem = asyncio.Semaphore(self._workers)
        self._tz = ZoneInfo(settings.timezone)
        self._templates = dict(settings.templates) or None
        self._rendered: dict[tuple[Any, ...], Any] = {}  # see _render_and_send
        self._ended: dict[str, bool] = {}  # end event id -> stored? (memo of one _start pass)
        # pump state
        self._signal = asyncio.Event()
        self._woken = True  # the first pass always looks for due rows
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._buffer: list[tuple[Outcome, OutboxItem]] = []
        self._buffer_since = 0.0
        self._background: set[asyncio.Task[Any]] = set()
        self._pumping = asyncio.Lock()
        self._dead: dict[str, list[Any]] = {}  # event id -> [event, channels, last error]
        self._dead_sleepers: dict[str, asyncio.Task[Any]] = {}
        self._dead_letter_window = dead_letter_window
        self._requeued = False
        self._locks: dict[str, asyncio.Lock] = {}

    # -- public ----------------------------------------------------------------------------------
    def wake(self) -> None:
        """New outbox rows were committed: look for due work now (callable from any thread)."""
        self._woken = True
        loop = self._loop
        if loop is None or loop.is_closed():
            self._signal.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._signal.set()
        else:
            loop.call_soon_threadsafe(self._signal.set)

    def _requeue_once(self) -> None:
        """Rows left 'sending' by a previous process go out again (only the first pass may do this:
        later, 'sending' rows are our own deliveries in flight)."""
        if self._requeued:
            return
        try:
            again = self.store.requeue_inflight()
        except StoreError as exc:  # a shared store unreachable at start-up: the pump tries again
            if not exc.transient:
                raise
            return
        self._requeued = True
        if again:
            log.warning(f"{again} deliveries were in flight at the last stop; sending again")

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; rows cut off by the last stop are sent again first."""
        self._requeue_once()
        watcher = asyncio.create_task(self._relay(stop))
        try:
            await self._pump(stop=stop, until_idle=False)
        finally:
            watcher.cancel()
            await self._settle(cancel=False)

    async def drain(self, timeout: float | None = None) -> None:
        """Deliver until nothing is due *now* (``alertd run --once``, tests); rows retrying later stay pending.

        On ``timeout`` the deliveries still running are abandoned: their rows stay
        ``sending`` and go out again at the next start (at-least-once).
        """
        self._requeue_once()
        try:
            await asyncio.wait_for(self._pump(stop=None, until_idle=True), timeout)
            await self._settle(cancel=False)  # dead letters are reported now, not after the window
        except TimeoutError:
            log.warning(
                f"delivery drain stopped after {timeout:g}s with {len(self._inflight)} deliveries still "
                "in flight; they are sent again at the next start"
            )
            await self._settle(cancel=True)

    def close(self) -> None:
        """Release the worker threads (a send still running finishes in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the pump --------------------------------------------------------------------------------
    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._signal.set()

    async def _pump(self, *, stop: asyncio.Event | None, until_idle: bool) -> None:
        async with self._pumping:
            self._loop = asyncio.get_running_loop()
            while True:
                stopping = stop is not None and stop.is_set()
                try:
                    self._maybe_flush(force=stopping or not self._inflight)
                    if stopping:
                        return
                    self._requeue_once()
                    room = self._batch_size - len(self._inflight)
                    # Claim when asked to (wake, timer) or when at least a quarter of the window is
                    # free: not once per finished delivery, which would be a transaction each.
                    if room > 0 and (self._woken or not self._inflight or room >= self._batch_size // 4):
                        self._woken = False
                        items = self.store.claim_due(self._clock(), limit=room)
                        if items:
                            self._start(items)
                            continue
                    if until_idle and not self._inflight and not self._buffer:
                        due = self.store.next_due()
                        if due is None or due > self._clock():
                            return
                        self._woken = True
                        continue
                    timeout = self._sleep_time(room)
                except StoreError as exc:
                    # A shared store unreachable (it logged the outage once): outcomes stay
                    # buffered, rows stay in the database; look again shortly.
                    if not exc.transient:
                        raise
                    if stopping:
                        return
                    self._woken = True
                    timeout = STORE_RETRY
                await self._sleep(timeout)

    def _sleep_time(self, room: int) -> float:
        timeout = IDLE_RECHECK
        if self._buffer:
            timeout = min(timeout, max(0.0, self._buffer_since + FLUSH_INTERVAL - time.monotonic()))
        if room > 0:
            due = self.store.next_due()
            if due is not None:
                wait = (due - self._clock()).total_seconds()
                if wait <= 0 and self._inflight:
                    wait = FLUSH_INTERVAL  # due but the window is busy: check again shortly
                timeout = min(timeout, max(0.0, wait))
        return timeout

    async def _sleep(self, timeout: float) -> None:
        if timeout > 0 and not self._signal.is_set():
            try:
                await asyncio.wait_for(self._signal.wait(), timeout)
            except TimeoutError:
                self._woken = True  # a retry fell due (or the periodic re-check)
        elif timeout <= 0:
            self._woken = True
            await asyncio.sleep(0)
        self._signal.clear()

    async def _settle(self, *, cancel: bool) -> None:
        """Let (or make) in-flight deliveries finish and write every outcome we have."""
        if cancel:
            for task in self._inflight:
                task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._maybe_flush(force=True)
        # Report collected dead letters now rather than after the window: we are stopping.
        for key in list(self._dead):
            sleeper = self._dead_sleepers.pop(key, None)
            if sleeper is not None:
                sleeper.cancel()
            self._spawn(self._report_later(key, 0))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _start(self, items: list[OutboxItem]) -> None:
        now = self._clock()
        claimed = {(i.event.id, i.channel) for i in items}
        # The claimed rows mostly share one event: ask the store whether its end exists once per
        # pass, not once per row (500 queries before the first send starts).
        self._ended = {}
        for item in items:
            try:
                decision = self._plan(item, now, claimed)
            except StoreError as exc:  # the plan needs the store: try this row again shortly
                if not exc.transient:
                    raise
                retry = Outcome(
                    item.id,
                    item.attempts,
                    "pending",
                    "store unavailable",
                    now + timedelta(seconds=STORE_RETRY),
                )
                self._record(retry, item, log_it=False)
                continue
            if isinstance(decision, Outcome):
                self._record(decision, item)
                continue
            task = asyncio.create_task(self._deliver(decision))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task crashed", exc_info=task.exception())
        self._signal.set()

    # -- stale work (DESIGN §3) ------------------------------------------------------------------
    def _plan(self, item: OutboxItem, now: datetime, claimed: set[tuple[str, str]]) -> Outcome | _Send:
        """Decide, before sending, whether this row is still worth sending and in which form."""
        event = item.event
        state_event = event.region is not None and event.started_at is not None
        if event.status == EventStatus.STARTED and state_event:
            assert event.region is not None and event.started_at is not None
            end_id = event_id(event.region.code, event.kind, event.started_at, EventStatus.ENDED)
            if end_id not in self._ended:
                self._ended[end_id] = self.store.has_event(end_id)
            if self._ended[end_id]:
                return Outcome(
                    item.id,
                    item.attempts,
                    "superseded",
                    "the alert has ended; its end notice carries the start",
                )
            age = (now - event.observed_at).total_seconds()
            if age > self.delivery.start_max_age:
                return Outcome(
                    item.id,
                    item.attempts,
                    "dead",
                    f"start notice is {age / 60:.0f} min old (limit {self.delivery.start_max_age / 60:.0f} min); "
                    "not sent late",
                )
            return _Send(item)
        if event.status == EventStatus.ENDED and state_event:
            assert event.region is not None and event.started_at is not None
            start_id = event_id(event.region.code, event.kind, event.started_at, EventStatus.STARTED)
            if (start_id, item.channel) in claimed:
                # Claimed together: the start is superseded by the rule above in this same pass.
                return _Send(item, self.store.event(start_id))
            state = self.store.outbox_state(start_id, item.channel)
            if state == "pending" and self.store.supersede(
                start_id,
                item.channel,
                "the alert ended before the start went out; sent as one combined notice",
            ):
                return _Send(item, self.store.event(start_id))
            if state == "pending":  # it left 'pending' between the read and the update: look again
                state = self.store.outbox_state(start_id, item.channel)
            if state == "sending" or state == "pending":
                return Outcome(
                    item.id,
                    item.attempts,
                    "pending",
                    "waiting for the start notice in flight on this channel",
                    now + timedelta(seconds=END_WAITS_FOR_START),
                )
            if state in ("superseded", "dead"):
                return _Send(item, self.store.event(start_id))
            return _Send(item)
        return _Send(item)

    # -- one delivery ----------------------------------------------------------------------------
    async def _deliver(self, job: _Send) -> None:
        item = job.item
        channel = self._channels.get(item.channel)
        try:
            lock = self._locks.setdefault(item.channel, asyncio.Lock())
            async with lock:  # one message at a time per channel: order kept, throttling honest
                began = time.monotonic()
                ok, detail = await self._render_and_send(job, channel)
                took = time.monotonic() - began
            self._outcome(job, channel, ok, detail, took)
        except Exception as exc:
            # A bug here must not leave the row 'sending' until the next restart: retry it.
            log.exception("delivery crashed " + kv(event=item.event.id, channel=channel.masked))
            delay = backoff_delay(item.attempts, self.delivery.retry_base, self.delivery.retry_max)
            retry_at = self._clock() + timedelta(seconds=delay)
            self._record(
                Outcome(item.id, item.attempts, "pending", f"internal error: {type(exc).__name__}", retry_at),
                item,
                log_it=False,
            )

    async def _render_and_send(self, job: _Send, channel: Channel) -> tuple[bool, str]:
        if not channel.usable:
            return False, channel.error or "channel unusable"
        try:
            footer = self._footer(job.item)
            # Rendering is pure and one event fans out to thousands of channels that share a few
            # (language, limits, footer) combinations: render each combination once.
            key = (
                job.item.event.id,
                job.item.language,
                channel.limits,
                job.combined_start.id if job.combined_start is not None else None,
                footer,
            )
            message = self._rendered.get(key)
            if message is None:
                build = functools.partial(
                    render.render,
                    job.item.event,
                    language=job.item.language,
                    tz=self._tz,
                    limits=channel.limits,
                    templates=self._templates,
                    combined_start=job.combined_start,
                    footer=footer,
                )
                # Operator templates render off the loop (the daemon's executor), within their step
                # and output budget (alertd.core.template_budget); built-in texts are cheap.
                if self._templates:
                    message = await asyncio.get_running_loop().run_in_executor(None, build)
                else:
                    message = build()
                if len(self._rendered) >= RENDER_CACHE_SIZE:
                    self._rendered.clear()
                self._rendered[key] = message
        except Exception as exc:
            log.exception("rendering failed " + kv(event=job.item.event.id, language=job.item.language))
            return False, f"rendering failed: {type(exc).__name__}"
        return await self._call(channel, message, self._guard(job.item, channel))

    def _footer(self, item: OutboxItem) -> str | None:
        """The per-subscriber footer (self-service management link); a lookup failure costs only the footer."""
        if self._footer_for is None:
            return None
        try:
            return self._footer_for(item.subscriber, item.language)
        except Exception:
            log.exception("footer lookup failed " + kv(subscriber=mask_phone(item.subscriber)))
            return None

    def _guard(self, item: OutboxItem, channel: Channel) -> Guard | None:
        """The connect-time guard for a resident's raw URL; a lookup failure guards anyway."""
        if self._guard_for is None:
            return None
        try:
            return self._guard_for(item.subscriber, channel)
        except Exception:
            log.exception("guard lookup failed " + kv(subscriber=mask_phone(item.subscriber)))
            return Guard()

    async def _call(self, channel: Channel, message: Any, guard: Guard | None = None) -> tuple[bool, str]:
        """Run the blocking Apprise call in our pool, bounded by ``delivery.timeout``.

        Under a ``guard`` every connect is checked and, at the timeout, the send's
        sockets are cut so the thread really comes back.
        """
        if not channel.usable:
            return False, channel.error or "channel unusable"
        loop = asyncio.get_running_loop()
        call = functools.partial(
            channels.send,
            channel,
            message.title,
            message.body,
            message.notify_type,
            message.body_format,
            timeout=self.delivery.timeout,
        )
        async with self._sem:
            if guard is not None:
                future = loop.run_in_executor(self._pool, guard.run, call)
                timer = loop.call_later(self.delivery.timeout, guard.expire)
            else:
                future, timer = loop.run_in_executor(self._pool, call), None
            try:
                result = await asyncio.wait_for(future, self.delivery.timeout + (2 if guard else 0))
            except TimeoutError:
                return False, f"no answer within {self.delivery.timeout:g}s"
            finally:
                if timer is not None:
                    timer.cancel()
            if not result.ok and guard is not None and guard.refused:
                return False, "refused: the channel's address is not a public one"
            return result.ok, result.detail

    def _outcome(self, job: _Send, channel: Channel, ok: bool, detail: str, took: float) -> None:
        item, event = job.item, job.item.event
        now = self._clock()
        fields: dict[str, object] = {
            "subscriber": mask_phone(item.subscriber),
            "channel": channel.masked,
            "event": event.id,
            "kind": str(event.kind),
            "status": str(event.status),
            "attempt": item.attempts,
        }
        if job.combined_start is not None:
            fields["combined"] = "yes"
        if ok:
            latency = max(0.0, (now - event.observed_at).total_seconds())
            if log.isEnabledFor(logging.INFO):  # the line is built per delivery: skip it when unseen
                log.info(
                    "delivery ok "
                    + kv(**fields, latency_ms=round(latency * 1000), took_ms=round(took * 1000))
                )
            self._hook("delivered", event, latency)
            self._record(Outcome(item.id, item.attempts, "delivered"), item, log_it=False)
            return
        self._hook("failed", event)
        never_give_up = event.status == EventStatus.ENDED
        if never_give_up or item.attempts < self.delivery.max_attempts:
            delay = backoff_delay(item.attempts, self.delivery.retry_base, self.delivery.retry_max)
            log.warning("delivery failed " + kv(**fields, retry_in=_seconds(delay), error=detail))
            self._record(
                Outcome(item.id, item.attempts, "pending", detail, now + timedelta(seconds=delay)),
                item,
                log_it=False,
            )
            return
        self._record(Outcome(item.id, item.attempts, "dead", detail), item, masked=channel.masked)

    def _hook(self, name: str, *args: Any) -> None:
        """Call an optional hook; a metrics bug must never turn into a lost or repeated delivery."""
        method = getattr(self.hooks, name, None)
        if method is None:
            return
        try:
            method(*args)
        except Exception:
            log.exception(f"dispatch hook {name} failed")

    # -- recording ---------------------------------------------------------------------------------
    def _record(
        self, outcome: Outcome, item: OutboxItem, *, log_it: bool = True, masked: str | None = None
    ) -> None:
        """Buffer an outcome for the next batched ``store.finish``; log decisions made without a send."""
        if log_it:
            event = item.event
            fields = kv(
                subscriber=mask_phone(item.subscriber),
                channel=masked or channels.mask(item.channel),
                event=event.id,
                kind=str(event.kind),
                status=str(event.status),
                attempt=item.attempts,
            )
            if outcome.state == "dead":
                log.error(f"delivery dead-lettered {fields} " + kv(error=outcome.detail))
                self._hook("dead", event)
            elif outcome.state == "superseded":
                log.info(f"delivery superseded {fields} " + kv(reason=outcome.detail))
            elif outcome.state == "pending":
                retry_in = (outcome.retry_at - self._clock()).total_seconds() if outcome.retry_at else 0.0
                log.info(
                    f"delivery postponed {fields} " + kv(retry_in=_seconds(retry_in), reason=outcome.detail)
                )
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append((outcome, item))
        self._signal.set()

    def _maybe_flush(self, *, force: bool = False) -> None:
        if not self._buffer:
            return
        if not (
            force
            or len(self._buffer) >= FLUSH_SIZE
            or time.monotonic() >= self._buffer_since + FLUSH_INTERVAL
        ):
            return
        batch, self._buffer = self._buffer, []
        try:
            self.store.finish([o for o, _ in batch], self._clock())
        except StoreError:
            self._buffer = batch + self._buffer  # kept until the store takes them
            raise
        self._report_dead((o, i) for o, i in batch if o.state == "dead")

    def _report_dead(self, dead: Iterable[tuple[Outcome, OutboxItem]]) -> None:
        """Collect dead letters per event; one operator message per event after a short window.

        Channels of one event fail on the same schedule but not in the same
        instant, so they are gathered for ``dead_letter_window`` seconds and
        reported as one message ("N channels failed"); the notifier's rate limit
        keeps a later straggler from paging again.
        """
        for outcome, item in dead:
            pending = self._dead.get(item.event.id)
            if pending is None:
                self._dead[item.event.id] = [item.event, 1, outcome.detail or "unknown"]
                self._dead_sleepers[item.event.id] = self._spawn(self._report_later(item.event.id))
            else:
                pending[1] += 1
                pending[2] = outcome.detail or pending[2]

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _report_later(self, key: str, delay: float | None = None) -> None:
        await asyncio.sleep(self._dead_letter_window if delay is None else delay)
        self._dead_sleepers.pop(key, None)
        pending = self._dead.pop(key, None)
        if pending is None:
            return
        event, count, reason = pending
        try:
            await self.operators.dead_letters(event, count, reason)
        except Exception:  # an operator channel problem must never stop delivery
            log.exception("operator notice about dead letters failed " + kv(event=key))


def _seconds(value: float) -> str:
    """4s, 0.05s, 5m: short enough for a log line, exact enough to follow a retry."""
    if value >= 120:
        return f"{value / 60:.0f}m"
    if value >= 10:
        return f"{value:.0f}s"
    return f"{value:.2g}s"


async def send_test(settings: Settings, urls: list[str], language: str) -> list[tuple[str, bool, str]]:
    """Send a clearly marked test message to each URL now (not through the outbox).

    Returns ``(masked url, delivered, detail)`` per URL with the channel's real
    outcome: an HTTP 404 from the far end is a failure, not a shrug.
    """
    now = datetime.now(UTC)
    timeout = settings.delivery.timeout
    tz = ZoneInfo(settings.timezone)
    templates = dict(settings.templates) or None
    event = AlertEvent(
        id=AlertEvent.make_id("test", now),
        source="alertd",
        kind=AlertKind.INFO,
        status=EventStatus.ISSUED,
        headline="alertd test message",
        body="This is a test of alertd's delivery to this channel. No action is needed.",
        observed_at=now,
    )

    async def one(url: str) -> tuple[str, bool, str]:
        channel = channels.load(url, timeout=timeout)  # uncached: a test shows the URL as configured now
        if not channel.usable:
            return channel.masked, False, channel.error or "channel unusable"
        message = render.render(
            event, language=language, tz=tz, limits=channel.limits, templates=templates, test=True
        )
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(
                    channels.send,
                    channel,
                    message.title,
                    message.body,
                    message.notify_type,
                    message.body_format,
                    timeout=timeout,
                ),
                timeout,
            )
            ok, detail = result.ok, result.detail
        except TimeoutError:
            ok, detail = False, f"no answer within {timeout:g}s (may have been delivered)"
        log.info(
            ("test delivery ok " if ok else "test delivery failed ")
            + kv(channel=channel.masked, error=None if ok else detail)
        )
        return channel.masked, ok, detail or "delivered"

    return list(await asyncio.gather(*(one(u) for u in urls)))
