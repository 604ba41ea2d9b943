"""The CAP 1.2 feed on the daemon's HTTP server: a real ``run_app`` polling the simulated
ukrainealarm upstream, read over HTTP as an aggregator would.

Every message fetched here is validated against the OASIS CAP 1.2 schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from support.cap_schema import assert_valid_cap

from alertd.config import Settings, SourceConfig, load_settings
from alertd.core.model import EventStatus, Notice
from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.run.app import run_app
from alertd.run.poll import MessageCache, poll_source
from alertd.store.base import SourceCursor
from alertd.store.sqlite import Store
from alertd.web.server import bind_socket

REGISTRY = RegionRegistry.load()
UA_TOKEN = "cap-ua-token-4"
KYIV_CITY, KHARKIV, LVIV, ODESA = 31, 22, 27, 18  # ukrainealarm regionIds of UA-30, UA-63, UA-46, UA-51
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=None, ukrainealarm_token=UA_TOKEN) as up:
        yield up


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def settings_for(tmp_path: Path, upstream: Upstream, extra: str = "") -> Settings:
    text = f"""
state_dir = "{tmp_path / "state"}"
[http]
enabled = true
listen = "127.0.0.1:9"
[cap_out]
enabled = true
sender = "alerts@ngo.example.org"
[tracker]
end_confirmations = 2
[[sources]]
name = "ualarm"
type = "ukrainealarm"
url = "{upstream.ukrainealarm_url}"
token = "{UA_TOKEN}"
interval = 1
timeout = 1
jitter = 0
{extra}
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
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[str]:
    """``run_app`` with its HTTP server on a free port; yields the base URL."""
    sock = bind_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_app(settings, REGISTRY, stop=stop, on_ready=ready.set, http_socket=sock))
    try:
        await asyncio.wait_for(asyncio.shield(ready.wait()), 15)
        yield base
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


