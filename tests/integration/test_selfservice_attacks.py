"""Issue 15, items 4–10: each finding of the outside attack, replayed against the real app and store.

The app is :func:`alertd.web.create_app` with the self-service routes over a real
SQLite store; channel templates point at the local JSON sink (``json://…/tg/{chat_id}``
and so on), so confirmation codes and notices really go through Apprise.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.sinks import JsonSink

from alertd import channels
from alertd.config import load_settings
from alertd.core.regions import RegionRegistry
from alertd.core.render import validate_templates
from alertd.logs import line as log_line
from alertd.store.sqlite import Store
from alertd.web.selfservice import SelfService, attach, routes
from alertd.web.selfservice.pages import PLAIN_COOKIE, SECURE_COOKIE
from alertd.web.selfservice.safety import (
    build_channel,
    canonical_destination,
    client_address,
    client_key,
    csrf_token,
    issue_nonce,
)
from alertd.web.selfservice.service import MIN_PENDING_LIFE, pending_life
from alertd.web.server import create_app

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = "admin-token-0123456789abcdef"


class Env:
    def __init__(self, app: Any, service: SelfService, store: Store, sink: JsonSink) -> None:
        self.app, self.service, self.store, self.sink = app, service, store, sink

    def client(self, address: str = "198.51.100.7", **kw: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        base = self.service.public_url or "http://testserver"
        return httpx.AsyncClient(transport=transport, base_url=base, **kw)


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


@pytest.fixture
async def make_env(
    tmp_path: Path, registry: RegionRegistry, json_sink: JsonSink
) -> AsyncIterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(**selfservice: Any) -> Env:
        sink = json_sink
        cfg: dict[str, Any] = {
            "enabled": True,
            "public_url": "https://alerts.example.org",
            "channels": ["ntfy", "telegram", "email", "sms", "apprise"],
            "templates": {
                "ntfy": sink.url("/ntfy/{topic}"),
                "telegram": sink.url("/tg/{chat_id}"),
                "email": sink.url("/mail/{email}"),
                "sms": sink.url("/sms/{phone}"),
            },
            "allowed_schemes": ["json"],
            "allow_private_targets": True,
            "admin_token": ADMIN,
        }
        cfg.update(selfservice)
        settings = load_settings(
            None,
            env={},
            registry=registry,
            state_dir=tmp_path / f"state{len(made)}",
            selfservice=cfg,
            delivery={"timeout": 5},
        )
        store = Store(settings.db_path)
        service = SelfService(settings, store, registry, clock=lambda: T0)
        app = attach(create_app(settings=settings, store=store, routes=routes()), service)
        env = Env(app, service, store, sink)
        made.append(env)
        return env

    yield make
    for env in made:
        await env.service.aclose()
        env.store.close()


def sub(kind: str, value: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "regions": ["UA-32"],
        "kinds": ["air_raid"],
        "language": "en",
        "channel": {"kind": kind, "value": value},
    }
    data.update(over)
    return data


async def confirm(env: Env, http: httpx.AsyncClient, sub_id: str, path: str) -> str:
    """Confirm with the code the sink got on ``path``; returns the management token."""
    message = env.sink.wait_for(1, path=path)[-1].message
    code = re.search(r"\b([0-9]{6})\b", message)
    assert code, message
    ok = await http.post("/api/subscriptions/confirm", json={"id": sub_id, "code": code.group(1)})
    assert ok.status_code == 200, ok.text
    return str(ok.json()["manage_url"].rsplit("/", 1)[1])


# -- item 4: the pending cap ------------------------------------------------------------------------


async def test_item4_pending_limit_counts_an_ipv6_slash64_as_one_client(make_env: Callable[..., Env]) -> None:
    env = make_env(pending_per_prefix=2)
    answers = []
    for n, address in enumerate(["2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:aaaa::9"]):
        async with env.client(address) as http:
            answers.append(await http.post("/api/subscriptions", json=sub("apprise", env.sink.url(f"/p{n}"))))
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["error"] == "too_many_pending_client"
    async with env.client("2001:db8:1:3::1") as http:  # the neighbouring /64 is someone else
        assert (
            await http.post("/api/subscriptions", json=sub("apprise", env.sink.url("/q")))
        ).status_code == 202
    assert client_key("2001:db8:1:2:aaaa::9") == "2001:db8:1:2::/64"
    assert client_key("198.51.100.7") == "198.51.100.7/32"
    assert client_key("::ffff:198.51.100.7") == "198.51.100.7/32"
    assert client_key("2001:db8::1", v6_prefix=48) == "2001:db8::/48"


async def test_item4_unconfirmed_rows_live_shorter_as_the_cap_nears(make_env: Callable[..., Env]) -> None:
    env = make_env(max_pending=4, pending_ttl=1800)
    lives = []
    for n in range(4):
        async with env.client(f"198.51.100.{n + 1}") as http:
            answer = await http.post("/api/subscriptions", json=sub("apprise", env.sink.url(f"/l{n}")))
            assert answer.status_code == 202, answer.text
            lives.append((datetime.fromisoformat(answer.json()["expires_at"]) - T0).total_seconds())
    assert lives[0] == lives[1] == lives[2] == 1800  # up to half full: the whole life
    assert lives[3] == 900  # three of four taken: half the life
    assert pending_life(1800, 499, 500) == MIN_PENDING_LIFE  # never below two minutes


def test_item4_trusted_proxy_hops_pick_the_entry_your_proxy_wrote() -> None:
    headers = httpx.Headers({"x-forwarded-for": "6.6.6.6, 198.51.100.9, 203.0.113.5"})
    peer = ("10.0.0.2", 5555)
    assert client_address(peer, headers, hops=0) == "10.0.0.2"  # no proxy: the header is ignored
    assert client_address(peer, headers, hops=1) == "203.0.113.5"
    assert client_address(peer, headers, hops=2) == "198.51.100.9"  # CDN + nginx
    assert client_address(peer, headers, hops=5) == "10.0.0.2"  # fewer entries than proxies: the peer
    assert client_address(peer, httpx.Headers({"x-forwarded-for": "junk"}), hops=1) == "10.0.0.2"


# -- item 5: one destination, however spelt ---------------------------------------------------------


async def test_item5_per_destination_limit_holds_across_spellings(make_env: Callable[..., Env]) -> None:
    env = make_env(per_destination_per_day=3)
    spellings = [
        "Olena.K@Example.org",
        "olena.k+alerts@example.org",
        "OLENA.K+x@EXAMPLE.ORG",
        "olena.k@example.org",
    ]
    codes = []
    for n, address in enumerate(spellings):
        async with env.client(f"198.51.100.{n + 10}") as http:
            codes.append(await http.post("/api/subscriptions", json=sub("email", address)))
    assert [c.status_code for c in codes] == [202, 202, 202, 429]
    assert codes[3].json()["error"] == "rate_destination"
    assert canonical_destination("telegram", "@Olena_K") == canonical_destination("telegram", "@olena_k")
    assert canonical_destination("sms", "+380 (50) 123-45-67") == canonical_destination(
        "sms", "00380501234567"
    )
    assert canonical_destination("sms", "+380501234567") == "sms:+380501234567"


# -- item 6: management links and destructive changes ---------------------------------------------


async def test_item6_no_management_link_where_others_can_read(make_env: Callable[..., Env]) -> None:
    env = make_env()
    footers = {}
    for n, (kind, value, path) in enumerate(
        [
            ("ntfy", "alerts-olena-7f3k2", "/ntfy/alerts-olena-7f3k2"),
            ("telegram", "-1001234567890", "/tg/-1001234567890"),
            ("telegram", "@kyiv_alerts_channel", "/tg/@kyiv_alerts_channel"),
            ("telegram", "123456789", "/tg/123456789"),
            ("email", "olena@example.org", "/mail/olena@example.org"),
        ]
    ):
        async with env.client(f"198.51.100.{n + 20}") as http:
            created = await http.post("/api/subscriptions", json=sub(kind, value))
            assert created.status_code == 202, created.text
            token = await confirm(env, http, created.json()["id"], path)
        name = env.service.web.by_token(token).subscriber
        footers[(kind, value)] = env.service.footer_for(name, "en")
    # nor a direct confirmation link (it names the subscription and leads to its management page)
    assert "/confirm?id=" not in env.sink.received("/ntfy/alerts-olena-7f3k2")[0].message
    assert "/confirm?id=" not in env.sink.received("/tg/@kyiv_alerts_channel")[0].message
    assert "/confirm?id=" in env.sink.received("/tg/123456789")[0].message
    assert footers[("ntfy", "alerts-olena-7f3k2")] is None
    assert footers[("telegram", "-1001234567890")] is None
    assert footers[("telegram", "@kyiv_alerts_channel")] is None
    assert footers[("telegram", "123456789")].startswith("Manage or leave: https://alerts.example.org/s/")
    assert footers[("email", "olena@example.org")].startswith(
        "Manage or leave: https://alerts.example.org/s/"
    )


async def test_item6_destructive_changes_are_told_to_the_resident(make_env: Callable[..., Env]) -> None:
    env = make_env()
    path = "/tg/123456789"
    async with env.client() as http:
        created = await http.post("/api/subscriptions", json=sub("telegram", "123456789"))
        token = await confirm(env, http, created.json()["id"], path)
    async with env.client("203.0.113.66") as stranger:  # whoever holds the link
        assert (await stranger.patch(f"/api/manage/{token}", json={"kinds": ["missiles"]})).status_code == 200
        await until(lambda: len(env.sink.received(path)) >= 2)
        assert (await stranger.delete(f"/api/manage/{token}")).status_code == 200
        await until(lambda: len(env.sink.received(path)) >= 3)
    titles = [r.title for r in env.sink.received(path)]
    assert titles[1:] == ["Subscription changed", "Subscription cancelled"]
    assert "subscribe again at https://alerts.example.org" in env.sink.received(path)[2].message


async def test_item6_short_topics_are_refused(make_env: Callable[..., Env]) -> None:
    env = make_env(min_topic_length=10)
    async with env.client() as http:
        short = await http.post("/api/subscriptions", json=sub("ntfy", "a"))
        nine = await http.post("/api/subscriptions", json=sub("ntfy", "abcdefghi"))
    assert short.status_code == nine.status_code == 400
    assert short.json()["error"] == nine.json()["error"] == "short_topic"
    assert "10" in nine.json()["message"]


# -- item 7: masked destinations -------------------------------------------------------------------


async def test_item7_destinations_are_masked_in_logs_admin_list_and_by_the_channels_rule(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env()
    topic, address, hook = "alerts-olena-7f3k2", "olena.k@example.org", "/hooks/secret-token-123"
    caplog.set_level(logging.INFO)
    async with env.client() as http:
        for n, (kind, value) in enumerate(
            [("ntfy", topic), ("email", address), ("apprise", env.sink.url(hook))]
        ):
            async with env.client(f"198.51.100.{n + 40}") as visitor:
                assert (await visitor.post("/api/subscriptions", json=sub(kind, value))).status_code == 202
        listed = await http.get("/api/admin/subscribers", headers={"Authorization": f"Bearer {ADMIN}"})
    shown = listed.text + caplog.text
    for secret in (topic, address, "secret-token-123", "olena.k"):
        assert secret not in shown, secret
    channels_shown = sorted(s["channel"] for s in listed.json()["subscribers"])
    assert channels_shown == sorted(["al…", "o***@example.org", f"json://127.0.0.1:{env.sink.port}/ho…/se…"])
    # the one rule, as logs and the CLI use it for any channel URL
    assert channels.mask(f"ntfys://ntfy.sh/{topic}") == "ntfys://ntfy.sh/al…"
    assert channels.mask(env.sink.url(f"/mail/{address}")).endswith("/ma…/o***@example.org")


# -- item 8: parse failures are 400 ----------------------------------------------------------------


async def test_item8_deep_nesting_and_other_parse_failures_are_400_never_500(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env()
    bodies = [b"[" * 16384, b'{"a":' * 3000, b"1" * 5000, b"\xff\xfe", b'{"regions": "' + b"\\ud800" + b'"}']
    async with env.client() as http:
        for raw in bodies:
            answer = await http.post(
                "/api/subscriptions", content=raw, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 400, (raw[:20], answer.status_code)
            assert answer.json()["error"] in ("bad_json", "no_regions")  # a lone surrogate parses
        form = await http.post(
            "/subscribe",
            content=b"%ff%fe" * 10,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code in (400, 403)
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


# -- item 9: CSRF -----------------------------------------------------------------------------------


async def test_item9_a_client_chosen_nonce_is_never_signed(make_env: Callable[..., Env]) -> None:
    env = make_env()
    chosen = "attacker-chosen-nonce-0123456789"
    async with env.client() as http:
        http.cookies.set(SECURE_COOKIE, chosen, domain="alerts.example.org")
        page = await http.get("/")
        issued = page.cookies.get(SECURE_COOKIE)
        assert issued and issued != chosen  # replaced by a server-issued one
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token and token.group(1) != csrf_token(env.service.web.secret(), chosen)
        assert "Secure" in page.headers["set-cookie"] and "Path=/" in page.headers["set-cookie"]
        assert "Domain" not in page.headers["set-cookie"]
        # the old attack: the token the page showed while the chosen nonce was presented, posted
        # with that nonce planted in the victim's cookie jar
        http.cookies.clear()
        http.cookies.set(SECURE_COOKIE, chosen, domain="alerts.example.org")
        forged = await http.post(
            "/subscribe",
            data={
                "csrf": token.group(1),
                "regions": "UA-32",
                "channel": "ntfy",
                "value": "x" * 12,
            },
        )
        assert forged.status_code == 403
    # over plain http (a test set-up) the cookie cannot be __Host-
    plain = make_env(public_url="http://alerts.example.org")
    async with plain.client() as http:
        assert PLAIN_COOKIE in (await http.get("/")).cookies
    assert issue_nonce(b"k") != issue_nonce(b"k")


async def test_item9_cross_site_requests_are_refused(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        created = await http.post("/api/subscriptions", json=sub("telegram", "123456789"))
        token = await confirm(env, http, created.json()["id"], "/tg/123456789")
        refused = [
            await http.delete(f"/api/manage/{token}", headers={"Origin": "https://evil.example"}),
            await http.delete(f"/api/manage/{token}", headers={"Sec-Fetch-Site": "cross-site"}),
            await http.post(
                "/api/subscriptions", json=sub("ntfy", "x" * 12), headers={"Sec-Fetch-Site": "same-site"}
            ),
            await http.post(
                "/subscribe",
                data={"regions": "UA-32"},
                headers={"Origin": "https://alerts.example.org.evil.example"},
            ),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert refused[0].json()["error"] == "cross_origin"
        # the page's own posts: under Referrer-Policy no-referrer browsers send Origin: null
        own = await http.patch(
            f"/api/manage/{token}",
            json={"kinds": ["air_raid"]},
            headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        )
        assert own.status_code == 200, own.text
        same = await http.delete(
            f"/api/manage/{token}",
            headers={"Origin": "https://alerts.example.org", "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200


# -- item 10: templates, digits, repeated parameters -----------------------------------------------


def test_item10_operator_templates_have_a_budget_also_in_check() -> None:
    problems = validate_templates(
        {
            "started.uk": "{{ 'a' * 100000000 }}",
            "ended.uk": "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}x",
            "started.en": "{% for a in range(99999) %}{{ region }} {% endfor %}",
            "ended.en": "{{ '%0100000000d' | format(1) }}",
            "updated.en": "Alert in {{ region }} at {{ time }}",
        }
    )
    assert len(problems) == 4, problems
    assert all("not allowed in a sandboxed template" in p for p in problems)
    assert not any("updated.en" in p for p in problems)


def test_item10_chat_ids_take_ascii_digits_only(make_env: Callable[..., Env]) -> None:
    from alertd.web.selfservice.safety import Refusal

    cfg = load_settings(
        None, env={}, selfservice={"channels": ["telegram"], "templates": {"telegram": "json://h/{chat_id}"}}
    ).selfservice
    for value in ("١٢٣٤٥٦٧٨٩", "１２３４５６７８９", "-١٠٠١٢٣٤٥"):  # Arabic-Indic and full-width digits
        with pytest.raises(Refusal) as refused:
            build_channel(cfg, "telegram", value)
        assert refused.value.key == "bad_chat_id"
    assert build_channel(cfg, "telegram", "123456789").url == "json://h/123456789"


async def test_item10_repeated_region_parameters_are_deduplicated_and_capped(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(max_regions=10)
    codes = [
        "UA-32",
        "UA-30",
        "UA-46",
        "UA-63",
        "UA-51",
        "UA-12",
        "UA-14",
        "UA-21",
        "UA-26",
        "UA-35",
        "UA-48",
    ]
    query = "&".join(["regions=UA-32"] * 1500 + [f"regions={c}" for c in codes])
    async with env.client() as http:
        page = await http.get("/?" + query)
    assert page.status_code == 200
    assert page.text.count('value="UA-32"') == 1
    assert 'value="UA-48"' not in page.text  # the eleventh place is past the cap
    assert len(page.content) < 40_000


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def test_item10_operator_templates_render_off_the_event_loop(
    tmp_path: Path, registry: RegionRegistry, json_sink: JsonSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from alertd.core import render as render_module
    from alertd.core.model import AlertEvent, AlertKind, EventStatus
    from alertd.core.tracker import StepResult, TrackerState, event_id
    from alertd.run.dispatch import Dispatcher
    from alertd.store.sqlite import OutboxRow

    threads: list[str] = []
    real_render = render_module.render

    def recording_render(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(render_module, "render", recording_render)
    settings = load_settings(
        None,
        env={},
        registry=registry,
        state_dir=tmp_path / "state",
        templates={"started.en": "Alert: {{ region }} {{ time }}"},
    )
    store = Store(settings.db_path)
    url = json_sink.url("/templated")
    event = AlertEvent(
        id=event_id("UA-32", AlertKind.AIR_RAID, T0, EventStatus.STARTED),
        source="test",
        kind=AlertKind.AIR_RAID,
        status=EventStatus.STARTED,
        region=registry.get("UA-32"),
        started_at=T0,
        observed_at=T0,
    )
    step = StepResult(
        state=TrackerState(), events=[event], notes=[], changed_keys=frozenset(), source_changed=False
    )
    store.commit_step("test", step, outbox_for=lambda ev: [OutboxRow(ev.id, "r", url, "en")], now=T0)
    dispatcher = Dispatcher(store, settings, clock=lambda: T0)
    try:
        await dispatcher.drain(timeout=20)
    finally:
        dispatcher.close()
        store.close()
    assert json_sink.received("/templated")[0].title.startswith("Alert: ")
    assert threads and threading.main_thread().name not in threads, threads


async def test_refusals_cannot_flood_the_log(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of refused requests must not drown (or get journald to drop) the alert lines."""
    from alertd.web.selfservice.service import RefusalLog

    env = make_env()
    caplog.set_level(logging.INFO)
    bad = sub("ntfy", "alerts-olena-7f3k2", regions=["nowhere"])
    async with env.client("198.51.100.77") as noisy, env.client("198.51.100.78") as other:
        for _ in range(20):
            assert (await noisy.post("/api/subscriptions", json=bad)).status_code == 400
        assert (await other.post("/api/subscriptions", json=bad)).status_code == 400
    lines = [log_line(r) for r in caplog.records if r.getMessage() == "subscription refused"]
    assert sum("client=198.51.100.77/32" in line for line in lines) == 5
    assert sum("client=198.51.100.78/32" in line for line in lines) == 1

    now = [0.0]
    held = RefusalLog(burst=2, window=60, clock=lambda: now[0])
    assert [held.admit("c")[0] for _ in range(5)] == [True, True, False, False, False]
    now[0] = 61
    assert held.admit("c") == (True, 3)  # the next window's first line says what was held back
