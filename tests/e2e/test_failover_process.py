"""Three ``alertd run`` processes on one PostgreSQL database; the poller is killed twice.

The promise (README "Two servers", DESIGN §10): any number of instances share one
database; one polls each source under a lease, all of them deliver from the shared
outbox. Here three instances fan one alert out to 2,000 ``json://`` channels on a slow
sink, and:

1. the instance holding the poll lease is SIGKILLed in the middle of the start's fan-out:
   another instance takes the source over (measured: kill → the new holder's first good
   poll, within ``max(2 × interval, 10 s)``), the dead instance's claimed rows return to
   the pool when its claim lease runs out, and every channel gets the start;
2. the alert ends upstream; after the first poll without it (the end is pending, not yet
   confirmed) the new poller is SIGKILLed too: the last instance continues the same
   history, confirms the end with its own poll and every channel gets the end once.

Duplicates may come only from rows the killed instance held ``sending`` at the kill, and
at most ``delivery.concurrency`` per kill: a send keeps its slot until its outcome is
written, so sends in flight plus sends finished but unrecorded never exceed it. The count
is printed. No end reaches anyone before the upstream cleared the alert,
and the database holds exactly one start and one end. Waits are bounded; nothing
asserts on timing except the takeover promise itself, measured against its generous bound.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

CHANNELS = 2000
SUBSCRIBERS = 200  # ten channels each
DELAY = 0.1  # seconds the sink takes per request
CONCURRENCY = 8  # per instance: 3 × 8 in flight, 2,000 × 0.1 s / 24 ≈ 8 s per fan-out
INTERVAL = 1.0  # poll interval: takeover promised within max(2 × 1, 10) = 10 s
CLAIM_LEASE = 3.0
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14
NAMES = ("a", "b", "c")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


@pytest.fixture
def slow_sink() -> Iterator[JsonSink]:
    with JsonSink() as sink:
        for i in range(CHANNELS):
            sink.configure(f"/c{i}", delay=DELAY)
        yield sink


def write_config(directory: Path, name: str, url: str, upstream: Upstream, sink: JsonSink) -> Path:
    lines = [
        f'state_dir = "{directory / name}"',
        "[store]",
        f'url = "{url}"',
        f'instance = "{name}"',
        f"claim_lease = {CLAIM_LEASE}",
        "[http]",
        "enabled = false",
        "[delivery]",
        f"concurrency = {CONCURRENCY}",
        "retry_base = 0.2",
        "retry_max = 1.0",
        "timeout = 10",
        "[[sources]]",
        'name = "aiu"',
        'type = "alerts_in_ua"',
        f'url = "{upstream.alerts_in_ua_url}"',
        f'token = "{AIU_TOKEN}"',
        f"interval = {INTERVAL}",
        "timeout = 2",
        "jitter = 0",
    ]
    per = CHANNELS // SUBSCRIBERS
    for s in range(SUBSCRIBERS):
        urls = ", ".join(f'"{sink.url(f"/c{s * per + j}")}"' for j in range(per))
        lines += ["[[subscribers]]", f'name = "s{s}"', 'regions = ["UA-32"]', f"urls = [{urls}]"]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Db:
    """Read-only looks into the shared database, as an operator's psql would."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()  # type: ignore[arg-type]
        except Exception:  # the schema may not exist yet while the instances start
            return []

    def holder(self) -> str | None:
        rows = self.rows("SELECT holder FROM leases WHERE name = 'poll:aiu' AND until > clock_timestamp()")
        return rows[0][0] if rows else None

    def now(self) -> datetime:
        return self.rows("SELECT clock_timestamp()")[0][0]

    def polled_since(self, at: datetime) -> bool:
        return bool(self.rows("SELECT 1 FROM sources WHERE name = 'aiu' AND last_success > %s", at))

    def claimed_by(self, name: str) -> set[str]:
        return {
            urlsplit(r[0]).path
            for r in self.rows("SELECT channel FROM outbox WHERE state = 'sending' AND claimed_by = %s", name)
        }

    def missing(self) -> int:
        rows = self.rows("SELECT missing FROM source_alerts WHERE source = 'aiu' AND region_code = 'UA-32'")
        return int(rows[0][0]) if rows else 0

    def open_rows(self) -> int:
        return int(self.rows("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")[0][0])

    def events(self) -> list[tuple[str, datetime]]:
        return [(r[0], r[1]) for r in self.rows("SELECT status, observed_at FROM events ORDER BY seq")]


def _delivered(sink: JsonSink, kind: str) -> Counter[str]:
    return Counter(r.path for r in sink.received(delivered=True) if r.type == kind)


