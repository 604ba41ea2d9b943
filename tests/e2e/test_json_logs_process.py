"""``alertd run --log-format json`` as an operator's log pipeline sees it (DESIGN §6, issue 10 item 8).

One alert starts and ends while one channel fails once. Every stderr line must be one JSON
object, and the facts of each line must be keys of their own, so that ``jq`` or a Loki label
filter on ``source``, ``event``, ``status`` and ``subscriber`` finds the alert's whole story:
its start and end, and each channel's delivery outcomes.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14  # alerts.in.ua location uid → UA-32


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


def write_config(directory: Path, upstream: Upstream, sink: JsonSink) -> Path:
    lines = [
        f'state_dir = "{directory / "state"}"',
        'log_format = "json"',
        "[http]",
        "enabled = false",
        "[delivery]",
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
    ]
    for name in ("olena", "petro"):
        lines += [
            "[[subscribers]]",
            f'name = "{name}"',
            'regions = ["UA-32"]',
            f'urls = ["{sink.url("/" + name)}"]',
        ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_json_logs_filter_by_source_event_status_and_subscriber(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink
) -> None:
    json_sink.configure("/petro", fail_first=1, fail_status=503)
    config = write_config(tmp_path, upstream, json_sink)
    log = tmp_path / "alertd.log"
    proc = AlertdProcess(config, log)
    try:
        wait_for(lambda: upstream.requests("alerts_in_ua"), timeout=30)  # the baseline poll
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        json_sink.wait_for(1, path="/olena", delivered=True, timeout=30)
        json_sink.wait_for(1, path="/petro", delivered=True, timeout=30)
        upstream.clear_alert(KYIV_OBLAST)
        json_sink.wait_for(2, path="/olena", delivered=True, timeout=30)
        json_sink.wait_for(2, path="/petro", delivered=True, timeout=30)
        wait_for(
            lambda: [r for r in records(log) if r["message"] == "delivery ok" and r["status"] == "ended"]
        )
        code = proc.signal(signal.SIGTERM)
    finally:
        proc.stop()
    text = log.read_text(encoding="utf-8")
    assert code == 0, text[-3000:]
    lines = records(log)  # every line is one JSON object, or this fails

    # the alert's own lines, found by source and status: facts as keys, not inside the message
    (started,) = [r for r in lines if r.get("source") == "aiu" and r["message"] == "alert started"]
    (ended,) = [r for r in lines if r.get("source") == "aiu" and r["message"] == "alert ended"]
    assert started["region"] == "UA-32" and started["kind"] == "air_raid" and started["status"] == "started"
    assert ended["region"] == "UA-32" and ended["status"] == "ended"
    assert "UA-32" not in started["message"] and "aiu" not in started["message"]

    # every delivery outcome of the start, by event id
    of_start = [r for r in lines if r.get("event") == started["event"]]
    outcomes = sorted(
        (r["subscriber"], r["message"]) for r in of_start if r["message"].startswith("delivery")
    )
    assert outcomes == [("olena", "delivery ok"), ("petro", "delivery failed"), ("petro", "delivery ok")]
    assert all(r["status"] == "started" and r["kind"] == "air_raid" for r in of_start if "subscriber" in r)
    (failed,) = [r for r in of_start if r["message"] == "delivery failed"]
    assert failed["level"] == "WARNING" and failed["attempt"] == 1 and "503" in failed["error"]

    # and of the end, by status alone
    ended_ok = sorted(
        r["subscriber"] for r in lines if r.get("status") == "ended" and r["message"] == "delivery ok"
    )
    assert ended_ok == ["olena", "petro"]
