"""The sender (alertd.channels.sender): per-host lanes, hard deadlines, "slow down" answers, priority.

Sends are stand-ins run in the sender's real worker threads; assertions are on
counts and order, never on how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from alertd.channels import Channel, SendResult
from alertd.channels.sender import INITIAL_HOST_CAP, Sender
from alertd.core.render import DEFAULT_LIMITS


def channel(host: str, name: str = "c") -> Channel:
    return Channel(f"json://{host}/{name}", f"json://{host}/{name}", object(), DEFAULT_LIMITS, host)


class Service:
    """Stand-in sends: per host, what to do; records the order of calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.behaviour: dict[str, Callable[[str], SendResult]] = {}

    def __call__(self, ch: Channel, title: str, body: str, *args: object, **kwargs: object) -> SendResult:
        with self.lock:
            self.calls.append(f"{ch.host}:{body}")
        return self.behaviour.get(ch.host, lambda body: SendResult(True))(body)

    def hang(self, body: str) -> SendResult:
        self.release.wait(30)
        return SendResult(True)


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_hanging_host_does_not_hold_up_another() -> None:
    service = Service()
    service.behaviour["hang"] = service.hang
    sender = Sender(8, send=service)
    try:
        hanging = [
            asyncio.create_task(sender.send(channel("hang", str(i)), "t", f"h{i}", "info", timeout=30))
            for i in range(50)
        ]
        await asyncio.sleep(0)
        fast = [
            asyncio.create_task(sender.send(channel("fast", str(i)), "t", f"f{i}", "info", timeout=30))
            for i in range(100)
        ]
        results = await asyncio.wait_for(asyncio.gather(*fast), 15)
        assert all(r.ok for r in results)
        assert not any(t.done() for t in hanging)  # still hanging: they held no slot the fast host needed
        assert sender.stats().per_host["hang"]["sent"] == 0
    finally:
        service.release.set()
        await asyncio.gather(*hanging)
        sender.close()


async def test_a_send_past_its_deadline_is_abandoned_and_reported_as_maybe_delivered() -> None:
    service = Service()
    service.behaviour["hang"] = service.hang
    sender = Sender(4, send=service)  # at most 1 stalled thread per host
    try:
        first = await sender.send(channel("hang"), "t", "one", "info", timeout=0.2)
        assert first.timed_out and first.maybe_delivered and not first.ok
        assert "may have been delivered" in first.detail
        assert sender.abandoned == 1 and sender.stats().stalled == 1 and sender.free == 4
        # the host has a stalled thread: a second send waits for it instead of taking another thread
        second = asyncio.create_task(sender.send(channel("hang"), "t", "two", "info", timeout=5))
        other = await sender.send(channel("fast"), "t", "x", "info", timeout=5)  # other hosts go on
        assert other.ok and not second.done() and service.calls.count("hang:two") == 0
        service.release.set()
        assert (await asyncio.wait_for(second, 15)).ok
        await until(lambda: sender.stats().stalled == 0)
    finally:
        service.release.set()
        sender.close()


async def test_a_slow_down_answer_pauses_that_host_and_the_send_is_asked_again() -> None:
    service = Service()
    answers = iter([SendResult(False, "Too Many Requests - error=429.", retry_after=0.05)])
    service.behaviour["busy"] = lambda body: next(answers, SendResult(True))
    sender = Sender(4, send=service)
    try:
        result = await asyncio.wait_for(sender.send(channel("busy"), "t", "b", "info", timeout=5), 15)
        assert result.ok
        stats = sender.stats().per_host["busy"]
        assert stats["throttled"] == 1 and stats["sent"] == 1 and stats["rate"] > 0
        assert service.calls == ["busy:b", "busy:b"]
    finally:
        sender.close()


async def test_best_priority_first_and_hosts_in_turn() -> None:
    service = Service()
    gate = threading.Event()
    service.behaviour["gate"] = lambda body: SendResult(gate.wait(30))
    sender = Sender(1, send=service)
    try:
        blocker = asyncio.create_task(sender.send(channel("gate"), "t", "block", "info", timeout=30))
        await until(lambda: len(service.calls) == 1)
        queued = [
            asyncio.create_task(
                sender.send(channel(host, body), "t", body, "info", timeout=30, priority=prio)
            )
            for host, body, prio in [
                ("a", "advisory", 7),
                ("a", "end", 5),
                ("b", "raid-b", 1),
                ("a", "raid-a", 1),
                ("b", "topic", 0),
            ]
        ]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wait_for(asyncio.gather(blocker, *queued), 15)
        assert [c.split(":", 1)[1] for c in service.calls[1:]] == [
            "topic",
            "raid-a",
            "raid-b",
            "end",
            "advisory",
        ]
    finally:
        gate.set()
        sender.close()


