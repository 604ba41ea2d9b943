"""Fairness across service hosts (issue 12): a fast host, a 429-limited host and a hanging host.

Each host is a local HTTP sink on its own port, with ``--n`` channels each:

* **fast** — answers at once;
* **limited** — answers ``429`` with ``Retry-After: 1`` to any post beyond 20 in the last second;
* **hanging** — holds every request for 30 s (longer than ``delivery.timeout``).

An in-process :class:`alertd.run.dispatch.Dispatcher` (real store, real Apprise) delivers one
event to all of them. Printed: the fast host's time to its last delivery alone and with the
others (target: ≤ 1.2×), the limited host's deliveries and 429 answers, and how many requests
the hanging host held when the fast host finished.

    python bench/fairness.py --n 1000 [--repeat 3]

The fast host's ratio is the median over ``--repeat`` alone/mixed pairs: one pair swung
from 1.13 to 1.39 between runs of the same code on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import machine, tempdir
from support.sinks import JsonSink

from alertd.config import load_settings
from alertd.core.model import AlertEvent, AlertKind, EventStatus
from alertd.core.regions import RegionRegistry
from alertd.core.tracker import event_id
from alertd.run.app import LiveRouter
from alertd.run.dispatch import Dispatcher
from alertd.store import open_store


class LimitedSink(JsonSink):
    """429 + Retry-After: 1 beyond ``limit`` posts in the last second."""

    def __init__(self, limit: int = 20) -> None:
        super().__init__()
        self.limit = limit
        self._recent: deque[float] = deque()
        self._rate_lock = threading.Lock()

    def _answer(self, path: str) -> tuple[int, float, str | None]:
        status, delay, retry_after = super()._answer(path)
        now = time.monotonic()
        with self._rate_lock:
            while self._recent and self._recent[0] < now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.limit:
                return 429, 0.0, "1"
            self._recent.append(now)
        return status, delay, retry_after


def run(
    hosts: dict[str, JsonSink], n: int, registry: RegionRegistry, timeout: float, wait_limited: bool = True
) -> dict[str, object]:
    """Deliver one event to n channels on each host; returns the figures.

    ``wait_limited``: also wait for the limited host's last delivery (a minute or more).
    """
    urls = [sink.url(f"/{name}{i}") for i in range(n) for name, sink in hosts.items()]
    with tempdir("fairness") as tmp:
        settings = load_settings(
            None,
            env={},
            registry=registry,
            validate_urls=False,
            state_dir=Path(tmp),
            log_level="ERROR",
            delivery={"timeout": timeout, "max_attempts": 50, "retry_base": 0.5, "retry_max": 2.0},
            subscribers=[{"name": f"s{i}", "regions": ["UA-30"], "urls": [u]} for i, u in enumerate(urls)],
        )
        store = open_store(settings)
        fast = hosts["fast"]
        out: dict[str, object] = {}

        async def go() -> None:
            dispatcher = Dispatcher(store, settings)
            router = LiveRouter(settings, registry, store)
            router.current()
            started = datetime.now(UTC).replace(microsecond=0)
            event = AlertEvent(
                id=event_id("UA-30", AlertKind.AIR_RAID, started, EventStatus.STARTED),
                source="bench",
                kind=AlertKind.AIR_RAID,
                status=EventStatus.STARTED,
                region=registry.get("UA-30"),
                started_at=started,
                observed_at=datetime.now(UTC),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            t0, wall0 = time.perf_counter(), time.time()
            store.commit_notices("bench", [event], {}, router)
            dispatcher.wake()
            # The sinks run in this process: look rarely (each look scans every post), and time
            # the fast host by its last post's arrival, not by when we looked.
            while len(done := fast.received(delivered=True)) < n:
                await asyncio.sleep(0.1)
            out["fast_s"] = max(r.at for r in done) - wall0
            if "hanging" in hosts:
                out["hanging_held"] = hosts["hanging"].unanswered()
            if "limited" in hosts and wait_limited:
                limited = hosts["limited"]
                deadline = time.perf_counter() + 600
                while len({r.path for r in limited.received() if r.status == 200}) < n:
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.25)
                out["limited_s"] = time.perf_counter() - t0
                out["limited_ok"] = len({r.path for r in limited.received() if r.status == 200})
                out["limited_429"] = sum(1 for r in limited.received() if r.status == 429)
            stats = dispatcher.sender.stats()
            out["abandoned"] = stats.abandoned
            stop.set()
            await asyncio.wait([task], timeout=timeout + 2)
            dispatcher.close()

        asyncio.run(go())
        store.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="channels per host")
    parser.add_argument("--timeout", type=float, default=5.0, help="delivery.timeout (the hang is 30 s)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alone/mixed pairs; the ratio is their median (the limited host is followed in the first only)",
    )
    args = parser.parse_args()
    registry = RegionRegistry.load()
    print(f"# fairness — {machine()}")
    alone_s: list[float] = []
    mixed_s: list[float] = []
    first: dict[str, object] = {}
    for i in range(max(1, args.repeat)):
        with JsonSink() as fast:
            alone = run({"fast": fast}, args.n, registry, args.timeout)
        with JsonSink() as fast, LimitedSink(20) as limited, JsonSink() as hanging:
            for j in range(args.n):
                hanging.configure(f"/hanging{j}", delay=30.0)
            hosts = {"hanging": hanging, "fast": fast, "limited": limited}
            mixed = run(hosts, args.n, registry, args.timeout, wait_limited=i == 0)
        alone_s.append(float(alone["fast_s"]))  # type: ignore[arg-type]
        mixed_s.append(float(mixed["fast_s"]))  # type: ignore[arg-type]
        first = first or mixed
        print(f"  pair {i + 1}: alone {alone_s[-1]:.2f}s, mixed {mixed_s[-1]:.2f}s", file=sys.stderr)
    ratios = sorted(m / a for a, m in zip(alone_s, mixed_s, strict=True))
    ratio = ratios[len(ratios) // 2]
    print(
        f"fast host alone: last of {args.n} after {sorted(alone_s)[len(alone_s) // 2]:.2f}s (median of {len(alone_s)})"
    )
    print(
        f"fast host beside a limited and a hanging host: {sorted(mixed_s)[len(mixed_s) // 2]:.2f}s; "
        f"ratio per pair {', '.join(f'{r:.2f}' for r in ratios)}; median {ratio:.2f} (target ≤ 1.2)"
    )
    print(f"hanging host: {first['hanging_held']} requests held when the fast host finished (first pair)")
    print(
        f"limited host (429 above 20/s): {first['limited_ok']}/{args.n} delivered after {first['limited_s']:.1f}s, "
        f"{first['limited_429']} answers 429 (first pair)"
    )
    print(f"sends abandoned at the deadline (stuck threads given back): {first['abandoned']} (first pair)")


if __name__ == "__main__":
    main()
