"""``alertd run`` as a process fanning one alert out to 2,000 channels, killed with SIGKILL mid fan-out.

The promise (DESIGN §3, §9): after ``kill -9`` and a restart every channel gets
the start at least once, and only deliveries that were in flight at the kill
(outbox rows left ``sending``) may reach a channel twice: at most
``delivery.concurrency`` of them, because a send keeps its slot until its outcome
is written (finished-but-unrecorded sends count against the concurrency). The end then reaches
every channel exactly once, and SIGTERM stops the daemon cleanly.

The sink answers every request after a short delay and the dispatcher runs few
deliveries at once, so the fan-out takes seconds and the kill lands inside it.
Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

CHANNELS = 2000
SUBSCRIBERS = 200  # ten channels each
DELAY = 0.05  # seconds the sink takes per request
CONCURRENCY = 16  # deliveries in flight at once: 2,000 × 0.05 s / 16 ≈ 6 s per fan-out
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN) as up:
        yield up


@pytest.fixture
def slow_sink() -> Iterator[JsonSink]:
    with JsonSink() as sink:
        for i in range(CHANNELS):
            sink.configure(f"/c{i}", delay=DELAY)
        yield sink


def write_config(directory: Path, upstream: Upstream, sink: JsonSink) -> Path:
    lines = [
        f'state_dir = "{directory / "state"}"',
        "[http]",
        "enabled = false",
        "[delivery]",
        f"concurrency = {CONCURRENCY}",
        "retry_base = 0.2",
        "retry_max = 1.0",
        "timeout = 10",
    ]
    for name, kind, url, token in (
        ("aiu", "alerts_in_ua", upstream.alerts_in_ua_url, AIU_TOKEN),
        ("ualarm", "ukrainealarm", upstream.ukrainealarm_url, UA_TOKEN),
    ):
        lines += [
            "[[sources]]",
            f'name = "{name}"',
            f'type = "{kind}"',
            f'url = "{url}"',
            f'token = "{token}"',
            "interval = 1",
            "timeout = 2",
            "jitter = 0",
        ]
    per = CHANNELS // SUBSCRIBERS
    for s in range(SUBSCRIBERS):
        urls = ", ".join(f'"{sink.url(f"/c{s * per + j}")}"' for j in range(per))
        lines += ["[[subscribers]]", f'name = "s{s}"', 'regions = ["UA-32"]', f"urls = [{urls}]"]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _query(db_path: Path, sql: str) -> list[tuple]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _baselined(db_path: Path) -> bool:
    rows = _query(db_path, "SELECT COUNT(*) FROM sources WHERE baseline_done = 1")
    return bool(rows) and rows[0][0] == 2


def _delivered(sink: JsonSink, kind: str) -> Counter[str]:
    """How many times each channel path got a message of Apprise type ``kind`` (answered 2xx)."""
    return Counter(r.path for r in sink.received(delivered=True) if r.type == kind)


def test_sigkill_mid_fanout_repeats_only_inflight_deliveries(
    tmp_path: Path, upstream: Upstream, slow_sink: JsonSink
) -> None:
    began = time.monotonic()
    config = write_config(tmp_path, upstream, slow_sink)
    db = tmp_path / "state" / "alertd.sqlite3"
    log = tmp_path / "alertd.log"
    paths = {f"/c{i}" for i in range(CHANNELS)}

    first = AlertdProcess(config, log)
    try:
        wait_for(lambda: _baselined(db), timeout=30)
        startup = time.monotonic() - began
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        # some, not all, channels have the start: kill it
        wait_for(lambda: len(_delivered(slow_sink, "failure")) >= CHANNELS // 5, timeout=30, step=0.02)
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop()
    wait_for(lambda: slow_sink.unanswered() == 0)  # requests made before the kill finish on the sink's side
    at_kill = _delivered(slow_sink, "failure")
    assert len(at_kill) < CHANNELS, "the kill did not land mid fan-out: make the sink slower"
    inflight = {
        urlsplit(channel).path
        for (channel,) in _query(db, "SELECT channel FROM outbox WHERE state = 'sending'")
    }
    assert inflight, "no delivery was in flight at the kill"

    second = AlertdProcess(config, log)
    try:
        wait_for(lambda: set(_delivered(slow_sink, "failure")) == paths, timeout=60, step=0.05)
        wait_for(lambda: not _query(db, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')"))
        starts = _delivered(slow_sink, "failure")
        twice = {path for path, n in starts.items() if n > 1}
        assert max(starts.values()) <= 2
        assert twice <= inflight, sorted(twice - inflight)[:10]
        # sends in flight + sends finished but not yet recorded never exceed the concurrency
        assert len(twice) <= CONCURRENCY, f"{len(twice)} channels got the start twice after one kill"

        # the end: exactly one per channel
        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: set(_delivered(slow_sink, "success")) == paths, timeout=60, step=0.05)
        wait_for(lambda: not _query(db, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending')"))
        ends = _delivered(slow_sink, "success")
        assert set(ends.values()) == {1}
        assert _delivered(slow_sink, "failure") == starts  # and no start again
        code = second.signal(signal.SIGTERM)
    finally:
        second.stop()
    stderr = log.read_text(encoding="utf-8")
    assert code == 0, stderr[-3000:]
    assert "deliveries were in flight at the last stop; sending again" in stderr
    assert "alertd stopped" in stderr
    print(
        f"startup {startup:.1f}s, delivered at kill {len(at_kill)}, in flight {len(inflight)}, "
        f"sent twice {len(twice)} (concurrency {CONCURRENCY})"
    )