async def test_a_host_rate_spaces_its_sends() -> None:
    service = Service()
    sender = Sender(4, rates={"slow": 1}, send=service)
    try:
        await sender.send(channel("slow"), "t", "one", "info", timeout=5)
        assert sender.ready_in("slow") > 0  # its one token is used up
        assert sender.ready_in("elsewhere") == 0
    finally:
        sender.close()


async def test_a_send_can_keep_its_slot_until_its_outcome_is_recorded() -> None:
    """``release_after``: the slot of a send that ran is given back only when the caller says so
    (the dispatcher: once the outcome is written), so the next send waits for that, not for the answer."""
    service = Service()
    sender = Sender(1, send=service)
    recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        first = await sender.send(channel("a"), "t", "one", "info", timeout=5, release_after=recorded)
        assert first.ok and sender.free == 0  # answered, but not recorded yet: the slot is still taken
        second = asyncio.create_task(sender.send(channel("a"), "t", "two", "info", timeout=5))
        await asyncio.sleep(0)
        assert service.calls == ["a:one"] and not second.done()
        recorded.set_result(None)
        assert (await asyncio.wait_for(second, 15)).ok
        assert service.calls == ["a:one", "a:two"] and sender.free == 1
        # a send that did not run (no slot within max_wait) gives nothing to hold
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        taken = await sender.send(channel("a"), "t", "three", "info", timeout=5, release_after=held)
        assert taken.ok and sender.free == 0
        refused = await sender.send(
            channel("a"), "t", "four", "info", timeout=5, max_wait=0.05, release_after=asyncio.Future()
        )
        assert refused.not_sent and sender.free == 0
        held.set_result(None)
        await until(lambda: sender.free == 1)
        # the refused send left the queue: the freed slot went to nobody, and the next send runs
        assert service.calls == ["a:one", "a:two", "a:three"]
        assert (await sender.send(channel("a"), "t", "five", "info", timeout=5, max_wait=1)).ok
        assert service.calls[-1] == "a:five" and sender.free == 1
    finally:
        sender.close()


