"""``alertd run`` as a process against slow, hanging and rate-limiting channels (issues 11 and 12).

* A channel answering inside the delivery timeout gets each notice once; one
  answering beyond it may get a notice at most ``max_uncertain`` times (not 7),
  and its end is bounded too.
* SIGTERM while slow sends are in flight: they finish, are recorded, and a
  restart repeats nothing.
* Fairness: a fast host, a host answering 429 (Retry-After: 1) above 20 posts/s,
  and a hanging host, each its own port. The fast host finishes while the hanging
  host's requests are still unanswered; the limited host receives everything.

Assertions are on what each channel received (counts and order), never on timings.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN) as up:
        yield up


def write_config(directory: Path, upstream: Upstream, urls: list[str], **delivery: object) -> Path:
    knobs = {"concurrency": 16, "retry_base": 0.2, "retry_max": 1.0, "timeout": 2, **delivery}
    lines = [f'state_dir = "{directory / "state"}"', "[http]", "enabled = false", "[delivery]"]
    lines += [f"{k} = {v}" for k, v in knobs.items()]
    lines += [
        "[[sources]]",
        'name = "aiu"',
        'type = "alerts_in_ua"',
        f'url = "{upstream.alerts_in_ua_url}"',
        f'token = "{AIU_TOKEN}"',
        "interval = 1",
        "timeout = 2",
        "jitter = 0",
    ]
    for i, url in enumerate(urls):
        lines += ["[[subscribers]]", f'name = "s{i}"', 'regions = ["UA-32"]', f'urls = ["{url}"]']
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def query(db_path: Path, sql: str) -> list[tuple]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def baselined(db_path: Path) -> bool:
    rows = query(db_path, "SELECT COUNT(*) FROM sources WHERE baseline_done = 1")
    return bool(rows) and rows[0][0] == 1


def open_rows(db_path: Path) -> int:
    rows = query(db_path, "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")
    return rows[0][0] if rows else -1


def counts(sink: JsonSink, kind: str) -> Counter[str]:
    """Messages of Apprise type ``kind`` each path received (the sink recorded them, whatever it answered)."""
    return Counter(r.path for r in sink.received() if r.type == kind)


def test_slow_channels_inside_and_beyond_the_timeout(tmp_path: Path, upstream: Upstream) -> None:
    with JsonSink() as sink:
        sink.configure("/inside", delay=1.0)  # answers within the 2 s timeout
        sink.configure("/beyond", delay=4.0)  # takes the message, answers after the timeout
        urls = [sink.url("/fast"), sink.url("/inside"), sink.url("/beyond")]
        config = write_config(tmp_path, upstream, urls, max_uncertain=2, max_attempts=8)
        db = tmp_path / "state" / "alertd.sqlite3"
        proc = AlertdProcess(config, tmp_path / "alertd.log")
        try:
            wait_for(lambda: baselined(db), timeout=30)
            upstream.add_alert(KYIV_OBLAST, started_at=T0)
            wait_for(lambda: query(db, "SELECT COUNT(*) FROM outbox")[0][0] == 3, timeout=30)
            wait_for(lambda: open_rows(db) == 0, timeout=60)
            upstream.clear_alert(KYIV_OBLAST)
            wait_for(lambda: query(db, "SELECT COUNT(*) FROM outbox")[0][0] == 6, timeout=30)
            wait_for(lambda: open_rows(db) == 0, timeout=60)
            wait_for(lambda: sink.unanswered() == 0, timeout=30)
            assert proc.signal(signal.SIGTERM) == 0
        finally:
            proc.stop()
        starts, ends = counts(sink, "failure"), counts(sink, "success")
        assert starts["/fast"] == ends["/fast"] == 1
        assert starts["/inside"] == ends["/inside"] == 1  # slow but inside the timeout: once, not 7 times
        assert 1 <= starts["/beyond"] <= 2 and 1 <= ends["/beyond"] <= 2  # bounded, ends included
        dead = query(db, "SELECT last_error FROM outbox WHERE channel LIKE '%/beyond' AND state = 'dead'")
        assert len(dead) == 2 and all("may have been delivered" in (e or "") for (e,) in dead), dead


def test_sigterm_with_slow_channels_then_restart_repeats_nothing(tmp_path: Path, upstream: Upstream) -> None:
    n = 24
    with JsonSink() as sink:
        for i in range(n):
            sink.configure(f"/c{i}", delay=1.5)
        urls = [sink.url(f"/c{i}") for i in range(n)]
        config = write_config(tmp_path, upstream, urls, concurrency=8, timeout=5)
        db = tmp_path / "state" / "alertd.sqlite3"
        log = tmp_path / "alertd.log"
        first = AlertdProcess(config, log)
        try:
            wait_for(lambda: baselined(db), timeout=30)
            upstream.add_alert(KYIV_OBLAST, started_at=T0)
            # slow sends in flight, not all done: stop cleanly now
            wait_for(lambda: sink.unanswered() >= 4 and len(sink.received()) < n, timeout=30, step=0.02)
            assert first.signal(signal.SIGTERM) == 0
        finally:
            first.stop()
        wait_for(lambda: sink.unanswered() == 0, timeout=30)
        at_stop = counts(sink, "failure")
        assert 0 < sum(at_stop.values()) < n
        assert query(db, "SELECT COUNT(*) FROM outbox WHERE state = 'sending'") == [
            (0,)
        ]  # every outcome written
        second = AlertdProcess(config, log)
        try:
            wait_for(lambda: len(counts(sink, "failure")) == n, timeout=60)
            wait_for(lambda: open_rows(db) == 0, timeout=30)
            assert second.signal(signal.SIGTERM) == 0
        finally:
            second.stop()
        assert set(counts(sink, "failure").values()) == {1}  # the restart repeated nothing
        assert "deliveries were in flight at the last stop" not in log.read_text(encoding="utf-8")


class RateLimitedSink(JsonSink):
    """Answers 429 with ``Retry-After: 1`` to any post beyond ``limit`` in the last second."""

    def __init__(self, limit: int) -> None:
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


def test_one_bad_host_cannot_hold_up_the_rest(tmp_path: Path, upstream: Upstream) -> None:
    per_host = 100
    gate = threading.Event()  # the hanging host answers only when the test opens this
    with JsonSink() as fast, RateLimitedSink(20) as limited, JsonSink() as hanging:
        for i in range(per_host):
            hanging.configure(f"/h{i}", gate=gate)
        urls = []
        for i in range(per_host):  # interleaved, the hanging host's channels first in each triple
            urls += [hanging.url(f"/h{i}"), fast.url(f"/f{i}"), limited.url(f"/l{i}")]
        config = write_config(tmp_path, upstream, urls, concurrency=16, timeout=3, max_attempts=50)
        db = tmp_path / "state" / "alertd.sqlite3"
        proc = AlertdProcess(config, tmp_path / "alertd.log")
        try:
            wait_for(lambda: baselined(db), timeout=30)
            upstream.add_alert(KYIV_OBLAST, started_at=T0)
            wait_for(lambda: len(counts(fast, "failure")) == per_host, timeout=60, step=0.02)
            # the fast host is done while the hanging host still holds requests it never answered
            assert hanging.unanswered() > 0
            wait_for(lambda: len([r for r in limited.received() if r.status == 200]) == per_host, timeout=90)
            gate.set()
        finally:
            gate.set()
            proc.stop()
        assert set(counts(fast, "failure").values()) == {1}
        ok = Counter(r.path for r in limited.received() if r.status == 200)
        assert len(ok) == per_host and set(ok.values()) == {1}  # everything, once
        throttled = sum(1 for r in limited.received() if r.status == 429)
        assert throttled < per_host // 2, throttled  # it slowed down to the host: few 429s
        # order: the fast host's last message came before the limited host's last one
        last_fast = max(r.at for r in fast.received())
        last_limited = max(r.at for r in limited.received() if r.status == 200)
        assert last_fast <= last_limited