class Reader:
    """An aggregator: reads the index, fetches every message, validates each one."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client, self.base = client, base
        self.validated = 0

    async def messages(self) -> dict[str, ET.Element]:
        resp = await self.client.get(f"{self.base}/cap/alerts.atom")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("application/atom+xml")
        feed = ET.fromstring(resp.content)
        out = {}
        for entry in feed.findall(f"{ATOM}entry"):
            link = next(el for el in entry.findall(f"{ATOM}link") if el.get("rel") == "alternate")
            msg = await self.client.get(link.get("href"))
            assert msg.status_code == 200
            assert msg.headers["content-type"].startswith("application/cap+xml")
            assert_valid_cap(msg.content)
            self.validated += 1
            root = ET.fromstring(msg.content)
            out[root.findtext(f"{CAP}identifier")] = root
        return out


def by_type(messages: dict[str, ET.Element], msg_type: str) -> list[ET.Element]:
    return [m for m in messages.values() if m.findtext(f"{CAP}msgType") == msg_type]


async def test_cap_feed_follows_an_alert_from_start_to_all_clear(tmp_path: Path, upstream: Upstream) -> None:
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    upstream.add_alert(KHARKIV, "air_raid", started)  # active at the first poll: recorded, not announced
    settings = settings_for(tmp_path, upstream)
    async with running(settings) as base, httpx.AsyncClient(timeout=5) as client:
        reader = Reader(client, base)
        await until(lambda: len(upstream.requests("ukrainealarm")) >= 1, what="first poll")
        msgs: dict[str, ET.Element] = {}

        async def poll_feed() -> dict[str, ET.Element]:
            nonlocal msgs
            msgs = await reader.messages()
            return msgs

        async def wait_feed(pred: Callable[[dict[str, ET.Element]], bool], what: str) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not pred(await poll_feed()):
                assert loop.time() < deadline, what
                await asyncio.sleep(0.1)

        # the baseline alert is published (its start rebuilt from the upstream's start time)
        await wait_feed(lambda m: len(by_type(m, "Alert")) == 1, "baseline alert in the feed")
        (kharkiv,) = by_type(msgs, "Alert")
        assert kharkiv.findtext(f"{CAP}info/{CAP}onset") == started.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        kharkiv_id = kharkiv.findtext(f"{CAP}identifier")

        upstream.add_alert(KYIV_CITY, "artillery")
        await wait_feed(lambda m: len(by_type(m, "Alert")) == 2, "Kyiv start in the feed")
        (kyiv,) = [m for m in by_type(msgs, "Alert") if m.findtext(f"{CAP}identifier") != kharkiv_id]
        assert kyiv.findtext(f"{CAP}status") == "Actual" and kyiv.findtext(f"{CAP}scope") == "Public"
        info_en = kyiv.findall(f"{CAP}info")[1]
        assert info_en.findtext(f"{CAP}event") == "Artillery shelling threat"
        assert info_en.findtext(f"{CAP}area/{CAP}areaDesc") == "Kyiv"
        geocodes = {
            (g.findtext(f"{CAP}valueName"), g.findtext(f"{CAP}value"))
            for g in info_en.findall(f"{CAP}area/{CAP}geocode")
        }
        assert ("ISO3166-2", "UA-30") in geocodes and ("ukrainealarm", "31") in geocodes

        # caching: an unchanged index answers 304 to its ETag and to its Last-Modified
        first = await client.get(f"{base}/cap/alerts.atom")
        assert first.headers["cache-control"] == "public, max-age=10"
        again = await client.get(f"{base}/cap/alerts.atom", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        since = await client.get(
            f"{base}/cap/alerts.atom", headers={"If-Modified-Since": first.headers["last-modified"]}
        )
        assert since.status_code == 304

        # the end: an Update with responseType AllClear that references the start
        upstream.clear_alert(KYIV_CITY, "artillery")
        await wait_feed(lambda m: len(by_type(m, "Update")) == 1, "all-clear in the feed")
        (end,) = by_type(msgs, "Update")
        assert {r.text for r in end.iter(f"{CAP}responseType")} == {"AllClear"}
        kyiv_ident = kyiv.findtext(f"{CAP}identifier")
        assert end.findtext(f"{CAP}references") == (
            f"alerts@ngo.example.org,{kyiv_ident},{kyiv.findtext(f'{CAP}sent')}"
        )
        changed = await client.get(
            f"{base}/cap/alerts.atom", headers={"If-None-Match": first.headers["etag"]}
        )
        assert changed.status_code == 200  # the index changed: a new ETag
        assert (await client.get(f"{base}/cap/alertd-000000000000000000000000.xml")).status_code == 404
        assert (await client.get(f"{base}/cap/..%2Fetc.xml")).status_code == 404
        assert reader.validated >= 5

    # identifiers are stable across a restart: the same messages under the same names
    async with running(settings) as base, httpx.AsyncClient(timeout=5) as client:
        after = await Reader(client, base).messages()
        assert set(after) == set(msgs)


async def test_cap_feed_is_off_by_default(tmp_path: Path, upstream: Upstream) -> None:
    settings = settings_for(tmp_path, upstream).model_copy(
        update={"cap_out": settings_for(tmp_path, upstream).cap_out.model_copy(update={"enabled": False})}
    )
    async with running(settings) as base, httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{base}/cap/alerts.atom")).status_code == 404


# -- round trip: alertd's own cap source reading alertd's own CAP feed ------------------------------


async def read_as_cap_source(client: httpx.AsyncClient, base: str) -> list[Notice]:
    """One poll of alertd's own ``cap`` source at the feed (:func:`alertd.run.poll.poll_source`):
    the thin index, then every linked message fetched and parsed as the daemon does. One
    notice per ``<info>``; the English ones are kept (the Ukrainian ones say the same).
    Each linked message is validated against the schema too."""
    cfg = SourceConfig(name="peer", type="cap", url=f"{base}/cap/alerts.atom", timeout=5)
    result = await poll_source(client, cfg, SourceCursor(name="peer"), REGISTRY, MessageCache())
    assert isinstance(result.payload, list) and not [s for s in result.skipped if s.warning]
    for link in ET.fromstring((await client.get(cfg.url or "")).content).iter(f"{ATOM}link"):
        if link.get("rel") == "alternate":
            assert_valid_cap((await client.get(link.get("href") or "")).content)
    return [n for n in result.payload if n.language == "en"]


def alerts_from_notices(notices: list[Notice]) -> set[tuple[str, str, datetime, datetime | None]]:
    """(place, kind, start, end) per alert: an Alert message starts one (place: geocode
    ``alertd:region``, start: onset); an AllClear Update referencing it ends it (effective)."""
    starts = {n.id.split("#")[0]: n for n in notices if n.msg_type == "Alert"}
    ends: dict[str, datetime | None] = {}
    for n in notices:
        if n.msg_type == "Update" and "AllClear" in n.response_types:
            (ref,) = n.references
            ends[ref.split(",")[1]] = n.effective
    out = set()
    for ident, n in starts.items():
        place = dict(n.geocodes)["alertd:region"]
        assert n.onset is not None
        out.add((place, str(n.kind), n.onset, ends.get(ident)))
    assert set(ends) <= set(starts)  # every end refers to a start the feed lists
    return out


def alerts_of(settings: Settings) -> set[tuple[str, str, datetime, datetime | None]]:
    """(place, kind, start, end) of every alert alertd itself knows: its events and its active set."""
    store = Store(settings.db_path)
    try:
        out: dict[tuple[str, str, datetime], datetime | None] = {}
        for a in store.active_alerts():
            out[(a.region.code, str(a.kind), a.started_at)] = None
        for e in store.events():
            assert e.region is not None and e.started_at is not None
            key = (e.region.code, str(e.kind), e.started_at)
            out[key] = e.ended_at if e.status == EventStatus.ENDED else out.get(key)
        # CAP times carry whole seconds (the schema allows no fraction); upstream starts already do
        return {(*k, v.replace(microsecond=0) if v else None) for k, v in out.items()}
    finally:
        store.close()


async def test_round_trip_the_cap_source_reads_back_the_same_alerts(
    tmp_path: Path, upstream: Upstream
) -> None:
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=7)
    upstream.add_alert(KHARKIV, "air_raid", started)  # a baseline alert, recorded not announced
    settings = settings_for(tmp_path, upstream)
    async with running(settings) as base, httpx.AsyncClient(timeout=5) as client:
        await until(lambda: len(upstream.requests("ukrainealarm")) >= 1, what="first poll")
        upstream.add_alert(KYIV_CITY, "artillery")
        upstream.add_alert(LVIV, "urban_fights")
        upstream.add_alert(ODESA, "chemical")
        n = len(upstream.requests("ukrainealarm_status"))
        await until(lambda: len(upstream.requests("ukrainealarm_status")) >= n + 2, what="the starts polled")
        upstream.clear_alert(KYIV_CITY, "artillery")
        upstream.clear_alert(ODESA, "chemical")
        notices: list[Notice] = []

        async def ended_twice() -> bool:
            nonlocal notices
            notices = await read_as_cap_source(client, base)
            return sum("AllClear" in n.response_types for n in notices) == 2

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not await ended_twice():
            assert loop.time() < deadline, "both ends in the feed"
            await asyncio.sleep(0.1)
        theirs = alerts_from_notices(notices)
        ours = alerts_of(settings)
    assert theirs == ours
    assert {(place, kind) for place, kind, _, _ in theirs} == {
        ("UA-63", "air_raid"),
        ("UA-30", "artillery"),
        ("UA-46", "urban_fights"),
        ("UA-51", "chemical"),
    }
    assert sum(end is not None for *_, end in theirs) == 2
    assert (("UA-63", "air_raid", started, None)) in theirs