def test_three_instances_survive_two_kills_of_the_poller(
    tmp_path: Path, pg_url: str, upstream: Upstream, slow_sink: JsonSink
) -> None:
    db = Db(pg_url)
    paths = {f"/c{i}" for i in range(CHANNELS)}
    procs = {
        n: AlertdProcess(write_config(tmp_path, n, pg_url, upstream, slow_sink), tmp_path / f"{n}.log")
        for n in NAMES
    }
    try:
        wait_for(lambda: db.rows("SELECT 1 FROM sources WHERE baseline_done"), timeout=60)
        upstream.add_alert(KYIV_OBLAST, started_at=T0)

        # 1. kill the poller mid fan-out of the start
        wait_for(lambda: len(_delivered(slow_sink, "failure")) >= CHANNELS // 5, timeout=60, step=0.02)
        first = wait_for(db.holder, timeout=10)
        killed_at_db = db.now()
        killed_at = time.monotonic()
        assert procs[first].signal(signal.SIGKILL) == -signal.SIGKILL
        in_flight_1 = db.claimed_by(first)
        assert len(_delivered(slow_sink, "failure")) < CHANNELS, "the kill did not land mid fan-out"
        second = wait_for(lambda: (h := db.holder()) not in (None, first) and h, timeout=30, step=0.05)
        wait_for(lambda: db.polled_since(killed_at_db), timeout=30, step=0.05)
        takeover_1 = time.monotonic() - killed_at
        assert takeover_1 <= max(2 * INTERVAL, 10.0) + 2.0, f"takeover took {takeover_1:.1f}s"

        wait_for(lambda: set(_delivered(slow_sink, "failure")) == paths, timeout=120, step=0.1)
        wait_for(lambda: db.open_rows() == 0, timeout=60)
        starts = _delivered(slow_sink, "failure")
        twice_1 = {p for p, n in starts.items() if n > 1}
        # only rows the killed instance held at the kill repeat, at most its concurrency of them
        assert twice_1 <= in_flight_1, sorted(twice_1 - in_flight_1)[:10]
        assert len(twice_1) <= CONCURRENCY, f"{len(twice_1)} channels got the start twice after one kill"
        assert max(starts.values()) <= 2
        assert not _delivered(slow_sink, "success"), "an end reached someone while the alert was on"

        # 2. the alert ends upstream; kill the new poller while the end is pending (one poll seen)
        cleared_at_db = db.now()
        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: db.missing() >= 1, timeout=30, step=0.02)
        assert [s for s, _ in db.events()].count("ended") == 0, "one poll without the alert is not an end"
        killed_at_db = db.now()
        killed_at = time.monotonic()
        assert procs[second].signal(signal.SIGKILL) == -signal.SIGKILL
        in_flight_2 = db.claimed_by(second)
        third = wait_for(lambda: (h := db.holder()) not in (None, first, second) and h, timeout=30, step=0.05)
        wait_for(lambda: db.polled_since(killed_at_db), timeout=30, step=0.05)
        takeover_2 = time.monotonic() - killed_at
        assert takeover_2 <= max(2 * INTERVAL, 10.0) + 2.0, f"takeover took {takeover_2:.1f}s"

        wait_for(lambda: set(_delivered(slow_sink, "success")) == paths, timeout=120, step=0.1)
        wait_for(lambda: db.open_rows() == 0, timeout=60)
        ends = _delivered(slow_sink, "success")
        assert set(ends.values()) == {1}, "each channel gets the end exactly once"
        again = _delivered(slow_sink, "failure") - starts
        assert set(again) <= in_flight_2 and len(again) <= CONCURRENCY, "no start again after the handover"
        assert not again, "no start was in flight at the second kill: nothing may repeat"
        events = db.events()
        assert [s for s, _ in events] == ["started", "ended"]
        assert events[1][1] >= cleared_at_db, "no end before the upstream cleared the alert"
        assert procs[third].signal(signal.SIGTERM) == 0
    finally:
        for proc in procs.values():
            proc.stop()
    logs = {n: (tmp_path / f"{n}.log").read_text(encoding="utf-8") for n in NAMES}
    assert "poll lease taken" in logs[second] and "poll lease taken" in logs[third]
    print(
        f"takeover after kill 1: {takeover_1:.1f}s, after kill 2: {takeover_2:.1f}s; "
        f"rows claimed by the first poller at its kill: {len(in_flight_1)}, channels that got the start "
        f"twice: {len(twice_1)}; rows claimed by the second poller at its kill: {len(in_flight_2)}, "
        f"repeats after it: {len(again)} (concurrency per instance {CONCURRENCY})"
    )
