"""Pushes instead of polls: ukrainealarm webhooks received by a real ``run_app``.

The simulated upstream (:class:`alertd.devtools.simulate.Upstream`) plays ukrainealarm:
alertd registers its hook URL there with the code ``alertd webhooks register`` runs, and
the upstream POSTs a region's whole state to it on a change (:meth:`Upstream.push`).
Residents are ``json://`` channels on a local sink. No assertion is about timing: waits
are bounded conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.sinks import JsonSink

from alertd.cli import main
from alertd.config import Settings, load_settings
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.logs import line as log_line
from alertd.run import webhooks
from alertd.run.app import run_app
from alertd.web.server import bind_socket

REGISTRY = RegionRegistry.load()
UA_TOKEN = "push-ua-token-9"
SECRET = "s3cr3t-push-path-0123456789abcdef"
KYIV_CITY, KHARKIV, LVIV = 31, 22, 27  # ukrainealarm regionIds (UA-30, UA-63, UA-46)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=None, ukrainealarm_token=UA_TOKEN) as up:
        yield up


class Lines(logging.Handler):
    """Every log message alertd writes, as text (message and fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(log_line(record))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


@pytest.fixture
def lines() -> Iterator[Lines]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler = Lines()
    yield handler
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def write_settings(
    tmp_path: Path,
    upstream: Upstream,
    sink: JsonSink,
    base: str,
    *,
    interval: float = 1,
    push_interval: float = 30,
    push_silence: float = 600,
) -> Settings:
    text = f"""
state_dir = "{tmp_path / "state"}"
[http]
enabled = true
listen = "127.0.0.1:9"
[webhooks]
public_url = "{base}"
max_body = 4096
[tracker]
end_confirmations = 2
[delivery]
retry_base = 0.05
retry_max = 0.3
[[sources]]
name = "ualarm"
type = "ukrainealarm"
url = "{upstream.ukrainealarm_url}"
token = "{UA_TOKEN}"
webhook_secret = "{SECRET}"
interval = {interval}
push_interval = {push_interval}
push_silence = {push_silence}
timeout = 1
jitter = 0
[[subscribers]]
name = "everyone"
regions = ["UA-30", "UA-63", "UA-46"]
urls = ["{sink.url("/resident")}"]
"""
    path = tmp_path / "alertd.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={}, registry=REGISTRY, validate_urls=False)


async def until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g}s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(settings: Settings, sock: socket.socket, lines: Lines) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_app(settings, REGISTRY, stop=stop, on_ready=ready.set, http_socket=sock))
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 15)
        logging.getLogger().addHandler(lines)  # after run_app set the process's logging up
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


def _query(settings: Settings, sql: str) -> list[tuple]:
    """Read the state file beside the running daemon (read-only)."""
    if not settings.db_path.exists():
        return []
    db = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        db.close()


def events(settings: Settings) -> list[tuple[str, str]]:
    return [tuple(r) for r in _query(settings, "SELECT status, region_code FROM events ORDER BY seq")]


def baselined(settings: Settings) -> bool:
    return bool(_query(settings, "SELECT 1 FROM sources WHERE name = 'ualarm' AND baseline_done = 1"))


def polls(upstream: Upstream) -> int:
    return len(upstream.requests("ukrainealarm_status"))


async def post(client: httpx.AsyncClient, url: str, body: bytes) -> int:
    return (await client.post(url, content=body, headers={"Content-Type": "application/json"})).status_code


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} not in /metrics")


async def test_push_announces_a_start_and_a_pushed_end_waits_for_polls(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, lines: Lines
) -> None:
    sock = bind_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # a slow poll schedule, so the start below is the push's doing
    settings = write_settings(tmp_path, upstream, json_sink, base, interval=30, push_interval=60)
    hook = webhooks.hook_url(settings, settings.sources[0])
    async with running(settings, sock, lines), httpx.AsyncClient(timeout=5) as client:
        await until(lambda: baselined(settings), what="the baseline poll")
        # registration, as `alertd webhooks register` does it
        outcome = await webhooks.register(client, settings, "ualarm")
        assert outcome.ok, outcome.text
        assert upstream.webhooks == [f"{base}/hooks/ukrainealarm/{SECRET}"]
        assert SECRET not in outcome.text  # the secret is masked in what the operator sees

        upstream.add_alert(KYIV_CITY, "air_raid")
        statuses = await asyncio.to_thread(upstream.push, KYIV_CITY)
        assert statuses == [200]
        await until(lambda: json_sink.received("/resident"), what="the resident hears the pushed start")
        assert lines.count("alert started kind=air_raid region=UA-30 ") == 1
        assert any(
            "alert started kind=air_raid region=UA-30 " in line and "via=push" in line for line in lines.lines
        )

        # a push claiming the end while the polls still show the alert: no end, ever
        before = polls(upstream)
        forged = b'{"regionId":"31","regionType":"State","regionName":"x","activeAlerts":[]}'
        for _ in range(3):
            n = polls(upstream)
            assert await post(client, hook, forged) == 200
            await until(lambda n=n: polls(upstream) > n, what="the poll a push triggers")
        assert polls(upstream) >= before + 3
        assert events(settings) == [("started", "UA-30")]
        assert len(json_sink.received("/resident")) == 1

        # the real end: pushed, then confirmed by the polls the pushes trigger
        upstream.clear_alert(KYIV_CITY, "air_raid")
        for _ in range(2):
            n = polls(upstream)
            assert await asyncio.to_thread(upstream.push, KYIV_CITY) == [200]
            await until(lambda n=n: polls(upstream) > n, what="the poll a push triggers")
        await until(lambda: len(json_sink.received("/resident")) == 2, what="the confirmed end")
        assert events(settings) == [("started", "UA-30"), ("ended", "UA-30")]

        # status through the public URL, as `alertd webhooks status` asks it
        status = await webhooks.status(client, settings, "ualarm")
        assert status.ok and status.data is not None
        assert status.data["pushes"] == 6 and status.data["polling"] == "slowed"

        text = (await client.get(f"{base}/metrics")).text
        assert metric(text, "alertd_pushes_total", source="ualarm", outcome="accepted") == 6
        assert metric(text, "alertd_push_delivery_latency_seconds_count") >= 1
        assert metric(text, "alertd_push_polling_slowed", source="ualarm") == 1

        assert (await webhooks.unregister(client, settings, "ualarm")).ok
        assert upstream.webhooks == []
    assert SECRET not in "\n".join(lines.lines)


