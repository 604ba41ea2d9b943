"""``alertd run`` as a real process against the simulated upstreams in this test process.

Waits are bounded (the state file is polled every 0.1 s up to 20 s); nothing asserts on timing.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.process import AlertdProcess, alertd_env
from support.upstream_helpers import AIU_TOKEN, UA_TOKEN, read_events, wait_for, write_config

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_CITY, KYIV_OBLAST = 31, 14


def alertd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertd", *args],
        env=alertd_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN) as up:
        yield up


def _baselined(db_path: Path) -> bool:
    """Both sources have had their first good poll (the fresh-install baseline)."""
    if not db_path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT COUNT(*) FROM sources WHERE baseline_done = 1").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return False
    return rows[0] == 2


def _statuses(db_path: Path) -> list[tuple[str, str, str, str | None]]:
    return [
        (status, region, kind, started) for _id, status, region, kind, started, _ended in read_events(db_path)
    ]


def test_sigkill_and_restart_lose_and_repeat_nothing(tmp_path: Path, upstream: Upstream) -> None:
    config = write_config(tmp_path, upstream, interval=1, timeout=2)
    db = tmp_path / "state" / "alertd.sqlite3"
    log = tmp_path / "alertd.log"
    started_key = ("started", "UA-32", "air_raid", T0.isoformat())
    ended_key = ("ended", "UA-32", "air_raid", T0.isoformat())

    first = AlertdProcess(config, log)
    try:
        wait_for(lambda: _baselined(db))
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        wait_for(lambda: started_key in _statuses(db))
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop()

    # while it is down, the alert ends
    upstream.clear_alert(KYIV_OBLAST)
    second = AlertdProcess(config, log)
    try:
        wait_for(lambda: ended_key in _statuses(db))
        # a few more polls of both sources change nothing
        seen = len(upstream.requests("ukrainealarm_status"))
        wait_for(lambda: len(upstream.requests("ukrainealarm_status")) >= seen + 3)
        events = read_events(db)
        assert _statuses(db) == [started_key, ended_key]
        assert len({e[0] for e in events}) == 2
        assert events[1][5] is not None  # ended_at recorded
        code = second.signal(signal.SIGTERM)
    finally:
        second.stop()
    stderr = log.read_text(encoding="utf-8")
    assert code == 0, stderr
    assert "alertd stopped" in stderr
    assert (
        "alert started kind=air_raid region=UA-32 " in stderr
        and "alert ended kind=air_raid region=UA-32 " in stderr
    )
    assert AIU_TOKEN not in stderr and UA_TOKEN not in stderr


def _read(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_the_all_clear_comes_when_the_failing_source_passes_its_allowance(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Both sources report an alert; ukrainealarm starts failing, then alerts.in.ua clears it.
    While ukrainealarm is within its allowance its last "alert" holds the alert open (alerts.in.ua's
    confirmed end is stored, not announced); once it is down past the allowance the end goes out
    at alerts.in.ua's next poll — once, while ukrainealarm is still down."""
    allowance = 10
    config = write_config(tmp_path, upstream, interval=1, timeout=2)
    with config.open("a", encoding="utf-8") as f:
        f.write(f"allowance = {allowance}\n")  # the last [[sources]] table: ualarm
    db = tmp_path / "state" / "alertd.sqlite3"
    started_key = ("started", "UA-32", "air_raid", T0.isoformat())
    ended_key = ("ended", "UA-32", "air_raid", T0.isoformat())

    proc = AlertdProcess(config, tmp_path / "alertd.log")
    try:
        wait_for(lambda: _baselined(db))
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        wait_for(lambda: started_key in _statuses(db) and len(_read(db, "SELECT * FROM source_alerts")) == 2)
        upstream.set_fault("http500", "ukrainealarm_status")
        upstream.set_fault("http500", "ukrainealarm")
        failing = "SELECT failing_since FROM sources WHERE name = 'ualarm' AND failing_since IS NOT NULL"
        ((failing_since,),) = wait_for(lambda: _read(db, failing))
        upstream.clear_alerts()
        # alerts.in.ua confirms the end while ukrainealarm's word still counts: kept, not announced
        kept = "SELECT 1 FROM source_alerts WHERE source = 'aiu' AND confirmed_over IS NOT NULL"
        wait_for(lambda: _read(db, kept) or ended_key in _statuses(db))
        assert _read(db, kept) and _statuses(db) == [started_key], "ended within the allowance"
        wait_for(lambda: ended_key in _statuses(db), timeout=allowance + 30)
        ((observed_at, source),) = _read(db, "SELECT observed_at, source FROM events WHERE status = 'ended'")
        assert source == "aiu"
        down_for = datetime.fromisoformat(str(observed_at)) - datetime.fromisoformat(str(failing_since))
        assert down_for.total_seconds() > allowance
        ((still_failing,),) = _read(db, "SELECT consecutive_failures FROM sources WHERE name = 'ualarm'")
        assert int(str(still_failing)) > 0  # the end did not wait for ukrainealarm to come back
        # ukrainealarm comes back without the alert: nothing more
        upstream.clear_faults()
        wait_for(
            lambda: _read(db, "SELECT 1 FROM sources WHERE name = 'ualarm' AND consecutive_failures = 0")
        )
        seen = len(upstream.requests("ukrainealarm_status"))
        wait_for(lambda: len(upstream.requests("ukrainealarm_status")) >= seen + 3)
        assert _statuses(db) == [started_key, ended_key]
    finally:
        proc.stop()


def test_corrupt_state_file_is_refused(tmp_path: Path, upstream: Upstream) -> None:
    config = write_config(tmp_path, upstream)
    db = tmp_path / "state" / "alertd.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"garbage" * 1000)
    result = alertd("run", "--config", str(config))
    assert result.returncode != 0
    assert str(db) in result.stderr
    assert upstream.requests() == []  # it did not start polling on a state it cannot keep


def test_config_error_names_the_key(tmp_path: Path, upstream: Upstream) -> None:
    config = write_config(tmp_path, upstream, interval=0)
    result = alertd("run", "--config", str(config))
    assert result.returncode != 0
    assert "sources[0].interval" in result.stderr
    assert str(config) in result.stderr
    assert AIU_TOKEN not in result.stderr + result.stdout


def test_run_once_then_status(tmp_path: Path, upstream: Upstream) -> None:
    config = write_config(tmp_path, upstream)
    upstream.add_alert(KYIV_CITY, started_at=T0)
    result = alertd("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert len(upstream.requests("alerts_in_ua")) == 1
    # ukrainealarm: its region list (once a day), then the cheap status index, then the alerts
    assert [r.endpoint for r in upstream.requests() if r.endpoint != "alerts_in_ua"] == [
        "ukrainealarm_regions",
        "ukrainealarm_status",
        "ukrainealarm",
    ]
    assert read_events(tmp_path / "state" / "alertd.sqlite3") == []  # baseline: recorded, not announced

    status = alertd("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "active alerts: 1" in out
    assert "UA-30" in out and "air_raid" in out and "2026-03-01T08:00:00Z" in out
    assert "aiu" in out and "ualarm" in out
    lines = {line.split()[0]: line for line in out.splitlines()[3:] if line.startswith("  ")}
    assert " ok;" in lines["aiu"] and " ok;" in lines["ualarm"]

    # a failing source shows up as such
    upstream.set_fault("http500", "alerts_in_ua")
    assert alertd("run", "--once", "--config", str(config)).returncode == 0
    out = alertd("status", "--config", str(config)).stdout
    assert "FAILING (1 in a row: aiu: HTTP 500 from upstream)" in out
