"""The dispatcher: drains the outbox through the channels seam, records every outcome, retries, gives up honestly.

Shape (DESIGN §1 step 6, §3 "stale work", §6 logs, §10 reach), after Alertmanager's
``notify.go``: single-purpose **stages** behind one small interface
(:class:`Stage`: ``run(jobs) -> jobs``), chained by :class:`MultiStage`.

* :class:`PlanStage` — for a whole claim at once (batched store reads): is each
  row still worth sending, and in which form? A start whose alert has ended is
  superseded; a start too old is dead-lettered; an end whose start is still
  pending takes it along as one combined notice; an end still failing too long
  after the end, or a notice that may already have arrived twice, is dead-lettered.
* :class:`RenderStage` — the text each channel receives (pure, cached per
  event × language × limits × footer).
* :class:`SendStage` — one send through :class:`alertd.channels.sender.Sender`:
  per-host lanes, rate limits, priority, a hard deadline.
* :class:`RecordStage` — the outcome (delivered / retry later / dead), logged
  once and buffered for the :class:`Recorder`, which writes outcomes in batches.

The pump (:class:`Dispatcher`) claims only as many rows as there are free send
slots, and a send keeps its slot until the :class:`Recorder` has written its
outcome (a slot waiting for a write makes the write due at once; outcomes that
finish meanwhile go in the next one). So sends running plus sends finished but
unrecorded never exceed ``delivery.concurrency``: a SIGKILL repeats at most that
many, all of them rows it left ``sending`` (issue 13). A store
that fails (full disk, a lock held elsewhere) is a condition, not a death: the
error is reported once per outage through the shared
:class:`alertd.store.runner.StoreHealth` (``/healthz`` 503, operator notice),
and the pump backs off and carries on by itself when the store recovers.
A clean stop stops claiming, waits up to ``delivery.timeout`` for sends in
flight and writes every outcome, so a restart repeats nothing.

Ages (stale starts, ends given up) are measured by :class:`AgeClock`, which
keeps a monotonic reference in-process, so a wall-clock step does not make a
seconds-old start look three hours old.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from alertd import channels
from alertd.channels import Channel, ChannelCache, SendResult
from alertd.channels.guard import Guard
from alertd.channels.sender import Sender
from alertd.config import DeliveryConfig, Settings
from alertd.core import render
from alertd.core.backoff import backoff_delay
from alertd.core.model import AlertEvent, AlertKind, EventStatus
from alertd.core.tracker import event_id
from alertd.errors import StoreError
from alertd.logs import get_logger, mask_phone
from alertd.store.base import OutboxItem, OutboxState, Outcome, StateStore
from alertd.store.runner import StoreHealth, StoreRunner

if TYPE_CHECKING:
    from alertd.run.operators import OperatorNotifier

__all__ = [
    "MAX_WORKERS",
    "AgeClock",
    "DispatchHooks",
    "Dispatcher",
    "Job",
    "MultiStage",
    "PlanStage",
    "RecordStage",
    "Recorder",
    "RenderStage",
    "SendStage",
    "Stage",
    "retry_delay",
    "send_test",
]

log = get_logger(__name__)

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
#: Upper bound on one idle sleep, so rows written by another process are seen eventually.
IDLE_RECHECK = 30.0
#: A claimed row whose host cannot take it for longer than this goes back to the outbox (uncounted).
HOST_WAIT_RELEASE = 2.0
#: Claimed rows waiting for their host's lane, in windows (see Dispatcher._pump).
LOOKAHEAD = 4
#: Backoff while the store cannot be read or written: first wait, cap.
STORE_RETRY_FIRST, STORE_RETRY_MAX = 0.5, 10.0
#: A wall-clock reading this far from the monotonic reference is a clock step.
STEP_TOLERANCE = 60.0
#: What a send that may have arrived says, so the next attempt knows (kept in the row's last error).
MAYBE_DELIVERED = "may have been delivered"


#: Delivery retries wait at least this share of the backoff ceiling ("equal jitter", core/backoff).
RETRY_FLOOR = 0.5


def retry_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before a delivery's next attempt: the one backoff rule, with equal jitter."""
    return backoff_delay(attempt, base=base, cap=cap, draw=rand(), floor=RETRY_FLOOR)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _seconds(value: float) -> str:
    """4s, 0.05s, 5m: short enough for a log line, exact enough to follow a retry."""
    if value >= 120:
        return f"{value / 60:.0f}m"
    if value >= 10:
        return f"{value:.0f}s"
    return f"{value:.2g}s"


# ------------------------------------------------------------------------------------------------
# small collaborators


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