async def test_bad_pushes_get_4xx_and_change_nothing(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, lines: Lines
) -> None:
    sock = bind_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = write_settings(tmp_path, upstream, json_sink, base)
    hook = webhooks.hook_url(settings, settings.sources[0])
    upstream.add_alert(KHARKIV, "air_raid")
    async with running(settings, sock, lines), httpx.AsyncClient(timeout=5) as client:
        await until(lambda: polls(upstream) >= 2, what="polls")
        before = events(settings)
        assert await post(client, hook, b"not json") == 400
        assert await post(client, hook, b'{"regionId": 22, "activeAlerts": "many"}') == 400
        assert await post(client, hook, b"[]") == 400
        assert await post(client, hook, b"{" + b" " * 5000 + b"}") == 413
        assert await post(client, f"{base}/hooks/ukrainealarm/wrong-secret-0123456789", b"{}") == 404
        assert (await client.get(f"{base}/hooks/ukrainealarm/wrong-secret-0123456789")).status_code == 404
        await until(lambda: polls(upstream) >= 4, what="more polls")
        assert events(settings) == before
        text = (await client.get(f"{base}/metrics")).text
        assert metric(text, "alertd_pushes_total", source="ualarm", outcome="rejected") == 3
        assert metric(text, "alertd_pushes_total", source="ualarm", outcome="too_large") == 1
        assert lines.count("push rejected") == 4
        assert lines.count("pushes arriving") == 0  # no good push: polling never slowed


async def test_when_pushes_stop_polling_picks_up_and_the_log_says_so_once(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, lines: Lines
) -> None:
    sock = bind_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = write_settings(
        tmp_path, upstream, json_sink, base, interval=1, push_interval=300, push_silence=1
    )
    hook = webhooks.hook_url(settings, settings.sources[0])
    async with running(settings, sock, lines), httpx.AsyncClient(timeout=5) as client:
        await until(lambda: baselined(settings), what="the baseline poll")
        upstream.add_alert(KYIV_CITY, "air_raid")
        assert await post(client, hook, upstream.webhook_body(KYIV_CITY)) == 200
        await until(lambda: len(json_sink.received("/resident")) == 1, what="the pushed start")
        assert lines.count("pushes arriving: polling slowed") == 1
        # no more pushes: after push_silence, polling returns to its interval, logged once
        await until(lambda: lines.count("pushes stopped: polling back to normal"), what="fallback logged")
        # polling alone now finds a new alert the upstream never pushed
        upstream.add_alert(LVIV, "artillery")
        await until(lambda: len(json_sink.received("/resident")) == 2, what="a polled start")
        n = polls(upstream)
        await until(lambda: polls(upstream) >= n + 3, what="more polls at the normal interval")
        assert lines.count("pushes stopped: polling back to normal") == 1
        assert lines.count("pushes arriving: polling slowed") == 1
        text = (await client.get(f"{base}/metrics")).text
        assert metric(text, "alertd_push_polling_slowed", source="ualarm") == 0


def test_cli_registers_and_unregisters_with_the_upstream(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(tmp_path, upstream, json_sink, "https://alerts.example.org")
    config = str(tmp_path / "alertd.toml")
    assert main(["webhooks", "register", "--source", "ualarm", "--config", config]) == 0
    assert upstream.webhooks == [f"https://alerts.example.org/hooks/ukrainealarm/{SECRET}"]
    (request,) = upstream.requests("ukrainealarm_webhook")
    assert request.method == "POST" and request.headers["authorization"] == UA_TOKEN
    out = capsys.readouterr().out
    assert "registered https://alerts.example.org/hooks/ukrainealarm/s3c…" in out and SECRET not in out
    # status asks alertd's endpoint through the public URL: nothing listens there in this test
    assert main(["webhooks", "status", "--source", "ualarm", "--config", config]) == 1
    assert "not reachable" in capsys.readouterr().err
    assert main(["webhooks", "unregister", "--source", "ualarm", "--config", config]) == 0
    assert upstream.webhooks == []
    assert main(["webhooks", "register", "--source", "nosuch", "--config", config]) != 0
    assert settings.sources[0].push_interval == 30
