"""Follow a place without personal data: ``/topics`` (page) and ``/api/topics`` (JSON) over HTTP.

The real app (:func:`alertd.web.create_app` with the self-service routes), a real
SQLite store and httpx's ASGI transport, as in ``test_selfservice_api``. The
topics are the operator's config: an ntfy template per oblast and hromada, a
public Telegram channel for Kyiv, and a private Telegram chat for Lviv (no public
link, so never shown).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertd.config import load_settings
from alertd.core.regions import RegionRegistry
from alertd.store.sqlite import Store
from alertd.web.selfservice import SelfService, attach, routes
from alertd.web.server import create_app

BOT_TOKEN = "123456789:AAbotSECRETtoken"
TOPICS = [
    {"name": "places", "url": "ntfys://ntfy.example.org/alerts-{code}", "levels": ["oblast", "hromada"]},
    {"name": "kyiv", "url": f"tgram://{BOT_TOKEN}/@kyiv_alerts", "places": ["UA-30", "UA-32"]},
    {"name": "lviv-private", "url": f"tgram://{BOT_TOKEN}/-1001234567890", "places": ["UA-46"]},
]


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


@pytest.fixture
async def make_client(tmp_path: Path, registry: RegionRegistry) -> AsyncIterator[Callable[..., Any]]:
    stores: list[Store] = []

    def make(topics: list[dict[str, Any]] = TOPICS) -> tuple[httpx.AsyncClient, Store]:
        settings = load_settings(
            None,
            env={},
            registry=registry,
            validate_urls=False,
            state_dir=tmp_path / f"state{len(stores)}",
            selfservice={
                "enabled": True,
                "public_url": "https://alerts.example.org",
                "channels": ["ntfy"],
            },
            topics=topics,
        )
        store = Store(settings.db_path)
        stores.append(store)
        service = SelfService(settings, store, registry)
        app = attach(create_app(settings=settings, store=store, routes=routes()), service)
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://alerts.example.org"), store

    yield make
    for store in stores:
        store.close()


async def test_api_topics_for_a_hromada(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        answer = await client.get("/api/topics", params={"region": "ua:706", "lang": "en"})
    assert answer.status_code == 200
    assert BOT_TOKEN not in answer.text and "AAbot" not in answer.text
    data = answer.json()
    assert data["region"] == {
        "code": "ua:706",
        "name": "Irpin and Irpinska hromada",
        "level": "hromada",
        "oblast": "Kyiv Oblast",
    }
    by_topic = {tp["topic"]: tp for tp in data["topics"]}
    assert set(by_topic) == {"places", "kyiv"}
    ntfy, telegram = by_topic["places"], by_topic["kyiv"]
    assert (ntfy["place"], ntfy["service"], ntfy["link"]) == (
        "ua:706",
        "ntfy",
        "https://ntfy.example.org/alerts-ua-706",
    )
    # Irpin lies in Kyiv oblast: the Kyiv channel carries its oblast's alerts
    assert (telegram["place"], telegram["place_name"], telegram["service"], telegram["link"]) == (
        "UA-32",
        "Kyiv Oblast",
        "telegram",
        "https://t.me/kyiv_alerts",
    )
    for tp in (ntfy, telegram):
        svg = tp["qr_svg"]
        assert svg.startswith("<svg") and svg.endswith("</svg>") and "<path" in svg
        assert f"<title>QR code: {tp['link']}</title>" in svg
        assert "<script" not in svg and "style=" not in svg  # the page's CSP allows neither
    assert ntfy["qr_svg"] != telegram["qr_svg"]


async def test_api_topics_private_chats_are_never_shown(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        answer = await client.get("/api/topics", params={"region": "UA-46"})
    assert answer.status_code == 200
    assert [tp["topic"] for tp in answer.json()["topics"]] == ["places"]
    assert "1001234567890" not in answer.text and BOT_TOKEN not in answer.text


async def test_api_topics_refusals(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        unknown = await client.get("/api/topics", params={"region": "ua:999999", "lang": "en"})
        missing = await client.get("/api/topics")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "unknown_region",
        "message": "Unknown region: ua:999999.",
        "field": "region",
    }
    assert missing.status_code == 400 and missing.json()["error"] == "unknown_region"


async def test_no_confirmation_no_rate_limit_nothing_stored(make_client: Callable[..., Any]) -> None:
    client, store = make_client()
    async with client:
        answers = [await client.get("/api/topics", params={"region": "ua:706"}) for _ in range(60)]
        page = await client.get("/topics", params={"region": "ua:706"})
    assert {a.status_code for a in answers} == {200} and page.status_code == 200
    assert store.subscribers(status=None) == []


async def test_page_shows_link_and_qr_without_javascript(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        page = await client.get("/topics", params={"region": "ua:706", "lang": "en"})
    assert page.status_code == 200
    html = page.text
    assert "Follow without giving us any personal data" in html
    assert '<a href="https://ntfy.example.org/alerts-ua-706"' in html
    assert '<a href="https://t.me/kyiv_alerts"' in html
    assert len(re.findall(r"<svg[^>]*class=\"qr\"", html)) == 2  # one QR per topic, inline
    assert "Shared channel: Kyiv Oblast" in html  # the Kyiv channel is the oblast's
    assert BOT_TOKEN not in html
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_page_search_then_place(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        search = await client.get("/topics", params={"q": "Ірпінь", "lang": "uk"})
        found = re.findall(r'href="(/topics\?region=[^"&]+)&amp;lang=uk"', search.text)
        assert "/topics?region=ua%3A706" in found
        place = await client.get(found[found.index("/topics?region=ua%3A706")] + "&lang=uk")
        unknown = await client.get("/topics", params={"region": "nowhere"})
    assert place.status_code == 200 and "https://ntfy.example.org/alerts-ua-706" in place.text
    assert unknown.status_code == 404 and "nowhere" in unknown.text


async def test_subscription_page_links_places_to_their_topics(make_client: Callable[..., Any]) -> None:
    client, _ = make_client()
    async with client:
        index = await client.get("/", params={"q": "Ірпінь", "lang": "en"})
    assert 'href="/topics?lang=en"' in index.text
    assert 'href="/topics?region=ua%3A706&amp;lang=en"' in index.text
    bare, _ = make_client(topics=[])
    async with bare:
        index = await bare.get("/", params={"q": "Ірпінь", "lang": "en"})
        none = await bare.get("/api/topics", params={"region": "ua:706"})
    assert "/topics" not in index.text
    assert none.status_code == 200 and none.json()["topics"] == []