class Gates:
    """Per host, sends that block until that host's gate opens; counts the sends started per host."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.gates: dict[str, threading.Event] = {}

    def gate(self, host: str) -> threading.Event:
        gate = self.gates[host] = threading.Event()
        self.service.behaviour[host] = lambda body: SendResult(gate.wait(30))
        return gate

    def started(self, host: str) -> int:
        with self.service.lock:
            return sum(1 for c in self.service.calls if c.startswith(f"{host}:"))


async def warm(sender: Sender, host: str, count: int = 20) -> None:
    """Quick answers from ``host``: its adaptive cap grows to the most one host may hold."""
    results = await asyncio.gather(
        *(sender.send(channel(host, f"w{i}"), "t", f"w{i}", "info", timeout=30) for i in range(count))
    )
    assert all(r.ok for r in results)


async def test_a_hanging_host_holds_only_its_small_cap_and_a_fast_host_gets_the_rest() -> None:
    service = Service()
    gates = Gates(service)
    service.behaviour["hang"] = service.hang
    sender = Sender(32, send=service)  # fair share of two hosts: 16 each; no host more than 24
    tasks: list[asyncio.Task[SendResult]] = []
    fast_gate = threading.Event()
    try:
        await warm(sender, "fast")  # it answered quickly so far: its cap grew to 24
        fast_gate = gates.gate("fast")
        tasks += [
            asyncio.create_task(sender.send(channel("hang", str(i)), "t", f"h{i}", "info", timeout=30))
            for i in range(50)
        ]
        await until(lambda: gates.started("hang") == INITIAL_HOST_CAP)
        tasks += [
            asyncio.create_task(sender.send(channel("fast", str(i)), "t", f"f{i}", "info", timeout=30))
            for i in range(50)
        ]
        await until(lambda: gates.started("fast") == 20 + 24)
        # the hanging host never answered, so its cap never grew past where every host starts; the
        # slots it cannot use went to the fast host, beyond its fair share of 16
        assert sender.free == 0
        assert gates.started("hang") == INITIAL_HOST_CAP
        assert sender.stats().in_flight == 32
        fast_gate.set()
        await until(lambda: gates.started("fast") == 20 + 50)
        assert gates.started("hang") == INITIAL_HOST_CAP  # still hanging: it got none of the freed slots
    finally:
        fast_gate.set()
        service.release.set()
        await asyncio.gather(*tasks)
        sender.close()


async def test_a_host_past_its_deadline_gets_one_send_at_a_time_until_it_answers_quickly() -> None:
    service = Service()
    gates = Gates(service)
    sender = Sender(32, send=service)  # up to 8 stalled threads per host
    tasks: list[asyncio.Task[SendResult]] = []
    try:
        await warm(sender, "h")  # it was quick: its cap grew
        service.behaviour["h"] = service.hang
        timed_out = await asyncio.gather(
            *(sender.send(channel("h", f"s{i}"), "t", f"s{i}", "info", timeout=0.2) for i in range(4))
        )
        assert all(r.timed_out for r in timed_out)
        gate = gates.gate("h")  # the service is back, but slow to answer for now
        tasks = [
            asyncio.create_task(sender.send(channel("h", f"n{i}"), "t", f"n{i}", "info", timeout=30))
            for i in range(10)
        ]
        await until(lambda: any(c == "h:n0" for c in service.calls))
        await asyncio.sleep(0)
        assert sender.stats().in_flight == 1 and sender.stats().queued == 9
        gate.set()  # quick answers again: the cap grows back and everything goes
        results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
        assert all(r.ok for r in results)
    finally:
        service.release.set()
        for g in gates.gates.values():
            g.set()
        await asyncio.gather(*tasks)
        sender.close()


async def test_two_fast_hosts_still_share_the_slots_evenly() -> None:
    service = Service()
    gates = Gates(service)
    sender = Sender(8, send=service)
    tasks: list[asyncio.Task[SendResult]] = []
    try:
        await warm(sender, "a")
        await warm(sender, "b")  # both may now hold up to 6 of the 8 slots
        blockers = [gates.gate("x"), gates.gate("y")]
        tasks += [
            asyncio.create_task(sender.send(channel(host, str(i)), "t", f"{host}{i}", "info", timeout=30))
            for host in ("x", "y")
            for i in range(4)
        ]
        await until(lambda: sender.free == 0)
        gate_a, gate_b = gates.gate("a"), gates.gate("b")
        tasks += [
            asyncio.create_task(sender.send(channel(host, str(i)), "t", f"{host}{i}", "info", timeout=30))
            for i in range(20)
            for host in ("a", "b")
        ]
        await asyncio.sleep(0)
        for blocker in blockers:
            blocker.set()
        await until(lambda: gates.started("a") + gates.started("b") == 2 * 20 + 8)  # 20 warm-ups each
        assert gates.started("a") - 20 == 4 and gates.started("b") - 20 == 4
        assert sender.free == 0
        gate_a.set()
        gate_b.set()
        assert all(r.ok for r in await asyncio.wait_for(asyncio.gather(*tasks), 15))
    finally:
        for g in gates.gates.values():
            g.set()
        await asyncio.gather(*tasks)
        sender.close()


async def test_a_host_that_never_answers_while_others_do_is_not_ready() -> None:
    """Callers ask ``ready_in`` before holding a row for a host: rows for a host stuck at its cap
    are put back rather than kept waiting in its lane (they would crowd out other hosts' rows)."""
    service = Service()
    service.behaviour["hang"] = service.hang
    sender = Sender(16, send=service)
    tasks: list[asyncio.Task[SendResult]] = []
    try:
        await warm(sender, "fast")  # sends here answer quickly
        tasks = [
            asyncio.create_task(sender.send(channel("hang", str(i)), "t", f"h{i}", "info", timeout=30))
            for i in range(INITIAL_HOST_CAP + 10)
        ]
        await until(lambda: sender.ready_in("hang") > 2.0)  # its oldest send outlives the usual answer
        assert sender.ready_in("fast") == 0
        assert sender.stats().per_host["hang"]["sent"] == 0
    finally:
        service.release.set()
        await asyncio.gather(*tasks)
        sender.close()


async def test_an_answer_arriving_with_the_deadline_leaves_nothing_stalled() -> None:
    """The deadline and the worker's answer land in the same loop turn: the host must not count a stall forever."""
    from alertd.channels.sender import _Inbox, _Pending

    sender = Sender(4, send=Service())
    try:
        loop = asyncio.get_running_loop()
        lane = sender._lane("h")
        inbox = _Inbox(loop)
        pending = _Pending(loop.create_future())
        pending.expire()  # the deadline fires first …
        inbox.put(pending, SendResult(True), None)  # … the answer is already queued behind it
        await asyncio.sleep(0)  # the inbox drains before the waiting send resumes
        sender._abandon(lane, pending)
        assert lane.stalled == 0 and sender.abandoned == 0
        pending.future.exception()  # retrieved, as the waiting send does

        late = _Pending(loop.create_future())
        late.expire()
        sender._abandon(lane, late)  # really still running: stalled until it returns
        assert lane.stalled == 1
        inbox.put(late, SendResult(True), None)
        await asyncio.sleep(0)
        assert lane.stalled == 0
        late.future.exception()
    finally:
        sender.close()
