"""The whole pipeline in one process, driven by the daemon's real code: upstream timeline → received messages.

``run_app`` (the same wiring ``alertd run`` uses: LiveRouter, ProcessHooks,
Dispatcher, Daemon) polls the simulated upstreams (alerts.in.ua and
ukrainealarm) on its own schedule; the subscribers' channels are local sinks
(Apprise ``json://`` on a :class:`JsonSink`, ``mailto://`` on an
:class:`SmtpSink`). The test only scripts the upstream and reads what arrived.

Waits are bounded (``until``); no assertion is about timing. "Exactly one" is
checked once the outbox has settled (no row pending or being sent), after more
polls of both sources have gone by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.sinks import JsonSink, Received, SmtpSink

from alertd.config import Settings, load_settings
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.run.app import run_app
from alertd.store.sqlite import Store, StoredSubscriber

REGISTRY = RegionRegistry.load()
KYIV_TZ = ZoneInfo("Europe/Kyiv")
AIU_TOKEN = "pipeline-aiu-token-1"
UA_TOKEN = "pipeline-ua-token-2"
# alerts.in.ua uids: oblast uids equal ukrainealarm regionIds; 706 is the Irpin hromada (ua:706)
KYIV_OBLAST, KHARKIV_OBLAST, IRPIN = 14, 22, 706

# channel paths on the JSON sink
P_IRPIN = "/irpin"  # hromada ua:706, Ukrainian
P_OBLAST = "/oblast"  # oblast UA-32, English, air raids only (+ a mail channel)
P_CITY = "/city"  # Kyiv city UA-30: never hears a Kyiv-oblast alert
P_ARTILLERY = "/artillery"  # UA-32 but artillery only: filtered out by kind
P_KHARKIV = "/kharkiv"  # UA-63: only the baseline alert, recorded not announced
P_STORED = "/stored"  # a stored (CLI) subscriber of Bucha raion ua:75, English
MAIL_TO = "oblast@example.org"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, ukrainealarm_token=UA_TOKEN, timeout_delay=1.5) as up:
        yield up


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_app configures the root logger for a process; put the test process's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def write_settings(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, smtp_sink: SmtpSink, *, confirmations: int = 3
) -> Settings:
    mail = smtp_sink.url(MAIL_TO, user="alertd", password="mail-pass")
    text = f"""
state_dir = "{tmp_path / "state"}"
language = "uk"
timezone = "Europe/Kyiv"

[http]
enabled = false

[tracker]
end_confirmations = {confirmations}

[delivery]
concurrency = 8
retry_base = 0.05
retry_max = 0.3
max_attempts = 1000
timeout = 5

[[sources]]
name = "aiu"
type = "alerts_in_ua"
url = "{upstream.alerts_in_ua_url}"
token = "{AIU_TOKEN}"
interval = 1
timeout = 1
jitter = 0

[[sources]]
name = "ualarm"
type = "ukrainealarm"
url = "{upstream.ukrainealarm_url}"
token = "{UA_TOKEN}"
interval = 1
timeout = 1
jitter = 0

[[subscribers]]
name = "irpin"
regions = ["ua:706"]
urls = ["{json_sink.url(P_IRPIN)}"]

[[subscribers]]
name = "kyiv-oblast"
regions = ["UA-32"]
kinds = ["air_raid"]
language = "en"
urls = ["{json_sink.url(P_OBLAST)}", "{mail}"]

[[subscribers]]
name = "kyiv-city"
regions = ["UA-30"]
urls = ["{json_sink.url(P_CITY)}"]

[[subscribers]]
name = "oblast-artillery"
regions = ["UA-32"]
kinds = ["artillery"]
urls = ["{json_sink.url(P_ARTILLERY)}"]

[[subscribers]]
name = "kharkiv"
regions = ["UA-63"]
urls = ["{json_sink.url(P_KHARKIV)}"]
"""
    path = tmp_path / "alertd.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path, env={}, registry=REGISTRY)  # Apprise URLs validated as in production
    store = Store(settings.db_path)
    try:
        store.add_subscriber(
            StoredSubscriber(
                name="bucha-raion", regions=("ua:75",), language="en", urls=(json_sink.url(P_STORED),)
            )
        )
    finally:
        store.close()
    return settings


# -- reading the state file (read-only, beside the running daemon) ------------------------------------


def _query(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        db.close()


def events(db_path: Path) -> list[tuple[str, str]]:
    """(status, region code) of every event, in order."""
    return _query(db_path, "SELECT status, region_code FROM events ORDER BY seq")  # type: ignore[return-value]


def unsettled(db_path: Path) -> int:
    return _query(db_path, "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")[0][0]


def baselined(db_path: Path) -> bool:
    rows = _query(db_path, "SELECT COUNT(*) FROM sources WHERE baseline_done = 1")
    return bool(rows) and rows[0][0] == 2


async def until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    """Await ``predicate()`` being truthy, checking every 20 ms; AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g}s")
        await asyncio.sleep(0.02)


