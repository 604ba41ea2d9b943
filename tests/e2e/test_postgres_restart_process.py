"""PostgreSQL restarted under a running ``alertd run`` during an alert: alertd recovers by itself.

The promise (README "Two servers"): a restart or failover of the database is an outage,
not a crash. alertd logs one ``store unreachable`` line when it begins and one ``store
reachable again`` line when it ends, keeps polling and delivering once the database is
back, and loses nothing: every channel gets the start and the end, once each (no
instance died, so nothing was in flight at a kill).

Two disruptions while the start fans out: the database stopped until alertd has noticed
(a deterministic outage: exactly one line each), then a plain ``pg_ctl restart`` (a
fast one may fall between two store calls and go unnoticed: at most one line each).
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.pg import PgCluster
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

CHANNELS = 300
DELAY = 0.05
CONCURRENCY = 4  # 300 × 0.05 s / 4 ≈ 4 s per fan-out: the disruptions land inside it
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14


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


def _config(tmp_path: Path, url: str, upstream: Upstream, sink: JsonSink) -> Path:
    urls = ", ".join(f'"{sink.url(f"/c{i}")}"' for i in range(CHANNELS))
    text = "\n".join(
        [
            f'state_dir = "{tmp_path / "state"}"',
            "[store]",
            f'url = "{url}"',
            'instance = "solo"',
            "[http]",
            "enabled = false",
            "[delivery]",
            f"concurrency = {CONCURRENCY}",
            "retry_base = 0.2",
            "retry_max = 1.0",
            "[[sources]]",
            'name = "aiu"',
            'type = "alerts_in_ua"',
            f'url = "{upstream.alerts_in_ua_url}"',
            f'token = "{AIU_TOKEN}"',
            "interval = 1",
            "timeout = 2",
            "jitter = 0",
            "[[subscribers]]",
            'name = "kyiv-oblast"',
            'regions = ["UA-32"]',
            f"urls = [{urls}]",
        ]
    )
    path = tmp_path / "alertd.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _delivered(sink: JsonSink, kind: str) -> Counter[str]:
    return Counter(r.path for r in sink.received(delivered=True) if r.type == kind)


def _count(log: Path, text: str) -> int:
    return log.read_text(encoding="utf-8").count(text)


def test_postgres_restart_during_an_alert_is_one_outage_line_one_recovery_line_and_nothing_lost(
    tmp_path: Path, pg_cluster: PgCluster, pg_url: str, upstream: Upstream, slow_sink: JsonSink
) -> None:
    log = tmp_path / "alertd.log"
    paths = {f"/c{i}" for i in range(CHANNELS)}
    proc = AlertdProcess(_config(tmp_path, pg_url, upstream, slow_sink), log)
    try:
        wait_for(lambda: "poll lease taken" in log.read_text(encoding="utf-8"), timeout=60)
        wait_for(lambda: _count(log, "poll ok") or upstream.requests("alerts_in_ua"), timeout=30)
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        wait_for(lambda: len(_delivered(slow_sink, "failure")) >= CHANNELS // 10, timeout=60, step=0.02)

        # 1. the database goes away until alertd has noticed, then comes back
        pg_cluster.stop()
        try:
            wait_for(lambda: _count(log, "store unreachable"), timeout=30, step=0.05)
        finally:
            pg_cluster.start()
        wait_for(lambda: _count(log, "store reachable again"), timeout=30, step=0.05)
        assert proc.proc.poll() is None, "alertd must not exit on a database outage"

        # 2. a plain restart, mid fan-out if it is still going
        pg_cluster.restart()
        wait_for(lambda: set(_delivered(slow_sink, "failure")) == paths, timeout=120, step=0.1)

        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: set(_delivered(slow_sink, "success")) == paths, timeout=120, step=0.1)
        assert set(_delivered(slow_sink, "failure").values()) == {1}, "no start repeated"
        assert set(_delivered(slow_sink, "success").values()) == {1}, "no end repeated"
        assert proc.signal(signal.SIGTERM) == 0
    finally:
        proc.stop()
    text = log.read_text(encoding="utf-8")
    down, up = text.count("store unreachable"), text.count("store reachable again")
    assert down == up and 1 <= down <= 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    print(f"outages logged: {down}, recoveries logged: {up}")