class AgeClock:
    """How old an event is, guarded against wall-clock steps.

    Two readings of "now": the wall clock, and the wall clock as it was when
    this process started plus the monotonic time elapsed since. They agree
    unless the wall clock stepped. An event stamped before a step is measured
    correctly by the second; one stamped after it by the first. The age is the
    smaller of the two that is not negative beyond :data:`STEP_TOLERANCE`, so a
    step can make a notice go out late, but never make a fresh one look stale.
    """

    def __init__(
        self, wall: Callable[[], datetime] = _utcnow, mono: Callable[[], float] = time.monotonic
    ) -> None:
        self._wall = wall
        self._mono = mono
        self._wall0 = wall()
        self._mono0 = mono()

    def now(self) -> datetime:
        return self._wall()

    def age(self, observed_at: datetime) -> float:
        wall_age = (self._wall() - observed_at).total_seconds()
        steady_now = self._wall0 + timedelta(seconds=self._mono() - self._mono0)
        steady_age = (steady_now - observed_at).total_seconds()
        ages = [a for a in (wall_age, steady_age) if a >= -STEP_TOLERANCE]
        return max(0.0, min(ages)) if ages else 0.0


# ------------------------------------------------------------------------------------------------
# the stages


@dataclass(frozen=True)
class Job:
    """One claimed outbox row on its way through the stages.

    ``outcome`` set = decided (later stages pass it through to :class:`RecordStage`).
    """

    item: OutboxItem
    combined_start: AlertEvent | None = None
    channel: Channel | None = None
    message: render.Message | None = None
    result: SendResult | None = None
    outcome: Outcome | None = None
    log_outcome: bool = True  # a decision made without a send is logged when recorded

    def decided(self, state: str, detail: str | None = None, retry_at: datetime | None = None) -> Job:
        item = self.item
        return replace(self, outcome=Outcome(item.id, item.attempts, state, detail, retry_at))


class Stage(Protocol):
    """One step of the delivery pipeline: jobs in, jobs out (Alertmanager's ``Stage.Exec``)."""

    async def run(self, jobs: list[Job]) -> list[Job]: ...