async def more_polls(upstream: Upstream, n: int = 2) -> None:
    """Let both sources poll ``n`` more times (each poll of ualarm asks for its status index)."""
    aiu, ua = len(upstream.requests("alerts_in_ua")), len(upstream.requests("ukrainealarm_status"))
    await until(
        lambda: (
            len(upstream.requests("alerts_in_ua")) >= aiu + n
            and len(upstream.requests("ukrainealarm_status")) >= ua + n
        ),
        what=f"{n} more polls of both sources",
    )


async def settled(db_path: Path, upstream: Upstream) -> None:
    """A couple more polls of both sources, then nothing left to deliver."""
    await more_polls(upstream)
    await until(lambda: unsettled(db_path) == 0, what="outbox settled")


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[asyncio.Task[int]]:
    """``run_app`` as ``alertd run`` runs it, stopped cleanly (exit code 0) at the end."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_app(settings, REGISTRY, stop=stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 15)
        yield task
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


def delivered(sink: JsonSink, path: str) -> list[Received]:
    return sink.received(path, delivered=True)


def hhmm(at: datetime) -> str:
    return at.astimezone(KYIV_TZ).strftime("%H:%M")


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- the timeline -----------------------------------------------------------------------------------


async def test_timeline_from_upstream_to_received_messages(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, smtp_sink: SmtpSink
) -> None:
    settings = write_settings(tmp_path, upstream, json_sink, smtp_sink)
    db = settings.db_path
    hearing = [P_IRPIN, P_OBLAST, P_STORED]  # JSON channels that must hear a Kyiv-oblast air raid
    deaf = [P_CITY, P_ARTILLERY, P_KHARKIV]

    # fresh install: an alert already active at the first poll is recorded, not announced
    upstream.add_alert(KHARKIV_OBLAST, started_at=now_s() - timedelta(hours=1))
    async with running(settings):
        await until(lambda: baselined(db), what="both sources baselined")
        await settled(db, upstream)
        assert events(db) == []
        assert json_sink.received() == [] and smtp_sink.messages() == []

        # -- an air raid in Kyiv oblast: one start per matching channel, whichever source sees it first
        t1 = now_s()
        upstream.add_alert(KYIV_OBLAST, started_at=t1)
        for path in hearing:
            await until(lambda p=path: delivered(json_sink, p), what=f"start on {path}")
        await until(lambda: smtp_sink.messages(MAIL_TO), what="start by mail")
        # both sources report it, polled again and again: still one start
        await settled(db, upstream)
        assert events(db) == [("started", "UA-32")]
        for path in hearing:
            got = delivered(json_sink, path)
            assert len(got) == 1, (path, got)
            assert got[0].type == "failure", got[0].payload
        uk = delivered(json_sink, P_IRPIN)[0]
        assert uk.title == "Повітряна тривога"
        assert "Київська область" in uk.message and hhmm(t1) in uk.message, uk.message
        for path in (P_OBLAST, P_STORED):
            en = delivered(json_sink, path)[0]
            assert en.title == "Air raid alert"
            assert "Kyiv Oblast" in en.message and hhmm(t1) in en.message, en.message
        (mail,) = smtp_sink.messages(MAIL_TO)
        assert "Air raid alert" in mail.subject and "Kyiv Oblast" in mail.body and hhmm(t1) in mail.body
        for path in deaf:
            assert json_sink.received(path) == [], path

        # -- a flap shorter than the end confirmation (3 good polls): nothing
        upstream.clear_alert(KYIV_OBLAST)
        aiu_ok = len([r for r in upstream.requests("alerts_in_ua") if r.status == 200])
        ua_lists = len(upstream.requests("ukrainealarm"))
        await until(
            lambda: (
                len([r for r in upstream.requests("alerts_in_ua") if r.status == 200]) > aiu_ok
                and len(upstream.requests("ukrainealarm")) > ua_lists
            ),
            what="both sources saw the alert gone",
        )
        upstream.add_alert(KYIV_OBLAST, started_at=t1)  # back, same start
        await settled(db, upstream)

        # -- the upstreams fail in between (HTTP 500, garbage): nothing changes, nothing is sent
        upstream.set_fault("http500", "alerts_in_ua", count=1)
        upstream.set_fault("garbage", "ukrainealarm_status", count=1)
        await until(lambda: len([r for r in upstream.requests() if r.fault]) >= 2, what="faults served")
        await more_polls(upstream, 3)  # and recovered from (after their backoff)
        await until(lambda: unsettled(db) == 0, what="outbox settled")
        assert events(db) == [("started", "UA-32")]
        for path in hearing:
            assert len(json_sink.received(path)) == 1, path
        assert len(smtp_sink.messages()) == 1

        # -- the end: exactly one all-clear per channel that heard the start
        upstream.clear_alert(KYIV_OBLAST)
        for path in hearing:
            await until(lambda p=path: len(delivered(json_sink, p)) >= 2, what=f"end on {path}")
        await until(lambda: len(smtp_sink.messages(MAIL_TO)) >= 2, what="end by mail")
        await settled(db, upstream)
        assert events(db) == [("started", "UA-32"), ("ended", "UA-32")]
        for path in hearing:
            got = delivered(json_sink, path)
            assert [r.type for r in got] == ["failure", "success"], (path, [r.payload for r in got])
        assert delivered(json_sink, P_IRPIN)[1].title == "Відбій тривоги"
        assert "Київська область" in delivered(json_sink, P_IRPIN)[1].message
        assert delivered(json_sink, P_OBLAST)[1].title == "All clear"
        assert [m.subject for m in smtp_sink.messages(MAIL_TO)][1].startswith("All clear")
        for path in deaf:
            assert json_sink.received(path) == [], path
        json_sink.clear()

        # -- an alert in the Irpin hromada, while two channels are down: the oblast and the raion
        # subscribers hear their hromada's alert; the channels that missed the start get one
        # combined notice once they are back ("14:03–14:20, now over")
        json_sink.configure(P_IRPIN, status=500)
        json_sink.configure(P_STORED, status=500)
        t2 = now_s()
        upstream.add_alert(IRPIN, started_at=t2, feeds=["alerts_in_ua"])
        await until(lambda: delivered(json_sink, P_OBLAST), what="hromada start on the oblast channel")
        await until(lambda: len(smtp_sink.messages(MAIL_TO)) >= 3, what="hromada start by mail")
        await until(
            lambda: json_sink.received(P_IRPIN) and json_sink.received(P_STORED),
            what="the start tried on the broken channels",
        )
        upstream.clear_alert(IRPIN)
        await until(
            lambda: len(delivered(json_sink, P_OBLAST)) >= 2, what="hromada end on the oblast channel"
        )
        await until(lambda: len(smtp_sink.messages(MAIL_TO)) >= 4, what="hromada end by mail")
        assert delivered(json_sink, P_IRPIN) == [] and delivered(json_sink, P_STORED) == []
        json_sink.configure(P_IRPIN, status=200)
        json_sink.configure(P_STORED, status=200)
        for path in (P_IRPIN, P_STORED):
            await until(lambda p=path: delivered(json_sink, p), what=f"combined notice on {path}")
        await settled(db, upstream)

    assert events(db)[2:] == [("started", "ua:706"), ("ended", "ua:706")]
    assert [r.type for r in delivered(json_sink, P_OBLAST)] == ["failure", "success"]
    assert "Irpin" in delivered(json_sink, P_OBLAST)[0].message
    assert len(smtp_sink.messages(MAIL_TO)) == 4
    for path, over, place in ((P_IRPIN, "вже завершилась", "Ірпінь"), (P_STORED, "now over", "Irpin")):
        (combined,) = delivered(json_sink, path)
        assert combined.type == "success", combined.payload
        assert f"{hhmm(t2)}–" in combined.message and over in combined.message, combined.message
        assert place in combined.message, combined.message
    for path in deaf:
        assert json_sink.received(path) == [], path


async def test_run_once_polls_and_delivers(
    tmp_path: Path, upstream: Upstream, json_sink: JsonSink, smtp_sink: SmtpSink
) -> None:
    """``alertd run --once``: each call polls every source once and delivers what is due."""
    settings = write_settings(tmp_path, upstream, json_sink, smtp_sink)
    db = settings.db_path
    assert await run_app(settings, REGISTRY, once=True) == 0  # fresh install: the baseline
    assert baselined(db) and events(db) == []

    t1 = now_s()
    upstream.add_alert(KYIV_OBLAST, started_at=t1)
    assert await run_app(settings, REGISTRY, once=True) == 0
    assert events(db) == [("started", "UA-32")]
    assert unsettled(db) == 0
    for path in (P_IRPIN, P_OBLAST, P_STORED):
        got = delivered(json_sink, path)
        assert [r.type for r in got] == ["failure"], path
        assert hhmm(t1) in got[0].message
    assert len(smtp_sink.messages(MAIL_TO)) == 1
    for path in (P_CITY, P_ARTILLERY, P_KHARKIV):
        assert json_sink.received(path) == [], path

    # once more with nothing new: nothing sent again
    assert await run_app(settings, REGISTRY, once=True) == 0
    assert len(json_sink.received()) == 3 and len(smtp_sink.messages()) == 1
