"""What only the SQLite backend does: the real cause of a failed write, the one-daemon lock,
and refusing an empty or foreign state file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.core.tracker import StepResult, TrackerState
from alertd.errors import StoreError, StoreLocked
from alertd.store.base import OutboxRow
from alertd.store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")


def big_step(n: int) -> tuple[StepResult, list[OutboxRow]]:
    event = AlertEvent(
        id="e1", source="a", kind=AlertKind.AIR_RAID, status=EventStatus.STARTED, region=KYIV, observed_at=T0
    )
    rows = [OutboxRow("e1", f"s{i}", f"json://127.0.0.1:9/{i:06d}/{'x' * 200}", "uk") for i in range(n)]
    step = StepResult(
        state=TrackerState(), events=[event], notes=[], changed_keys=frozenset(), source_changed=False
    )
    return step, rows


def test_a_full_disk_raises_the_real_cause_and_changes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "alertd.sqlite3")
    # the database may not grow past its current size: SQLite's own "disk is full"
    pages = store._conn().execute("PRAGMA page_count").fetchone()[0]
    store._conn().execute(f"PRAGMA max_page_count={pages + 2}")
    step, rows = big_step(2000)
    with pytest.raises(StoreError) as caught:
        store.commit_step("a", step, lambda e: rows, now=T0)
    assert "full" in caught.value.cause
    assert "rollback" not in str(caught.value).lower()  # never the secondary "cannot rollback" error
    assert not caught.value.transient
    assert store.events() == [] and store.outbox_depth() == 0
    # space is back: the same step commits, nothing half-written was left behind
    store._conn().execute("PRAGMA max_page_count=1073741823")
    assert len(store.commit_step("a", step, lambda e: rows, now=T0)) == 1
    assert store.outbox_depth() == 2000
    store.close()


def test_a_held_write_lock_is_a_transient_error_naming_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "alertd.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as caught:
            store.record_failure("a", "HTTP 503")
        assert caught.value.transient and "locked" in caught.value.cause
        assert store.cursors() == []  # reads still work under WAL
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.record_failure("a", "HTTP 503").consecutive_failures == 1
    store.close()


def test_one_daemon_per_state_file_and_the_holder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "alertd.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from alertd.store.sqlite import SQLiteStore; "
            "s = SQLiteStore(sys.argv[1], exclusive=True); print('ready', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as caught:
            SQLiteStore(path, exclusive=True)
        assert caught.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(caught.value)
        SQLiteStore(path).close()  # readers (alertd status, subscribers) are not locked out
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the process: a restart after kill -9 is not blocked
    SQLiteStore(path, exclusive=True).close()


@pytest.mark.parametrize("content", [b"", b"not a database, just text\n" * 10])
def test_an_empty_or_foreign_state_file_is_refused_unless_init(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "alertd.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    assert "--init" in str(caught.value)
    assert path.read_bytes() == content  # untouched
    store = SQLiteStore(path, init=True)
    assert store.outbox_depth() == 0
    store.close()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("alertd.sqlite3.refused-")]
    assert len(kept) == 1 and kept[0].read_bytes() == content
    SQLiteStore(path).close()  # now a real database: opens without --init


def test_a_missing_file_is_a_fresh_install(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new" / "alertd.sqlite3")
    assert store.cursors() == []
    size = store.size_bytes()
    assert size is not None and size > 0
    store.close()
    assert os.path.exists(tmp_path / "new" / "alertd.sqlite3")


def test_a_state_file_from_before_confirmed_ends_loads_and_its_reports_still_hold(tmp_path: Path) -> None:
    """An install upgraded from schema 3 (before SourceEntry.confirmed_over): every stored entry
    is a report, as it was, so no alert it holds open can end by the upgrade."""
    from alertd.store.sqlite import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "alertd.sqlite3"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        db.executescript(migration)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '3')")
    db.execute(
        "INSERT INTO source_alerts (source, region_code, kind, region, source_id, started_at, severity, "
        "details, missing, missing_since) VALUES ('b', 'UA-30', 'air_raid', ?, '1', ?, 'Severe', '', 1, ?)",
        (KYIV.model_dump_json(), T0.isoformat(), T0.isoformat()),
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    try:
        (entry,) = store.load_tracker_state().entries["b"].values()
        assert entry.confirmed_over is None and entry.holds
        assert (entry.missing, entry.missing_since) == (1, T0)
        version = store._read("SELECT value FROM meta WHERE key = 'schema_version'")
        assert version == [(str(SCHEMA_VERSION),)]
    finally:
        store.close()
