"""What only a shared (PostgreSQL) store promises: several instances on one database.

The contract suite (test_contract.py) runs against PostgreSQL unchanged; these tests
add what SQLite cannot have: poll leases, claim leases on the outbox, fencing of a stale
tracker view or a lost lease, operator-notice dedup across instances, the shared
self-service secret, outages that are reported once and recovered from, and the
SQLite → PostgreSQL migration. Every test runs on a real PostgreSQL server
(tests/support/pg.py) and waits on conditions, never on the wall clock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.pg import PgCluster
from support.upstream_helpers import wait_for

from alertd.core.model import ActiveAlert, AlertEvent, AlertKind, EventStatus, Region, RegionLevel, Snapshot
from alertd.core.tracker import TrackerPolicy, apply_snapshot
from alertd.errors import StoreError
from alertd.store.base import OutboxRow, OutboxState, Outcome, StoredSubscriber

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="Київ", name_en="Kyiv", oblast="UA-30")
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=2, suspicious_drop=0)
CHANNELS = [f"json://127.0.0.1:9/c{i}" for i in range(6)]


def fan_out(event: AlertEvent) -> list[OutboxRow]:
    return [OutboxRow(event.id, f"s{i}", url, "uk") for i, url in enumerate(CHANNELS)]


def snap(*regions: Region) -> Snapshot:
    return Snapshot(
        source="a",
        alerts=tuple(
            ActiveAlert(source_id=r.code, kind=AlertKind.AIR_RAID, region=r, started_at=T0) for r in regions
        ),
    )


@pytest.fixture
def open_instance(pg_url: str) -> Iterator[Callable[[str], object]]:
    """Opens the store as instance NAME on this test's database (several may be open at once)."""
    from alertd.store.postgres import PostgresStore

    opened: list[PostgresStore] = []

    def make(name: str) -> PostgresStore:
        store = PostgresStore(pg_url, instance=name)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_one_instance_holds_a_poll_lease_until_it_lapses_then_another_takes_it(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    assert a.acquire_source_lease("aiu", "a", 0.5)
    assert not b.acquire_source_lease("aiu", "b", 0.5), "a live lease is not taken"
    assert a.acquire_source_lease("aiu", "a", 0.5), "the holder renews"
    [lease] = b.leases()
    assert (lease.source, lease.holder, lease.live) == ("aiu", "a", True)
    # a stops renewing (dies): the lease lapses on the database's clock and b takes it
    wait_for(lambda: b.acquire_source_lease("aiu", "b", 30), timeout=10, step=0.05)
    assert not a.acquire_source_lease("aiu", "a", 30)
    assert [(x.holder, x.live) for x in a.leases()] == [("b", True)]
    b.release_source_lease("aiu", "b")
    assert a.acquire_source_lease("aiu", "a", 30), "a released lease is free at once"


def test_a_step_from_an_instance_that_lost_its_lease_is_refused(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    assert a.acquire_source_lease("a", "a", 0.3)
    state = a.load_tracker_state()
    a.commit_step("a", apply_snapshot(state, snap(), T0, POLICY), fan_out, now=T0)
    wait_for(lambda: b.acquire_source_lease("a", "b", 30), timeout=10, step=0.05)
    # a wakes up (it was frozen) and tries to commit what it computed: refused, nothing written
    stale = apply_snapshot(a.load_tracker_state(), snap(KYIV), T0 + timedelta(seconds=10), POLICY)
    with pytest.raises(StoreError, match="polled by b"):
        a.commit_step("a", stale, fan_out, now=T0 + timedelta(seconds=10))
    assert b.outbox_counts() == {} and b.load_tracker_state().active == {}


def test_a_step_computed_from_a_stale_view_is_refused_and_recomputed_without_a_second_start(
    open_instance,
) -> None:
    from alertd.store.postgres import TrackerConflict

    a, b = open_instance("a"), open_instance("b")
    base = a.load_tracker_state()
    a.commit_step("a", apply_snapshot(base, snap(), T0, POLICY), fan_out, now=T0)
    # both instances load the same view; b commits the start first
    view_a = a.load_tracker_state()
    view_b = b.load_tracker_state()
    later = T0 + timedelta(seconds=10)
    started = b.commit_step("a", apply_snapshot(view_b, snap(KYIV), later, POLICY), fan_out, now=later)
    assert [e.status for e in started] == [EventStatus.STARTED]
    with pytest.raises(TrackerConflict):
        a.commit_step("a", apply_snapshot(view_a, snap(KYIV), later, POLICY), fan_out, now=later)
    # a reloads and computes again: the alert is already active, nothing new
    again = apply_snapshot(a.load_tracker_state(), snap(KYIV), later + timedelta(seconds=10), POLICY)
    assert a.commit_step("a", again, fan_out, now=later + timedelta(seconds=10)) == []
    assert a.outbox_counts() == {"pending": len(CHANNELS)}


def test_the_end_confirmation_rule_holds_across_a_handover(open_instance) -> None:
    """One poll without the alert on the old holder, one on the new: only then the end."""
    a, b = open_instance("a"), open_instance("b")
    now = T0
    state = a.load_tracker_state()
    for snapshot in (snap(), snap(KYIV), snap()):  # baseline, start, first poll without it
        step = apply_snapshot(state, snapshot, now, POLICY)
        a.commit_step("a", step, fan_out, now=now)
        state, now = step.state, now + timedelta(seconds=10)
    assert [x.region.code for x in a.active_alerts()] == ["UA-30"], "one missing poll is not an end"
    # b takes over and continues the same history from the database
    step = apply_snapshot(b.load_tracker_state(), snap(), now, POLICY)
    ended = b.commit_step("a", step, fan_out, now=now)
    assert [e.status for e in ended] == [EventStatus.ENDED]
    assert b.active_alerts() == []


def test_events_are_idempotent_under_their_id_across_instances(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    event = AlertEvent(
        id="ev-1",
        source="rss",
        kind=AlertKind.ADVISORY,
        status=EventStatus.ISSUED,
        headline="h",
        body="b",
        observed_at=T0,
    )
    assert a.commit_notices("rss", [event], {"g1": "h1"}, fan_out, now=T0) == [event]
    assert b.commit_notices("rss", [event], {"g1": "h1"}, fan_out, now=T0) == []
    assert a.outbox_counts() == {"pending": len(CHANNELS)}


def _fanned_out(store: object) -> None:
    state = store.load_tracker_state()  # type: ignore[attr-defined]
    for i, snapshot in enumerate((snap(), snap(KYIV))):
        step = apply_snapshot(state, snapshot, T0 + timedelta(seconds=10 * i), POLICY)
        store.commit_step("a", step, fan_out, now=T0 + timedelta(seconds=10 * i))  # type: ignore[attr-defined]
        state = step.state


def test_outbox_claims_are_exclusive_and_a_dead_instances_rows_return_when_its_lease_lapses(
    open_instance,
) -> None:
    a, b = open_instance("a"), open_instance("b")
    _fanned_out(a)
    due = T0 + timedelta(minutes=1)
    mine = a.claim_due(due, limit=4, lease=0.5)
    assert len(mine) == 4
    theirs = b.claim_due(due, limit=100, lease=30)
    assert {i.id for i in theirs}.isdisjoint({i.id for i in mine}) and len(theirs) == len(CHANNELS) - 4
    assert b.claims() == {"a": 4, "b": len(CHANNELS) - 4}
    b.finish([Outcome(i.id, i.attempts, OutboxState.DELIVERED) for i in theirs], due)
    # a dies holding 4 rows: they come back when its claim lease runs out, and b takes them
    taken: list = []
    wait_for(lambda: taken.extend(b.claim_due(due, limit=100, lease=30)) or taken, timeout=10, step=0.05)
    assert sorted(i.id for i in taken) == sorted(i.id for i in mine)
    assert all(i.attempts == 2 for i in taken)
    # a wakes up and reports its old outcome: the rows are b's now, a's word changes nothing
    a.finish([Outcome(i.id, i.attempts, OutboxState.DELIVERED) for i in mine], due)
    assert b.claims() == {"b": 4}
    b.finish([Outcome(i.id, i.attempts, OutboxState.DELIVERED) for i in taken], due)
    assert b.outbox_counts() == {"delivered": len(CHANNELS)}


def test_renewed_claims_are_not_taken_over(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    _fanned_out(a)
    due = T0 + timedelta(minutes=1)
    mine = a.claim_due(due, limit=100, lease=0.3)
    assert a.renew_claims(30) == len(mine)
    time.sleep(0.4)  # past the first lease: a renewal, not a timing assertion, keeps the rows a's
    assert b.claim_due(due, limit=100) == []


def test_each_operator_notice_goes_out_once_across_instances(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    assert a.once("source-down:aiu:2026-11-25T12:00", "a")
    assert not b.once("source-down:aiu:2026-11-25T12:00", "b")
    assert b.once("source-down:aiu:2026-11-25T13:00", "b")


def test_the_self_service_secret_and_rate_limits_are_shared(open_instance) -> None:
    a, b = open_instance("a"), open_instance("b")
    assert a.web_secret() == b.web_secret()
    a.web_rate_hit("subscribe", "10.0.0.1", T0)
    b.web_rate_hit("subscribe", "10.0.0.1", T0)
    assert a.web_rate_count("subscribe", "10.0.0.1", T0 - timedelta(minutes=1)) == 2
    a.add_subscriber(StoredSubscriber(name="olena", regions=("UA-30",), urls=("json://127.0.0.1:9/o",)))
    assert [s.name for s in b.subscribers()] == ["olena"] and b.subscribers_version() == 1


def test_an_outage_is_one_line_then_one_recovery_line_and_nothing_is_half_written(
    pg_cluster: PgCluster, open_instance, caplog: pytest.LogCaptureFixture
) -> None:
    from alertd.store.postgres import StoreUnavailable

    a = open_instance("a")
    _fanned_out(a)
    caplog.set_level(logging.INFO, logger="alertd.store")
    pg_cluster.stop()
    try:
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                a.claim_due(T0 + timedelta(minutes=1))
    finally:
        pg_cluster.start()
    wait_for(lambda: _claims(a), timeout=30, step=0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "alertd.store"]
    assert sum("store unreachable" in line for line in lines) == 1, lines
    assert sum("store reachable again" in line for line in lines) == 1, lines


def _claims(store: object) -> bool:
    try:
        return len(store.claim_due(T0 + timedelta(minutes=1))) == len(CHANNELS)  # type: ignore[attr-defined]
    except StoreError:
        return False


def test_an_sqlite_install_moves_to_postgresql_with_every_row(tmp_path: Path, pg_url: str) -> None:
    from alertd.store.migrate import copy_sqlite_to_postgres
    from alertd.store.postgres import PostgresStore
    from alertd.store.sqlite import SQLiteStore

    path = tmp_path / "alertd.sqlite3"
    old = SQLiteStore(path)
    _fanned_out(old)
    old.add_subscriber(StoredSubscriber(name="olena", regions=("UA-30",), urls=("json://127.0.0.1:9/o",)))
    old.web_create(
        sub_id="w1",
        record=StoredSubscriber(name="web-1", regions=("UA-30",), urls=("ntfy://ntfy.sh/x",)),
        manage_token="tok",
        code_hash="h",
        expires_at=T0 + timedelta(hours=1),
        channel_kind="ntfy",
        destination="d",
        destination_masked="x…",
        client="c",
        now=T0,
    )
    secret = old.web_secret()
    claimed = old.claim_due(T0 + timedelta(minutes=1), limit=2)  # cut off mid-send: pending again
    old.finish([Outcome(claimed[0].id, 1, OutboxState.DELIVERED)], T0 + timedelta(minutes=1))
    old.close()
    counts = {c.table: (c.source_rows, c.copied_rows) for c in copy_sqlite_to_postgres(path, pg_url)}
    assert counts["outbox"] == (len(CHANNELS), len(CHANNELS)) and counts["subscribers"] == (2, 2)
    assert all(src == dst for src, dst in counts.values())
    new = PostgresStore(pg_url, instance="a")
    try:
        assert new.outbox_counts() == {"delivered": 1, "pending": len(CHANNELS) - 1}
        assert [a.region.code for a in new.active_alerts()] == ["UA-30"]
        assert new.web_secret() == secret and new.web_get("w1") is not None
        assert [s.name for s in new.subscribers(status=None)] == ["olena", "web-1"]
        # the tracker continues the same history: the alert is active, no second start
        step = apply_snapshot(new.load_tracker_state(), snap(KYIV), T0 + timedelta(minutes=2), POLICY)
        assert new.commit_step("a", step, fan_out, now=T0 + timedelta(minutes=2)) == []
        # new rows continue after the copied ids
        assert len(new.claim_due(T0 + timedelta(minutes=3))) == len(CHANNELS) - 1
    finally:
        new.close()
    with pytest.raises(StoreError, match="already holds alertd data"):
        copy_sqlite_to_postgres(path, pg_url)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == len(CHANNELS)


def test_status_metrics_and_healthz_show_leases_and_claims(open_instance) -> None:
    from alertd.run.app import shared_status
    from alertd.web.metrics import Metrics

    a, b = open_instance("a"), open_instance("b")
    _fanned_out(a)
    assert a.acquire_source_lease("aiu", "a", 30)
    b.claim_due(T0 + timedelta(minutes=1), limit=2)
    status = shared_status(b, "b")
    assert status["this"] == "b" and status["claimed"] == {"b": 2}
    assert status["leases"]["aiu"]["holder"] == "a" and status["leases"]["aiu"]["live"]
    metrics = Metrics()
    metrics.shared_store(lambda: (b.leases(), b.claims()), "b")
    text = metrics.render().decode()
    assert 'alertd_lease_held{instance="a",source="aiu"} 1.0' in text
    assert 'alertd_outbox_claimed{instance="b"} 2.0' in text
    assert 'alertd_instance{instance="b"} 1.0' in text


def test_store_migrate_command_copies_and_reports_counts(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from alertd.cli import main
    from alertd.store.sqlite import SQLiteStore

    state = tmp_path / "state"
    old = SQLiteStore(state / "alertd.sqlite3")
    _fanned_out(old)
    old.close()
    config = tmp_path / "alertd.toml"
    config.write_text(
        f'state_dir = "{state}"\n[[sources]]\nname = "a"\ntype = "alerts_in_ua"\ntoken = "t0k"\n'
    )
    assert main(["store", "migrate", "--to", pg_url, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert (
        f"outbox {len(CHANNELS):>8} rows copied, {len(CHANNELS)} verified".replace(
            "outbox", "outbox".ljust(18)
        )
        in out
    )
    assert (
        main(["store", "migrate", "--to", pg_url, "--config", str(config)]) == 1
    )  # not into a used database
    assert "already holds alertd data" in capsys.readouterr().err


async def test_healthz_names_this_instance_the_lease_holders_and_the_claims(
    open_instance, tmp_path: Path
) -> None:
    import asyncio

    import httpx

    from alertd.config import load_settings
    from alertd.run.app import shared_status
    from alertd.web.server import bind_socket, create_app, serve

    a, b = open_instance("a"), open_instance("b")
    _fanned_out(a)
    assert a.acquire_source_lease("aiu", "a", 30)
    a.claim_due(T0 + timedelta(minutes=1), limit=3)
    settings = load_settings(None, env={}, validate_urls=False, state_dir=tmp_path)
    app = create_app(settings=settings, store=b, shared=lambda: shared_status(b, "b"))
    sock = bind_socket("127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", sock.getsockname()[1], stop, sock=sock))
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=5
        ) as client:
            body = (await client.get("/healthz")).json()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert body["instances"]["this"] == "b"
    assert body["instances"]["leases"]["aiu"]["holder"] == "a"
    assert body["instances"]["claimed"] == {"a": 3}


def test_a_database_from_before_confirmed_ends_loads_and_its_reports_still_hold(pg_url: str) -> None:
    """A database at schema 2 (before SourceEntry.confirmed_over) migrates in place: every stored
    entry is a report, as it was, so no alert it holds open can end by the upgrade."""
    import psycopg

    from alertd.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore

    with psycopg.connect(pg_url, autocommit=True) as db:
        for migration in MIGRATIONS[:2]:
            db.execute(migration)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
        db.execute(
            "INSERT INTO source_alerts (source, region_code, kind, region, source_id, started_at, severity, "
            "details, missing, missing_since) VALUES ('b', 'UA-30', 'air_raid', %s, '1', %s, 'Severe', '', 1, %s)",
            (KYIV.model_dump_json(), T0, T0),
        )
    store = PostgresStore(pg_url, instance="upgraded")
    try:
        (entry,) = store.load_tracker_state().entries["b"].values()
        assert entry.confirmed_over is None and entry.holds
        assert (entry.missing, entry.missing_since) == (1, T0)
    finally:
        store.close()
    with psycopg.connect(pg_url) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row == (str(SCHEMA_VERSION),)
