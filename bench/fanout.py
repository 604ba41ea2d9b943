"""Fan-out throughput: one event to N json:// channels, alertd vs Apprise's own ``notify()``.

In one run, against the same sink process (``bench/_sink.py``) and the same N URLs:

* **sink alone** — a raw asyncio client posting 10,000 times (a new connection per
  post, as Apprise's ``json://`` does): what the sink can take, and its CPU per post.
  The sink must be far faster than both contenders, or it is what is measured.
* **Apprise notify()** — ``Apprise()`` with the N URLs added (default asset: Apprise's
  own thread pool), then one ``notify()``; deliveries/s = N / the ``notify()`` call.
  ``add()`` (URL parsing) is timed separately and not counted.
* **alertd cold** — an in-process :class:`alertd.run.dispatch.Dispatcher` on a fresh
  SQLite store: routing + the outbox rows written in the event's transaction, then
  ``drain()`` until every row has its outcome persisted (``delivered``). The channel
  cache is empty: every URL is parsed during the fan-out.
* **alertd warm** — a second event to the same channels (channel cache filled), as in a
  running daemon's second alert.

Usage: ``python bench/fanout.py [--n 1000 10000] [--repeat 3]``. Prints one table; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apprise
from _common import Sink, machine, median, table, tempdir

from alertd.config import load_settings
from alertd.core.model import AlertEvent, AlertKind, EventStatus
from alertd.core.regions import RegionRegistry
from alertd.core.tracker import event_id
from alertd.run.app import LiveRouter
from alertd.run.dispatch import Dispatcher
from alertd.store import open_store

BODY = b'{"version": "1.0", "title": "t", "message": "m", "attachments": [], "type": "failure"}'
REQ = (
    b"POST /alone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
) + BODY


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _blast(port: int, n: int, conc: int = 64) -> None:
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQ)
            await writer.drain()
            await reader.read()
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conc)))


def sink_alone(sink: Sink, n: int = 10_000) -> tuple[float, float]:
    sink.reset()
    c0, t0 = _cpu(sink.proc.pid), time.perf_counter()
    asyncio.run(_blast(sink.port, n))
    wall, cpu = time.perf_counter() - t0, _cpu(sink.proc.pid) - c0
    got = sink.count()
    assert got == n, f"sink counted {got} of {n}"
    return n / wall, cpu / n


def apprise_run(sink: Sink, urls: list[str]) -> tuple[float, float]:
    sink.reset()
    apobj = apprise.Apprise()
    t0 = time.perf_counter()
    apobj.add(urls)
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok = apobj.notify(body="Air raid alert in Kyiv", title="Air raid", notify_type=apprise.NotifyType.FAILURE)
    t_notify = time.perf_counter() - t0
    got = sink.wait_count(len(urls), timeout=60)
    if not ok or got < len(urls):
        print(f"  warning: Apprise ok={ok}, sink got {got}/{len(urls)}", file=sys.stderr)
    del apobj
    gc.collect()
    return len(urls) / t_notify, t_add


def _event(kind: AlertKind, registry: RegionRegistry) -> AlertEvent:
    region = registry.get("UA-30")
    started = datetime.now(UTC).replace(microsecond=0)
    return AlertEvent(
        id=event_id("UA-30", kind, started, EventStatus.STARTED),
        source="bench",
        kind=kind,
        status=EventStatus.STARTED,
        region=region,
        started_at=started,
        observed_at=datetime.now(UTC),
    )


def alertd_run(
    sink: Sink, urls: list[str], registry: RegionRegistry, concurrency: int | None = None
) -> tuple[float, float, float]:
    """(cold deliveries/s, warm deliveries/s, seconds of the cold commit)."""
    with tempdir("fanout") as tmp:
        settings = load_settings(
            None,
            env={},
            registry=registry,
            validate_urls=False,
            state_dir=Path(tmp),
            log_level="WARNING",
            **({"delivery": {"concurrency": concurrency}} if concurrency else {}),
            subscribers=[{"name": f"s{i}", "regions": ["UA-30"], "urls": [u]} for i, u in enumerate(urls)],
        )
        store = open_store(settings)
        commits: list[float] = []

        async def both() -> list[float]:
            # One dispatcher (as in a running daemon) serves both events: the second finds
            # whatever its channel cache kept from the first.
            dispatcher = Dispatcher(store, settings)
            router = LiveRouter(settings, registry, store)
            router.current()  # a running daemon has built it before the alert
            rates = []
            for kind in (AlertKind.AIR_RAID, AlertKind.ARTILLERY):
                sink.reset()
                event = _event(kind, registry)
                t0 = time.perf_counter()
                store.commit_notices("bench", [event], {}, router)
                commits.append(time.perf_counter() - t0)
                await dispatcher.drain()
                rates.append(len(urls) / (time.perf_counter() - t0))
                counts = store.outbox_counts()
                if counts.get("sending") or counts.get("pending"):
                    print(f"  warning: outbox not drained: {counts}", file=sys.stderr)
                got = sink.wait_count(len(urls), timeout=30)
                if got < len(urls):
                    print(f"  warning: sink got {got}/{len(urls)}", file=sys.stderr)
            dispatcher.close()
            return rates

        rates = asyncio.run(both())
        store.close()
        gc.collect()
        first_commit = commits[0]
        return rates[0], rates[1], first_commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="delivery.concurrency (default: alertd's)"
    )
    args = parser.parse_args()
    registry = RegionRegistry.load()
    print(f"# fan-out — {machine()}")
    rows = []
    with Sink() as sink:
        alone = [sink_alone(sink) for _ in range(3)]
        rate = median([a[0] for a in alone])
        cpu_us = median([a[1] for a in alone]) * 1e6
        print(
            f"sink alone: {rate:,.0f} posts/s wall (raw asyncio client, new connection per post), "
            f"sink CPU {cpu_us:.0f} µs/post → ~{1e6 / cpu_us:,.0f} posts/s of one core"
        )
        for n in args.n:
            urls = [sink.url(f"/c{i}") for i in range(n)]
            ap, ad_cold, ad_warm, adds, commits = [], [], [], [], []
            for _ in range(args.repeat):
                r, t_add = apprise_run(sink, urls)
                ap.append(r)
                adds.append(t_add)
                cold, warm, commit = alertd_run(sink, urls, registry, args.concurrency)
                ad_cold.append(cold)
                ad_warm.append(warm)
                commits.append(commit)
            a, c, w = median(ap), median(ad_cold), median(ad_warm)
            rows.append([n, a, median(adds), c, w, median(commits) * 1000, c / a, w / a])
            print(
                f"  N={n}: apprise {[round(x) for x in ap]}, alertd cold {[round(x) for x in ad_cold]}, "
                f"warm {[round(x) for x in ad_warm]}",
                file=sys.stderr,
            )
    print(
        table(
            [
                "N",
                "Apprise notify() /s",
                "Apprise add() s",
                "alertd cold /s",
                "alertd warm /s",
                "alertd commit ms",
                "ratio cold",
                "ratio warm",
            ],
            rows,
        )
    )
    print(
        f"(medians of {args.repeat}; deliveries/s = N / wall time; alertd includes routing, the outbox "
        "transaction and every outcome persisted)"
    )


if __name__ == "__main__":
    main()
