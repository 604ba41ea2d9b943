"""``alertd run`` as a process whose wall clock is stepped back and forward (libfaketime).

The fault (issue: clock steps): APScheduler keeps next run times on the wall clock, so a
1 h backward step stopped polling for as long as the step, and alert cycles in that time
were never announced; a 3 h forward step made seconds-old starts look three hours old.
Here the child's wall clock is stepped through a libfaketime timestamp file while its
monotonic clock runs on, as NTP does to a Raspberry Pi without a real-time clock.
Assertions are on what the resident's channel receives, not on timings: the waits are
bounded far below the size of the steps, so a daemon that waits out the step fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.process import alertd_env
from support.upstream_helpers import AIU_TOKEN, wait_for

from alertd.devtools.simulate import Sink, Upstream

pytestmark = pytest.mark.e2e

LIBFAKETIMES = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
LAUNCHER = Path(__file__).resolve().parents[1] / "support" / "faketime_run.py"
KYIV_OBLAST, LVIV_OBLAST, ODESA_OBLAST = 14, 27, 18


def _libfaketime() -> Path:
    if LIBFAKETIMES:
        return LIBFAKETIMES[0]
    if os.environ.get("CI"):
        pytest.fail("libfaketime is missing; .ci/run installs Debian's faketime")
    pytest.skip(f"libfaketime not installed (faketime on PATH: {shutil.which('faketime')})")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN) as up:
        yield up


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


def _config(directory: Path, upstream: Upstream, sink: Sink) -> Path:
    lines = [
        f'state_dir = "{directory / "state"}"',
        "[http]",
        "enabled = false",
        "[tracker]",
        "end_confirmations = 1",
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
        "[[subscribers]]",
        'name = "resident"',
        'regions = ["UA-32", "UA-46", "UA-51"]',
        f'urls = ["{sink.url("/resident")}"]',
    ]
    path = directory / "alertd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _types(sink: Sink) -> list[str]:
    return [r.type for r in sink.received("/resident", delivered=True)]


def test_wall_clock_steps_neither_stall_polling_nor_age_fresh_alerts(
    tmp_path: Path, upstream: Upstream, sink: Sink
) -> None:
    lib = _libfaketime()
    offset = tmp_path / "faketime.rc"
    offset.write_text("+0\n", encoding="utf-8")
    env = alertd_env() | {
        "LD_PRELOAD": str(lib),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    config = _config(tmp_path, upstream, sink)
    log = tmp_path / "alertd.log"
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: upstream.requests("alerts_in_ua"), timeout=30)
        now = datetime.now(UTC).replace(microsecond=0)
        upstream.add_alert(KYIV_OBLAST, started_at=now - timedelta(seconds=5))
        wait_for(lambda: _types(sink) == ["failure"], timeout=30)

        # back one hour: the end and a new start must still come within seconds
        offset.write_text("-1h\n", encoding="utf-8")
        upstream.clear_alert(KYIV_OBLAST)
        wait_for(lambda: _types(sink) == ["failure", "success"], timeout=30)
        upstream.add_alert(LVIV_OBLAST, started_at=datetime.now(UTC).replace(microsecond=0))
        wait_for(lambda: _types(sink) == ["failure", "success", "failure"], timeout=30)

        # forward three hours (four from the last step): a fresh start is fresh, not "240 min old"
        offset.write_text("+3h\n", encoding="utf-8")
        upstream.add_alert(ODESA_OBLAST, started_at=datetime.now(UTC).replace(microsecond=0))
        wait_for(lambda: _types(sink) == ["failure", "success", "failure", "failure"], timeout=30)
        upstream.clear_alerts()
        wait_for(lambda: sorted(_types(sink)).count("success") == 3, timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text(encoding="utf-8")
    assert proc.returncode == 0, text[-3000:]
    stepped = "wall clock stepped; polls rescheduled on the monotonic clock"
    assert text.count(f"{stepped} direction=back step=1h00m") == 1, text[-3000:]
    assert text.count(f"{stepped} direction=forward step=4h00m") == 1, text[-3000:]
    assert "dead" not in text.lower(), text[-3000:]
    # each alert exactly once each way: three starts, three ends, nothing twice
    assert sorted(_types(sink)) == ["failure"] * 3 + ["success"] * 3
