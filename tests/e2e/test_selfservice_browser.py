"""A resident subscribes on the real page in headless Chromium, confirms, and hears a start and an end.

The real daemon runs in-process (``run_app`` with HTTP on a pre-bound free port),
polling the local simulated upstream (alerts.in.ua API); the resident's channel
is a local ``json://`` sink (allowed by this test's config). A screenshot of each
page is kept under ``tmp_path`` and its path printed.

Needs Debian's ``chromium`` and the ``playwright`` Python package (its driver
only: never ``playwright install``). Without them the test skips with the
reason, except under CI (``$CI`` set), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from support.sinks import JsonSink

from alertd.core.regions import RegionRegistry
from alertd.devtools.simulate import Upstream
from alertd.run.app import run_app
from alertd.web.server import bind_socket

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "aiu-browser-test-token"
IRPIN_UID = "706"  # alerts.in.ua location uid of Irpin hromada (region ua:706)


def _need_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install playwright)")
    if not missing:
        return
    reason = "browser test needs " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + " — required under CI")
    pytest.skip(reason)


async def _until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_resident_subscribes_confirms_and_hears_start_and_end(
    tmp_path: Path, json_sink: JsonSink
) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    from alertd.config import load_settings

    registry = RegionRegistry.load()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    with Upstream(token=TOKEN, registry=registry) as upstream:
        settings = load_settings(
            None,
            env={},
            registry=registry,
            state_dir=tmp_path / "state",
            sources=[
                {
                    "name": "aiu",
                    "type": "alerts_in_ua",
                    "url": upstream.alerts_in_ua_url,
                    "token": TOKEN,
                    "interval": 1,
                    "timeout": 2,
                    "jitter": 0,
                }
            ],
            http={"enabled": True, "listen": f"127.0.0.1:{port}"},
            delivery={"retry_base": 0.2, "retry_max": 1, "timeout": 5},
            selfservice={
                "enabled": True,
                "public_url": base,
                "channels": ["ntfy", "apprise"],
                "allowed_schemes": ["json"],
                "allow_private_targets": True,  # the sink is on 127.0.0.1; never in production
            },
        )
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_app(settings, registry, stop=stop, http_socket=sock))
        try:
            async with httpx.AsyncClient(base_url=base) as http:

                async def healthy() -> None:
                    for _ in range(100):
                        try:
                            if (await http.get("/healthz")).status_code in (200, 503):
                                return
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.05)
                    raise AssertionError("the daemon's HTTP server did not come up")

                await healthy()
            # the first poll (a fresh install's baseline) has happened before the resident arrives
            await _until(lambda: upstream.requests(), what="the first poll")

            channel_url = json_sink.url("/resident")
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
                try:
                    page = await browser.new_page(viewport={"width": 400, "height": 900})

                    async def shot(name: str) -> None:
                        path = shots / f"{name}.png"
                        await page.screenshot(path=str(path), full_page=True)
                        print(f"screenshot: {path}")

                    await page.goto(base + "/?lang=uk")
                    assert await page.title() == "Сповіщення про тривоги"
                    await shot("01-form")

                    await page.fill("#q", "Ірпінь")
                    await page.click("#search-btn")
                    irpin = page.locator('input[name="regions"][value="ua:706"]')
                    await irpin.wait_for(timeout=10_000)
                    assert "Ірпінь" in await page.locator("#region-results").inner_text()
                    await irpin.check()
                    assert await page.locator('input[name="kinds"][value="air_raid"]').is_checked()
                    await page.check('input[name="language"][value="uk"]')
                    await page.check('input[name="channel"][value="apprise"]')
                    await page.fill("#value", channel_url)
                    await shot("02-filled")
                    await page.click("#subscribe-btn")

                    await page.wait_for_url(re.compile(r"/confirm\?"))
                    sent = await page.locator("#sent").inner_text()
                    assert "Ми надіслали код підтвердження" in sent
                    await shot("03-confirm")

                    received = await _until(
                        lambda: json_sink.received("/resident", delivered=True), what="the code"
                    )
                    code = re.search(r"\b(\d{6})\b", received[0].message).group(1)
                    await page.fill("#code", code)
                    await page.click("#confirm-btn")

                    await page.wait_for_url(re.compile(r"/s/[A-Za-z0-9_-]{32,}"))
                    manage_url = page.url.split("?", 1)[0]
                    assert "Підписку підтверджено" in await page.locator("#welcome").inner_text()
                    assert "Ірпінь" in await page.locator("#regions").inner_text()
                    assert await page.locator("#manage-link").inner_text() == manage_url
                    await shot("04-manage")
                finally:
                    await browser.close()

            # the local upstream raises an alert for Irpin: a start notice (no management link: see below)
            upstream.add_alert(IRPIN_UID)
            messages = await _until(
                lambda: (r := json_sink.received("/resident", delivered=True)) and len(r) >= 2 and r,
                what="the start notice",
            )
            start = messages[1]
            assert start.type == "failure", start.payload
            assert "Ірпін" in start.title + start.message
            # a raw URL may post where others read: the management link stays on the page only
            assert manage_url not in start.message and "Керувати" not in start.message

            upstream.clear_alert(IRPIN_UID)
            messages = await _until(
                lambda: (r := json_sink.received("/resident", delivered=True)) and len(r) >= 3 and r,
                what="the end notice",
            )
            end = messages[2]
            assert end.type == "success", end.payload
            assert manage_url not in end.message
            # Nothing more is due: the outbox holds nothing undelivered; once the daemon has
            # stopped cleanly nothing can follow, so three is all the resident ever gets.
            async with httpx.AsyncClient(base_url=base) as probe:
                for _ in range(300):
                    if (await probe.get("/healthz")).json()["outbox"]["oldest_pending"] is None:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the outbox did not drain")
        finally:
            stop.set()
            assert await asyncio.wait_for(daemon, 15) == 0
        assert len(json_sink.received("/resident")) == 3
    print(f"screenshots kept in {shots}")