class MultiStage:
    """Runs stages in order, each on what the previous one returned."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def run(self, jobs: list[Job]) -> list[Job]:
        for stage in self.stages:
            jobs = await stage.run(jobs)
        return jobs


class PlanStage:
    """Decides, for a whole claim at once, whether each row still goes out and in which form.

    Store reads are per claim, not per row: whether a start's end exists is
    asked once per event (a fan-out shares one), the state of each end's start
    on the same channel is one batched read (``outbox_states``), and the start a
    combined notice carries is read once per event. Only a start still pending
    when its end comes is written (superseded), one row each.
    """

    def __init__(self, store: StateStore, delivery: DeliveryConfig, ages: AgeClock) -> None:
        self.store = store
        self.delivery = delivery
        self.ages = ages

    async def run(self, jobs: list[Job]) -> list[Job]:
        return self.plan(jobs)

    def plan(self, jobs: list[Job]) -> list[Job]:
        pending = [j for j in jobs if j.outcome is None]
        state_events = [j for j in pending if j.item.event.region is not None and j.item.event.started_at]
        starts = [j for j in state_events if j.item.event.status == EventStatus.STARTED]
        ends = [j for j in state_events if j.item.event.status == EventStatus.ENDED]
        claimed = {(j.item.event.id, j.item.channel) for j in jobs}

        decided: dict[int, Job] = {}
        end_ids = {j.item.id: _partner(j.item.event, EventStatus.ENDED) for j in starts}
        ended = {e for e in set(end_ids.values()) if self.store.has_event(e)}
        for job in starts:
            if end_ids[job.item.id] in ended:
                decided[job.item.id] = job.decided(
                    "superseded", "the alert has ended; its end notice carries the start"
                )
                continue
            age = self.ages.age(job.item.event.observed_at)
            if age > self.delivery.start_max_age:
                decided[job.item.id] = job.decided(
                    "dead",
                    f"start notice is {age / 60:.0f} min old (limit {self.delivery.start_max_age / 60:.0f} min); "
                    "not sent late",
                )

        start_of = {j.item.id: _partner(j.item.event, EventStatus.STARTED) for j in ends}
        unclaimed = [(start_of[j.item.id], j.item.channel) for j in ends]
        unclaimed = [pair for pair in unclaimed if pair not in claimed]
        states = self.store.outbox_states(unclaimed) if unclaimed else {}
        pending_pairs = [pair for pair, state in states.items() if state == OutboxState.PENDING]
        superseded = {
            pair
            for pair in pending_pairs
            if self.store.supersede(
                pair[0], pair[1], "the alert ended before the start went out; sent as one combined notice"
            )
        }
        if pending_pairs and len(superseded) < len(pending_pairs):  # some left 'pending' meanwhile
            states.update(self.store.outbox_states([p for p in pending_pairs if p not in superseded]))
        carry: dict[int, str] = {}
        for job in ends:
            pair = (start_of[job.item.id], job.item.channel)
            if pair in claimed or pair in superseded:
                carry[job.item.id] = pair[0]
                continue
            state = states.get(pair)
            if state in ("sending", "pending"):
                decided[job.item.id] = job.decided(
                    "pending",
                    "waiting for the start notice in flight on this channel",
                    self.ages.now() + timedelta(seconds=END_WAITS_FOR_START),
                )
            elif state in ("superseded", "dead"):
                carry[job.item.id] = pair[0]
        carried = {start_id: self.store.event(start_id) for start_id in set(carry.values())}

        out: list[Job] = []
        for job in jobs:
            if job.item.id in decided:
                out.append(decided[job.item.id])
            elif job.item.id in carry:
                out.append(replace(job, combined_start=carried.get(carry[job.item.id])))
            else:
                out.append(job)
        return out


def _partner(event: AlertEvent, status: EventStatus) -> str:
    """The id of the start (or end) that pairs with a state-feed event."""
    assert event.region is not None and event.started_at is not None
    return event_id(event.region.code, event.kind, event.started_at, status)


class RenderStage:
    """The message each job's channel receives (pure, so one render serves every channel alike)."""

    def __init__(
        self,
        cache: ChannelCache,
        settings: Settings,
        footer_for: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.cache = cache
        self.tz = ZoneInfo(settings.timezone)
        self.templates = dict(settings.templates) or None
        self.footer_for = footer_for
        self._rendered: dict[tuple[Any, ...], render.Message] = {}

    async def preload(self, jobs: Sequence[Job]) -> None:
        """Load the channels of ``jobs`` not loaded yet, all in one executor call.

        Apprise parses a URL in a hundred µs or more: 10,000 of them on the loop
        would stall every send's bookkeeping behind them, and one thread hand-off
        per URL cost as much as the parse. The dispatcher calls this once per
        claimed batch, before the batch's deliveries start.
        """
        missing = list(
            dict.fromkeys(
                job.item.channel
                for job in jobs
                if job.outcome is None and self.cache.peek(job.item.channel) is None
            )
        )
        if missing:
            await asyncio.get_running_loop().run_in_executor(None, self._load, missing)

    async def run(self, jobs: list[Job]) -> list[Job]:
        loop = asyncio.get_running_loop()
        await self.preload(jobs)  # nothing left to load after the dispatcher's preload of the batch
        if not self.templates:  # built-in texts are cheap: render on the loop
            return [self.render(job) for job in jobs]
        # Operator templates render off the loop (the daemon's executor), within their step and
        # output budget (alertd.core.template_budget).
        return [await loop.run_in_executor(None, self.render, job) for job in jobs]

    def _load(self, urls: list[str]) -> None:
        for url in urls:
            self.cache.get(url)

    def render(self, job: Job) -> Job:
        if job.outcome is not None:
            return job
        item = job.item
        channel = self.cache.get(item.channel)
        if not channel.usable:
            return replace(job, channel=channel)
        try:
            footer = self._footer(item)
            key = (
                item.event.id,
                item.language,
                channel.limits,
                job.combined_start.id if job.combined_start is not None else None,
                footer,
            )
            message = self._rendered.get(key)
            if message is None:
                message = render.render(
                    item.event,
                    language=item.language,
                    tz=self.tz,
                    limits=channel.limits,
                    templates=self.templates,
                    combined_start=job.combined_start,
                    footer=footer,
                )
                if len(self._rendered) >= RENDER_CACHE_SIZE:
                    self._rendered.clear()
                self._rendered[key] = message
        except Exception as exc:
            log.exception("rendering failed", event=item.event.id, language=item.language)
            return replace(
                job, channel=channel, result=SendResult(False, f"rendering failed: {type(exc).__name__}")
            )
        return replace(job, channel=channel, message=message)

    def _footer(self, item: OutboxItem) -> str | None:
        """The per-subscriber footer (self-service management link); a lookup failure costs only the footer."""
        if self.footer_for is None:
            return None
        try:
            return self.footer_for(item.subscriber, item.language)
        except Exception:
            log.exception("footer lookup failed", subscriber=mask_phone(item.subscriber))
            return None


class SendStage:
    """One send per job through the shared :class:`Sender` (lanes, rates, priority, deadline).

    Sends to one channel go one at a time, in claim order (a start before its end).
    A send that ran keeps its slot until the recorder has written its outcome, so
    at a SIGKILL at most ``delivery.concurrency`` rows can have reached their
    resident without a record (those are the only ones sent twice).
    A job whose host will not take it for a while (paused after "slow down", or
    far over its rate) goes back to the outbox without using an attempt.
    """

    def __init__(
        self,
        sender: Sender,
        delivery: DeliveryConfig,
        ages: AgeClock,
        guard_for: Callable[[str, Channel], Guard | None] | None = None,
        hold: Callable[[int], asyncio.Future[None]] | None = None,
    ) -> None:
        self.sender = sender
        # A send keeps its slot until its outcome is recorded: hold(outbox id) -> the future the
        # recorder resolves after writing it (Recorder.hold).
        self.hold = hold
        # Channels a resident typed as a raw URL are sent under the connect-time guard:
        # guard_for(subscriber name, channel) -> Guard or None (alertd.web.selfservice; issue 15).
        self.guard_for = guard_for
        self.timeout = delivery.timeout
        self.ages = ages
        self._busy: dict[str, asyncio.Lock] = {}

    async def run(self, jobs: list[Job]) -> list[Job]:
        if len(jobs) == 1:  # the dispatcher's case: no gather (a task and a future per delivery)
            return [await self.send(jobs[0])]
        return list(await asyncio.gather(*(self.send(job) for job in jobs)))

    async def send(self, job: Job) -> Job:
        if job.outcome is not None or job.result is not None:
            return job
        channel = job.channel
        if channel is None or job.message is None or not channel.usable:
            error = channel.error if channel is not None else None
            return replace(job, result=SendResult(False, error or "channel unusable"))
        held_back = self.hold_back(job, channel)
        if held_back is not None:
            return held_back
        lock = self._busy.get(job.item.channel)
        if lock is None:
            lock = self._busy[job.item.channel] = asyncio.Lock()
        try:
            async with lock:
                message = job.message
                result = await self.sender.send(
                    channel,
                    message.title,
                    message.body,
                    message.notify_type,
                    message.body_format,
                    timeout=self.timeout,
                    priority=job.item.priority,
                    guard=self._guard(job.item, channel),
                    max_wait=HOST_WAIT_RELEASE,
                    release_after=self.hold(job.item.id) if self.hold is not None else None,
                )
        finally:
            if not lock.locked() and self._busy.get(job.item.channel) is lock:
                del self._busy[job.item.channel]
        return replace(job, result=result)

    def hold_back(self, job: Job, channel: Channel, ready_in: float | None = None) -> Job | None:
        """``job`` put back in the outbox, uncounted, when its host cannot take it for a while; else None.

        ``ready_in``: the host's :meth:`Sender.ready_in`, when the caller already asked.
        """
        wait = self.sender.ready_in(channel.host) if ready_in is None else ready_in
        if wait <= HOST_WAIT_RELEASE:
            return None
        retry_at = self.ages.now() + timedelta(seconds=wait)
        outcome = Outcome(job.item.id, job.item.attempts, "pending", None, retry_at, counted=False)
        return replace(job, channel=channel, outcome=outcome, log_outcome=False)

    def _guard(self, item: OutboxItem, channel: Channel) -> Guard | None:
        """The connect-time guard for a resident's raw URL; a lookup failure guards anyway."""
        if self.guard_for is None:
            return None
        try:
            return self.guard_for(item.subscriber, channel)
        except Exception:
            log.exception("guard lookup failed", subscriber=mask_phone(item.subscriber))
            return Guard()


class RecordStage:
    """Turns each send's result into an outcome (delivered / retry / dead), logs it, hands it to the recorder."""

    def __init__(
        self,
        recorder: Recorder,
        delivery: DeliveryConfig,
        ages: AgeClock,
        hooks: Callable[..., None],
    ) -> None:
        self.recorder = recorder
        self.delivery = delivery
        self.ages = ages
        self._hook = hooks
        self._uncertain: dict[int, int] = {}  # outbox id -> sends that may have arrived (this process)
        self._put_back: dict[int, int] = {}  # outbox id -> times put back unsent (busy host)

    async def run(self, jobs: list[Job]) -> list[Job]:
        return [self.record(job) for job in jobs]

    def record(self, job: Job) -> Job:
        if job.outcome is None:
            job = self._decide(job)
        assert job.outcome is not None
        if job.log_outcome:
            self._log_decision(job)
        self.recorder.add(job.outcome, job.item)
        return job

    def _fields(self, job: Job) -> dict[str, object]:
        item, event = job.item, job.item.event
        fields: dict[str, object] = {
            "subscriber": mask_phone(item.subscriber),
            "channel": job.channel.masked if job.channel is not None else channels.mask(item.channel),
            "event": event.id,
            "kind": str(event.kind),
            "status": str(event.status),
            "attempt": item.attempts,
        }
        if job.combined_start is not None:
            fields["combined"] = "yes"
        return fields

    def _decide(self, job: Job) -> Job:
        item, event = job.item, job.item.event
        result = job.result or SendResult(False, "not sent")
        if result.ok:
            latency = max(0.0, self.ages.age(event.observed_at))
            if log.enabled(logging.INFO):  # the line is built per delivery: skip it when unseen
                log.info(
                    "delivery ok",
                    **self._fields(job),
                    latency_ms=round(latency * 1000),
                    took_ms=round(result.took * 1000),
                )
            self._uncertain.pop(item.id, None)
            self._put_back.pop(item.id, None)
            self._hook("delivered", event, latency)
            return replace(job, outcome=Outcome(item.id, item.attempts, "delivered"), log_outcome=False)
        if result.not_sent or (result.retry_after is not None and not result.maybe_delivered):
            # The service said "slow down", or its host's lane was busy: not the channel's fault,
            # no attempt used up. Each time the same row is put back it waits twice as long (up to
            # 30 s), so rows of a busy host do not crowd the claims of hosts that are free.
            backs = self._put_back.get(item.id, 0)
            self._put_back[item.id] = backs + 1
            wait = max(result.retry_after or 0.0, 1.0) * 2 ** min(backs, 5)
            retry_at = self.ages.now() + timedelta(seconds=min(30.0, wait))
            outcome = Outcome(item.id, item.attempts, "pending", result.detail, retry_at, counted=False)
            return replace(job, outcome=outcome, log_outcome=False)
        self._hook("failed", event)
        uncertain = self._uncertain.get(item.id, 0) + (1 if result.maybe_delivered else 0)
        if result.maybe_delivered:
            self._uncertain[item.id] = uncertain
        is_end = event.status == EventStatus.ENDED
        give_up: str | None = None
        if uncertain >= self.delivery.max_uncertain:
            give_up = f"{result.detail}; sent {uncertain} times without an answer, not risking another copy"
        elif is_end:
            age = self.ages.age(event.ended_at or event.observed_at)
            if age > self.delivery.end_max_age:
                give_up = f"{result.detail}; the end is {age / 3600:.1f} h old, giving up"
        elif item.attempts >= self.delivery.max_attempts:
            give_up = result.detail
        if give_up is None:
            delay = retry_delay(item.attempts, self.delivery.retry_base, self.delivery.retry_max)
            log.warning("delivery failed", **self._fields(job), retry_in=_seconds(delay), error=result.detail)
            retry_at = self.ages.now() + timedelta(seconds=delay)
            return replace(
                job,
                outcome=Outcome(item.id, item.attempts, "pending", result.detail, retry_at),
                log_outcome=False,
            )
        self._uncertain.pop(item.id, None)
        self._put_back.pop(item.id, None)
        return replace(job, outcome=Outcome(item.id, item.attempts, "dead", give_up[:300]))

    def _log_decision(self, job: Job) -> None:
        outcome = job.outcome
        assert outcome is not None
        fields = self._fields(job)
        if outcome.state == "dead":
            log.error("delivery dead-lettered", **fields, error=outcome.detail)
            self._hook("dead", job.item.event)
        elif outcome.state == "superseded":
            log.info("delivery superseded", **fields, reason=outcome.detail)
        elif outcome.state == "pending":
            retry_in = (outcome.retry_at - self.ages.now()).total_seconds() if outcome.retry_at else 0.0
            log.info("delivery postponed", **fields, retry_in=_seconds(retry_in), reason=outcome.detail)


class Recorder:
    """Buffers outcomes and writes them in batches; a failing store keeps them until it recovers.

    Dead letters are gathered per event for ``dead_letter_window`` seconds and
    reported to operators as one message ("N channels failed").
    """

    def __init__(
        self,
        store: StateStore,
        operators: OperatorNotifier,
        runner: StoreRunner,
        store_health: StoreHealth,
        clock: Callable[[], datetime],
        dead_letter_window: float,
        spawn: Callable[[Any], asyncio.Task[Any]],
        signal: Callable[[], None],
    ) -> None:
        self.store = store
        self.operators = operators
        self.runner = runner
        self._clock = clock
        self._window = dead_letter_window
        self._spawn = spawn
        self._signal = signal
        self.buffer: list[tuple[Outcome, OutboxItem]] = []
        self._since = 0.0
        self._dead: dict[str, list[Any]] = {}  # event id -> [event, channels, last error]
        self._sleepers: dict[str, asyncio.Task[Any]] = {}
        self.store_errors = StoreErrors(store_health)
        # outbox id -> resolved once that row's outcome is written; a send slot waits for it
        self._held: dict[int, asyncio.Future[None]] = {}
        self._waiting: set[int] = set()  # buffered outcomes whose send slot waits for the write

    @property
    def holding(self) -> int:
        """Send slots waiting for the next write."""
        return len(self._waiting)

    def hold(self, outbox_id: int) -> asyncio.Future[None]:
        """A future resolved when this row's outcome is written (or the row is let go)."""
        future = self._held.get(outbox_id)
        if future is None or future.done():
            future = self._held[outbox_id] = asyncio.get_running_loop().create_future()
        return future

    def let_go(self, outbox_id: int) -> None:
        """The row's delivery ended without an outcome (cancelled): give its slot back."""
        self._waiting.discard(outbox_id)
        future = self._held.pop(outbox_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    def add(self, outcome: Outcome, item: OutboxItem) -> None:
        if not self.buffer:
            self._since = time.monotonic()
        self.buffer.append((outcome, item))
        if outcome.outbox_id in self._held:
            self._waiting.add(outcome.outbox_id)
        self._signal()

    def due_in(self) -> float | None:
        """Seconds until the buffer should be written (None when empty).

        At once when a send slot waits for the write: slots are the dispatcher's
        throughput, and outcomes finishing while one write runs go in the next one.
        """
        if not self.buffer:
            return None
        if self.holding or len(self.buffer) >= FLUSH_SIZE:
            return 0.0
        return max(0.0, self._since + FLUSH_INTERVAL - time.monotonic())

    async def flush(self, *, force: bool = False) -> bool:
        """Write the buffer if due (or ``force``); False when the store refused (the buffer is kept)."""
        due = self.due_in()
        if due is None or (due > 0 and not force):
            return True
        if not self.store_errors.ready():
            return False
        batch = list(self.buffer)  # a snapshot: outcomes added while the write is under way stay buffered
        try:
            await self.runner.call(self.store.finish, [o for o, _ in batch], self._clock())
        except Exception as exc:
            self.store_errors.failed("write delivery outcomes", exc)
            return False
        self.store_errors.ok()
        self.buffer = self.buffer[len(batch) :]
        for outcome, _ in batch:
            self._waiting.discard(outcome.outbox_id)
            future = self._held.pop(outcome.outbox_id, None)
            if future is not None and not future.done():
                future.set_result(None)  # the send's slot is free now
        self._report_dead((o, i) for o, i in batch if o.state == "dead")
        return True

    def _report_dead(self, dead: Iterable[tuple[Outcome, OutboxItem]]) -> None:
        for outcome, item in dead:
            pending = self._dead.get(item.event.id)
            if pending is None:
                self._dead[item.event.id] = [item.event, 1, outcome.detail or "unknown"]
                self._sleepers[item.event.id] = self._spawn(self._report_later(item.event.id))
            else:
                pending[1] += 1
                pending[2] = outcome.detail or pending[2]

    def report_now(self) -> None:
        """Stopping: report collected dead letters now rather than after the window."""
        for key in list(self._dead):
            sleeper = self._sleepers.pop(key, None)
            if sleeper is not None:
                sleeper.cancel()
            self._spawn(self._report_later(key, 0))

    async def _report_later(self, key: str, delay: float | None = None) -> None:
        await asyncio.sleep(self._window if delay is None else delay)
        self._sleepers.pop(key, None)
        pending = self._dead.pop(key, None)
        if pending is None:
            return
        event, count, reason = pending
        try:
            await self.operators.dead_letters(event, count, reason)
        except Exception:  # an operator channel problem must never stop delivery
            log.exception("operator notice about dead letters failed", event=key)


class StoreErrors:
    """The dispatcher's side of a store outage: report it to the shared :class:`StoreHealth`
    (which logs once per outage, makes ``/healthz`` 503 and tells operators), back off, and
    report recovery on the next good call."""

    WRITER = "dispatcher"

    def __init__(self, health: StoreHealth) -> None:
        self.health = health
        self.failing = False
        self._delay = STORE_RETRY_FIRST
        self._next = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self._next

    def wait(self) -> float:
        return max(0.0, self._next - time.monotonic())

    def failed(self, what: str, exc: BaseException) -> None:
        if isinstance(exc, StoreError):
            error = exc
        else:  # a backend error the store did not wrap: still a store condition, not a crash
            error = StoreError(
                f"cannot {what}: {type(exc).__name__}: {exc}", cause=str(exc) or type(exc).__name__
            )
        if not self.failing:
            self.failing = True
            self._delay = STORE_RETRY_FIRST
        else:
            self._delay = min(STORE_RETRY_MAX, self._delay * 2)
        self.health.failed(self.WRITER, error)
        self._next = time.monotonic() + self._delay

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            self.health.recovered(self.WRITER)
        self._next = 0.0


# ------------------------------------------------------------------------------------------------
# the pump


class Dispatcher:
    """Drains the outbox through the stages. One per process; lives on one asyncio loop."""

    def __init__(
        self,
        store: StateStore,
        settings: Settings,
        *,
        hooks: DispatchHooks | None = None,
        operators: OperatorNotifier | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        batch_size: int | None = None,
        cache_size: int | None = None,
        dead_letter_window: float = 5.0,
        footer_for: Callable[[str, str], str | None] | None = None,
        guard_for: Callable[[str, Channel], Guard | None] | None = None,
        store_health: StoreHealth | None = None,
        runner: StoreRunner | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.delivery = settings.delivery
        self.hooks: DispatchHooks = hooks if hooks is not None else NoHooks()
        if operators is None:
            from alertd.run.operators import OperatorNotifier

            operators = OperatorNotifier(
                [u.get_secret_value() for u in settings.operators.urls],
                settings.operators.language,
                timeout=self.delivery.timeout,
            )
        self.operators = operators
        self.store_health = store_health if store_health is not None else StoreHealth()
        # Store calls run off the event loop (a locked database must not freeze /healthz).
        self.runner = runner or StoreRunner(name="alertd-dispatch-store")
        self._own_runner = runner is None
        self._clock = clock
        self.ages = AgeClock(clock, monotonic)  # an event's age, guarded against wall steps
        workers = max(1, min(self.delivery.concurrency, MAX_WORKERS))
        self.sender = sender or Sender(workers, rates=self.delivery.limits)
        # Claim no more than can be sent now (a kill then repeats only rows really in flight).
        self._window = max(1, batch_size if batch_size is not None else self.sender.concurrency)
        # Loaded channels: an LRU of ``delivery.channel_cache`` (≈ 1 KB each). A fan-out beyond it
        # reloads its channels, off the loop in each batch's preload (≈ 0.1 ms per URL): the
        # default keeps a 10,000-channel city's after-alert RSS under 90 MB (bench/README.md, issue
        # 12). Never smaller than 4 claim windows, so a batch's preloaded channels are still there
        # when its deliveries render.
        size = cache_size if cache_size is not None else self.delivery.channel_cache
        self._channels = ChannelCache(max(size, 4 * self._window), timeout=self.delivery.timeout)
        self._signal = asyncio.Event()
        self._woken = True  # the first pass always looks for due rows
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._pumping = asyncio.Lock()
        self._requeued = False
        self.recorder = Recorder(
            store,
            operators,
            self.runner,
            self.store_health,
            clock,
            dead_letter_window,
            self._spawn,
            self._signal.set,
        )
        self.plan = PlanStage(store, self.delivery, self.ages)
        self._render = RenderStage(self._channels, settings, footer_for)
        self._send = SendStage(self.sender, self.delivery, self.ages, guard_for, self.recorder.hold)
        self.pipeline = MultiStage(
            self._render,
            self._send,
            RecordStage(self.recorder, self.delivery, self.ages, self._hook),
        )
        self._record = RecordStage(self.recorder, self.delivery, self.ages, self._hook)

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

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish the sends in flight (up to the timeout) and record them."""
        watcher = asyncio.create_task(self._relay(stop))
        try:
            await self._pump(stop=stop, until_idle=False)
        finally:
            watcher.cancel()
            await self._settle(wait=self.delivery.timeout + 1.0)

    async def drain(self, timeout: float | None = None) -> None:
        """Deliver until nothing is due *now* (``alertd run --once``, tests); rows retrying later stay pending.

        On ``timeout`` the deliveries still running are abandoned: their rows stay
        ``sending`` and go out again at the next start (at-least-once).
        """
        try:
            await asyncio.wait_for(self._pump(stop=None, until_idle=True), timeout)
            await self._settle(wait=None)  # dead letters are reported now, not after the window
        except TimeoutError:
            log.warning(
                "delivery drain stopped; deliveries still in flight are sent again at the next start",
                after=f"{timeout:g}s",
                in_flight=len(self._inflight),
            )
            await self._settle(wait=0.0)

    def close(self) -> None:
        """Release the worker threads (a send still running finishes in the background)."""
        self.sender.close()
        if self._own_runner:
            self.runner.close()

    # -- the pump --------------------------------------------------------------------------------
    async def _requeue_once(self) -> bool:
        """Rows left 'sending' by a previous process go out again (only the first pass may do this:
        later, 'sending' rows are our own deliveries in flight). False while the store refuses."""
        if self._requeued:
            return True
        try:
            again = await self.runner.call(self.store.requeue_inflight)
        except Exception as exc:
            self.recorder.store_errors.failed("requeue deliveries cut off by the last stop", exc)
            return False
        self._requeued = True
        if again:
            log.warning("deliveries were in flight at the last stop; sending again", count=again)
        return True

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._signal.set()

    async def _pump(self, *, stop: asyncio.Event | None, until_idle: bool) -> None:
        async with self._pumping:
            self._loop = asyncio.get_running_loop()
            errors = self.recorder.store_errors
            while True:
                if stop is not None and stop.is_set():
                    return
                held = self.recorder.holding
                await self.recorder.flush(force=not self._inflight)
                if self.recorder.holding < held:
                    # The sends whose outcomes were just written give their slots back from the
                    # written rows' done-callbacks (Sender._give_back), which run at the loop's next
                    # turn: count the room after them, or the pump finds no room and, nothing else
                    # being in flight, sleeps its idle re-check (30 s) with rows due.
                    await asyncio.sleep(0)
                if not await self._requeue_once():
                    await self._sleep(errors.wait())
                    continue
                # Claim as many rows as there are free send slots. Rows waiting in a busy host's lane
                # (paused, over its rate, hung) hold no slot, so they do not stop other hosts' rows
                # from being claimed; they were never sent, so a kill cannot make them repeats. A
                # lookahead of LOOKAHEAD windows bounds how many may wait.
                sending = self.sender.concurrency - self.sender.free
                room = min(self._window - sending, self._window * LOOKAHEAD - len(self._inflight))
                # Claim when asked to (wake, timer) or when at least a quarter of the window is free.
                if (
                    room > 0
                    and errors.ready()
                    and (self._woken or not self._inflight or room >= max(1, self._window // 4))
                ):
                    self._woken = False
                    try:
                        items = await self.runner.call(self.store.claim_due, self._clock(), limit=room)
                    except Exception as exc:
                        errors.failed("claim deliveries", exc)
                        items = []
                    else:
                        if not self.recorder.buffer:
                            errors.ok()
                    if items:
                        await self._start(items)
                        continue
                if until_idle and not self._inflight and not self.recorder.buffer:
                    try:
                        due = await self.runner.call(self.store.next_due)
                    except Exception as exc:
                        errors.failed("read the outbox", exc)
                        await self._sleep(errors.wait())
                        continue
                    if due is None or due > self._clock():
                        return
                    self._woken = True
                    continue
                await self._sleep(await self._sleep_time(room))

    async def _sleep_time(self, room: int) -> float:
        timeout = IDLE_RECHECK
        errors = self.recorder.store_errors
        if not errors.ready():
            return min(timeout, errors.wait())
        due_in = self.recorder.due_in()
        if due_in is not None:
            timeout = min(timeout, due_in)
        if room > 0:
            try:
                due = await self.runner.call(self.store.next_due)
            except Exception as exc:
                errors.failed("read the outbox", exc)
                return errors.wait()
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

    async def _start(self, items: Sequence[OutboxItem]) -> None:
        jobs = [Job(item) for item in items]
        try:
            planned = await self.runner.call(self.plan.plan, jobs)  # its store reads on the store thread
        except Exception as exc:
            # The store could not answer the plan's questions: give the rows back, uncounted.
            self.recorder.store_errors.failed("plan deliveries", exc)
            retry_at = self._clock() + timedelta(seconds=self.recorder.store_errors.wait())
            for job in jobs:
                item = job.item
                outcome = Outcome(item.id, item.attempts, "pending", None, retry_at, counted=False)
                self.recorder.add(outcome, item)
            return
        await self._render.preload(planned)
        ready_in: dict[str, float] = {}  # per host, asked once per batch
        for job in planned:
            channel = self._channels.peek(job.item.channel) if job.outcome is None else None
            if channel is not None and channel.usable:
                # A row whose host is paused, far over its rate or hung goes straight back to the
                # outbox: no task, no render (a busy host's rows cost the other hosts' CPU).
                if channel.host not in ready_in:
                    ready_in[channel.host] = self.sender.ready_in(channel.host)
                job = self._send.hold_back(job, channel, ready_in[channel.host]) or job
            if job.outcome is not None:
                self._record.record(job)
                continue
            task = asyncio.create_task(self._deliver(job))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    async def _deliver(self, job: Job) -> None:
        try:
            await self.pipeline.run([job])
        except asyncio.CancelledError:
            self.recorder.let_go(job.item.id)
            raise
        except Exception as exc:
            # A bug here must not leave the row 'sending' until the next restart: retry it.
            log.exception(
                "delivery crashed", event=job.item.event.id, channel=channels.mask(job.item.channel)
            )
            item = job.item
            delay = retry_delay(item.attempts, self.delivery.retry_base, self.delivery.retry_max)
            retry_at = self._clock() + timedelta(seconds=delay)
            self.recorder.add(
                Outcome(item.id, item.attempts, "pending", f"internal error: {type(exc).__name__}", retry_at),
                item,
            )

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task crashed", exc_info=task.exception())
        self._signal.set()

    async def _settle(self, *, wait: float | None) -> None:
        """Let in-flight sends finish (up to ``wait`` seconds; None = as long as they take), write every outcome."""
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        while self._inflight:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait(set(self._inflight), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            # Finished sends hold their slots until written: write them as they come, so the
            # sends queued behind them (their host's lane) get a slot and finish too.
            await self.recorder.flush(force=True)
        pending = set(self._inflight)
        if pending:
            log.warning(
                "deliveries still running at the stop; they are sent again at the next start",
                count=len(pending),
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for _ in range(5):  # the store may be briefly busy: a few tries before giving up the record
            if await self.recorder.flush(force=True) and not self.recorder.buffer:
                break
            await asyncio.sleep(min(1.0, max(0.1, self.recorder.store_errors.wait())))
        if self.recorder.buffer:
            log.error(
                "delivery outcomes could not be written; those rows are sent again at the next start",
                count=len(self.recorder.buffer),
            )
        self.recorder.report_now()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _hook(self, name: str, *args: Any) -> None:
        """Call an optional hook; a metrics bug must never turn into a lost or repeated delivery."""
        method = getattr(self.hooks, name, None)
        if method is None:
            return
        try:
            method(*args)
        except Exception:
            log.exception("dispatch hook failed", hook=name)


# ------------------------------------------------------------------------------------------------
# test sends (alertd test-notify)


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
    sender = Sender(max(1, min(len(urls), 16)), rates=settings.delivery.limits, name="alertd-test")

    async def one(url: str) -> tuple[str, bool, str]:
        channel = channels.load(url, timeout=timeout)  # uncached: a test shows the URL as configured now
        if not channel.usable:
            return channel.masked, False, channel.error or "channel unusable"
        message = render.render(
            event, language=language, tz=tz, limits=channel.limits, templates=templates, test=True
        )
        result = await sender.send(
            channel, message.title, message.body, message.notify_type, message.body_format, timeout=timeout
        )
        log.info(
            "test delivery ok" if result.ok else "test delivery failed",
            channel=channel.masked,
            error=None if result.ok else result.detail,
        )
        return channel.masked, result.ok, result.detail or "delivered"

    try:
        return list(await asyncio.gather(*(one(u) for u in urls)))
    finally:
        sender.close()
