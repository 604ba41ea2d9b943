"""/healthz and /metrics: the pure health decision, then the real uvicorn server in the test's loop.

The first half tests :func:`alertd.web.health` alone (no I/O). The second half
starts :func:`alertd.web.serve` on 127.0.0.1 with a free port, a real SQLite
store in ``tmp_path`` and a real :class:`~alertd.web.metrics.Metrics`, and talks to
it over HTTP with httpx.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from alertd.config import Settings, SourceConfig, load_settings
from alertd.store.sqlite import SourceCursor, Store
from alertd.web.metrics import CONTENT_TYPE_LATEST, Metrics
from alertd.web.server import bind_socket, create_app, health, serve

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STARTED = T0 - timedelta(hours=1)  # the process has been up for an hour: start-up grace is over


def src(name: str, **kw) -> SourceConfig:
    kw.setdefault("interval", 10)  # allowance max(60, 6*10) = 60 s
    return SourceConfig(name=name, type="oref", **kw)


def ok_cursor(name: str, age: float) -> SourceCursor:
    return SourceCursor(name=name, last_success=T0 - timedelta(seconds=age), last_attempt=T0)


# -- the pure decision ---------------------------------------------------------------------
def test_all_sources_fresh_and_outbox_empty_is_ok() -> None:
    ok, body = health([ok_cursor("a", 5), ok_cursor("b", 60)], [src("a"), src("b")], None, T0, STARTED)
    assert ok
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert body["sources"]["a"] == {
        "ok": True,
        "last_success": "2026-11-25T11:59:55Z",
        "allowance_seconds": 60.0,
    }
    assert body["outbox"]["ok"] is True


def test_a_source_past_its_allowance_fails_with_error_and_since() -> None:
    failing = SourceCursor(
        name="b",
        last_success=T0 - timedelta(seconds=61),
        failing_since=T0 - timedelta(seconds=55),
        consecutive_failures=5,
        last_error="b: HTTP 502 from upstream",
    )
    ok, body = health([ok_cursor("a", 1), failing], [src("a"), src("b")], None, T0, STARTED)
    assert not ok
    assert body["status"] == "failing"
    assert body["failing"] == ["b"]
    b = body["sources"]["b"]
    assert b["ok"] is False
    assert b["last_error"] == "b: HTTP 502 from upstream"
    assert b["failing_since"] == "2026-11-25T11:59:05Z"
    assert b["consecutive_failures"] == 5
    assert "61s" in b["reason"] and "60s" in b["reason"]
    assert body["sources"]["a"]["ok"] is True


def test_failures_within_the_allowance_are_still_ok_but_reported() -> None:
    cursor = SourceCursor(
        name="a",
        last_success=T0 - timedelta(seconds=30),
        failing_since=T0 - timedelta(seconds=20),
        consecutive_failures=2,
        last_error="timed out",
    )
    ok, body = health([cursor], [src("a")], None, T0, STARTED)
    assert ok
    assert body["sources"]["a"]["last_error"] == "timed out"


def test_explicit_allowance_wins() -> None:
    ok, _ = health([ok_cursor("a", 100)], [src("a", allowance=120)], None, T0, STARTED)
    assert ok
    ok, _ = health([ok_cursor("a", 100)], [src("a", allowance=90)], None, T0, STARTED)
    assert not ok


def test_never_succeeded_is_ok_during_the_start_up_grace_only() -> None:
    started = T0 - timedelta(seconds=30)
    failing = SourceCursor(name="a", failing_since=started, consecutive_failures=3, last_error="refused")
    ok, body = health([failing], [src("a")], None, T0, started)
    assert ok, body
    ok, body = health([failing], [src("a")], None, started + timedelta(seconds=61), started)
    assert not ok
    assert "never" in body["sources"]["a"]["reason"]
    # no cursor at all (not polled yet) behaves the same
    assert health([], [src("a")], None, T0, started)[0]
    assert not health([], [src("a")], None, started + timedelta(seconds=61), started)[0]


def test_a_stale_success_from_before_a_restart_gets_the_grace_too() -> None:
    started = T0 - timedelta(seconds=10)
    old = ok_cursor("a", 86400)  # the daemon was stopped for a day
    assert health([old], [src("a")], None, T0, started)[0]
    ok, body = health([old], [src("a")], None, started + timedelta(seconds=61), started)
    assert not ok
    assert "not since start" in body["sources"]["a"]["reason"]


def test_disabled_and_unknown_sources_are_ignored() -> None:
    stale = ok_cursor("off", 10_000)
    ghost = ok_cursor("removed-from-config", 10_000)
    ok, body = health(
        [stale, ghost, ok_cursor("a", 1)], [src("a"), src("off", enabled=False)], None, T0, STARTED
    )
    assert ok
    assert set(body["sources"]) == {"a"}


def test_outbox_lag() -> None:
    cursors, sources = [ok_cursor("a", 1)], [src("a")]
    ok, body = health(cursors, sources, T0 - timedelta(seconds=299), T0, STARTED)
    assert ok and body["outbox"]["lag_seconds"] == 299
    ok, body = health(cursors, sources, T0 - timedelta(seconds=301), T0, STARTED)
    assert not ok
    assert body["failing"] == []
    assert body["outbox"]["ok"] is False and "301s" in body["outbox"]["reason"]
    ok, _ = health(cursors, sources, T0 - timedelta(seconds=301), T0, STARTED, max_outbox_lag=600)
    assert ok


def test_error_texts_are_redacted() -> None:
    cursor = SourceCursor(name="a", consecutive_failures=9, last_error="GET https://x/?key=SECRET failed")
    _, body = health(
        [cursor], [src("a")], None, T0, STARTED, redact=lambda text: text.replace("SECRET", "***")
    )
    assert body["sources"]["a"]["last_error"] == "GET https://x/?key=*** failed"


# -- the real server -------------------------------------------------------------------------
def settings_with(*sources: SourceConfig, tmp_path: Path) -> Settings:
    return load_settings(None, env={}, validate_urls=False, sources=list(sources), state_dir=tmp_path)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "alertd.sqlite3")
    yield s
    s.close()


class Running:
    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event, url: str) -> None:
        self.task, self.stop, self.url = task, stop, url


async def start(app, stop: asyncio.Event) -> Running:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    task = asyncio.create_task(serve(app, "127.0.0.1", port, stop, sock=sock))
    return Running(task, stop, f"http://127.0.0.1:{port}")


async def test_healthz_metrics_and_stop(store: Store, tmp_path: Path) -> None:
    cfg = src("oref-main")
    settings = settings_with(cfg, tmp_path=tmp_path)
    metrics = Metrics(outbox_depth=store.outbox_depth, sources=["oref-main"])
    sigterm_before = signal.getsignal(signal.SIGTERM)
    sigint_before = signal.getsignal(signal.SIGINT)
    app = create_app(
        settings=settings, store=store, metrics=metrics, started_at=datetime.now(UTC) - timedelta(hours=1)
    )
    store.record_unchanged("oref-main")  # polled just now
    metrics.poll_ok("oref-main", datetime.now(UTC).timestamp())
    stop = asyncio.Event()
    server = await start(app, stop)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            r = await client.get("/healthz")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ok"
            assert r.headers["cache-control"] == "no-store"
            # uvicorn must not have taken the daemon's signals
            assert signal.getsignal(signal.SIGTERM) is sigterm_before
            assert signal.getsignal(signal.SIGINT) is sigint_before

            # the source has failed for longer than its 60 s allowance
            long_ago = datetime.now(UTC) - timedelta(seconds=600)
            store.record_unchanged("oref-main", now=long_ago - timedelta(seconds=10))
            store.record_failure("oref-main", "oref-main: HTTP 503 from upstream", now=long_ago)
            store.record_failure("oref-main", "oref-main: timed out after 10s (ReadTimeout)")
            metrics.poll_failed("oref-main", "timed out")
            r = await client.get("/healthz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "failing"
            assert body["failing"] == ["oref-main"]
            entry = body["sources"]["oref-main"]
            assert entry["last_error"] == "oref-main: timed out after 10s (ReadTimeout)"
            assert entry["failing_since"] == long_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert entry["consecutive_failures"] == 2

            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"] == CONTENT_TYPE_LATEST
            text = r.text
            for name in (
                "alertd_polls_total",
                "alertd_poll_failures_total",
                "alertd_source_last_success_timestamp_seconds",
                "alertd_deliveries_total",
                "alertd_outbox_depth",
                "alertd_detection_latency_seconds",
                "alertd_delivery_latency_seconds",
            ):
                assert name in text, name
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }
            assert samples[("alertd_poll_failures_total", (("source", "oref-main"),))] == 1
            assert samples[("alertd_outbox_depth", ())] == 0

            assert (await client.get("/nope")).status_code == 404
    finally:
        stop.set()
    await asyncio.wait_for(server.task, timeout=10)
    assert server.task.exception() is None
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(server.url + "/healthz")


async def test_never_polled_source_is_healthy_during_grace(store: Store, tmp_path: Path) -> None:
    settings = settings_with(src("fresh"), tmp_path=tmp_path)
    app = create_app(settings=settings, store=store, metrics=Metrics())
    stop = asyncio.Event()
    server = await start(app, stop)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            r = await client.get("/healthz")
            assert r.status_code == 200, r.text
            assert r.json()["sources"]["fresh"]["last_success"] is None
    finally:
        stop.set()
        await asyncio.wait_for(server.task, timeout=10)


async def test_extra_routes_and_custom_health_check(tmp_path: Path) -> None:
    async def hello(request):
        return PlainTextResponse(f"hello, {request.app.state.settings.language}")

    app = create_app(
        settings=settings_with(tmp_path=tmp_path),
        health_check=lambda: (False, {"status": "failing", "why": "test"}),
        routes=[Route("/hello", hello)],
    )
    stop = asyncio.Event()
    server = await start(app, stop)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            assert (await client.get("/hello")).text == "hello, uk"
            r = await client.get("/healthz")
            assert r.status_code == 503 and r.json()["why"] == "test"
            assert (await client.get("/metrics")).status_code == 404  # no Metrics given
    finally:
        stop.set()
        await asyncio.wait_for(server.task, timeout=10)


async def test_a_failing_store_is_a_503_not_a_500(store: Store, tmp_path: Path) -> None:
    app = create_app(settings=settings_with(src("a"), tmp_path=tmp_path), store=store)
    store.close()  # every query now raises sqlite3.ProgrammingError
    stop = asyncio.Event()
    server = await start(app, stop)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            r = await client.get("/healthz")
            assert r.status_code == 503
            assert r.json()["status"] == "failing"
    finally:
        stop.set()
        await asyncio.wait_for(server.task, timeout=10)


async def test_busy_port_fails_early() -> None:
    first = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            bind_socket("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()


async def test_cancelling_serve_closes_the_server(store: Store, tmp_path: Path) -> None:
    app = create_app(settings=settings_with(tmp_path=tmp_path), store=store)
    server = await start(app, asyncio.Event())
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
    server.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server.task
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(server.url + "/healthz")


async def test_sigterm_reaches_the_daemon_not_uvicorn(store: Store, tmp_path: Path) -> None:
    """The daemon's loop.add_signal_handler(SIGTERM) still fires while the server runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        server = await start(create_app(settings=settings_with(tmp_path=tmp_path), store=store), stop)
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), timeout=5)
        await asyncio.wait_for(server.task, timeout=10)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
