"""Self-service API: the whole lifecycle and every refusal, over HTTP against the real app and store.

The app is :func:`alertd.web.create_app` with the self-service routes, a real
SQLite store in ``tmp_path`` and httpx's ASGI transport (same event loop as the
store, as in the daemon). Confirmation codes really go through Apprise to the
local JSON sink. Every refusal is checked for its status code *and* its
localized message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.sinks import JsonSink

from alertd.config import Settings, load_settings
from alertd.core.regions import RegionRegistry
from alertd.errors import ConfigError
from alertd.logs import line as log_line
from alertd.store.sqlite import Store
from alertd.web.selfservice import SelfService, attach, routes
from alertd.web.selfservice.i18n import t
from alertd.web.selfservice.safety import is_forbidden_address
from alertd.web.server import create_app

IRPIN = "ua:706"
ADMIN = "admin-token-0123456789abcdef"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Env:
    def __init__(self, app: Any, service: SelfService, store: Store, clock: Clock, sink: JsonSink) -> None:
        self.app, self.service, self.store, self.clock, self.sink = app, service, store, clock, sink

    def client(self, address: str = "198.51.100.7", **kw: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://alerts.example.org", **kw)


@pytest.fixture
async def make_env(
    tmp_path: Path, registry: RegionRegistry, json_sink: JsonSink
) -> AsyncIterator[Callable[..., Env]]:
    stores: list[Store] = []

    def make(**selfservice: Any) -> Env:
        cfg: dict[str, Any] = {
            "enabled": True,
            "public_url": "https://alerts.example.org",
            "channels": ["ntfy", "apprise"],
            "allowed_schemes": ["json"],
            "allow_private_targets": True,
            "admin_token": ADMIN,
        }
        cfg.update(selfservice)
        settings = load_settings(
            None,
            env={},
            registry=registry,
            state_dir=tmp_path / f"state{len(stores)}",
            selfservice=cfg,
            delivery={"timeout": 5},
        )
        store = Store(settings.db_path)
        stores.append(store)
        clock = Clock()
        service = SelfService(settings, store, registry, clock=clock)
        app = attach(create_app(settings=settings, store=store, routes=routes()), service)
        return Env(app, service, store, clock, json_sink)

    yield make
    for store in stores:
        store.close()


def body(env: Env, path: str = "/r1", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "regions": [IRPIN],
        "kinds": ["air_raid"],
        "language": "uk",
        "channel": {"kind": "apprise", "value": env.sink.url(path)},
    }
    data.update(over)
    return data


def code_from(env: Env, path: str = "/r1") -> str:
    message = env.sink.wait_for(1, path=path)[-1].message
    match = re.search(r"\b(\d{6})\b", message)
    assert match, message
    return match.group(1)


async def arrived(sink: JsonSink, count: int, path: str, timeout: float = 15.0) -> list[Any]:
    """Wait for ``count`` posts on ``path`` without blocking the loop (background sends run on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(sink.received(path)) < count:
        assert loop.time() < deadline, f"expected {count} post(s) on {path}, got {len(sink.received(path))}"
        await asyncio.sleep(0.05)
    return sink.received(path)


def assert_refused(response: httpx.Response, status: int, key: str, lang: str = "uk", **params: Any) -> None:
    assert response.status_code == status, response.text
    data = response.json()
    assert data["error"] == key
    assert data["message"] == t(key, lang, **params)


# -- the whole lifecycle --------------------------------------------------------------------------


async def test_lifecycle_create_confirm_show_change_delete(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        regions = (await http.get("/api/regions", params={"q": "Ірпінь"})).json()["regions"]
        assert regions[0]["code"] == IRPIN
        assert "Ірпінь" in regions[0]["name"]
        english = (await http.get("/api/regions", params={"q": "Irpin", "lang": "en"})).json()["regions"]
        assert english[0]["code"] == IRPIN and english[0]["name"].startswith("Irpin")
        channels = (await http.get("/api/channels")).json()
        assert [c["kind"] for c in channels["channels"]] == ["ntfy", "apprise"]
        assert channels["allowed_schemes"] == ["json"]

        version = env.store.subscribers_version()
        created = await http.post("/api/subscriptions", json=body(env))
        assert created.status_code == 202, created.text
        sub = created.json()
        assert sub["status"] == "pending"
        assert env.store.subscribers_version() > version
        # pending: stored, not routed
        assert env.store.subscribers() == []
        [pending] = env.store.subscribers(status="pending")
        assert pending.origin == "web" and pending.regions == (IRPIN,)

        # the code came through the very channel
        message = env.sink.wait_for(1, path="/r1")[0].message
        code = code_from(env)
        # a raw URL may post where others read: the code only, no link naming the subscription
        assert code in message and "/confirm?id=" not in message

        wrong = "000000" if code != "000000" else "111111"
        bad = await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": wrong})
        assert_refused(bad, 400, "wrong_code", left=4)

        ok = await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code})
        assert ok.status_code == 200, ok.text
        manage_url = ok.json()["manage_url"]
        token = manage_url.rsplit("/", 1)[1]
        assert manage_url.startswith("https://alerts.example.org/s/") and len(token) >= 32
        [active] = env.store.subscribers()
        assert active.status == "active" and active.urls == (env.sink.url("/r1"),)
        # a raw URL may post anywhere others read: its messages never carry the management link
        assert env.service.footer_for(active.name, "uk") is None

        again = await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code})
        assert_refused(again, 409, "already_confirmed")

        shown = (await http.get(f"/api/manage/{token}")).json()
        assert shown["status"] == "active"
        assert shown["regions"][0]["code"] == IRPIN
        assert shown["channel"]["kind"] == "apprise"
        assert (
            shown["channel"]["destination"] == f"json://127.0.0.1:{env.sink.port}/…"
        )  # no path: tokens live there

        changed = await http.patch(
            f"/api/manage/{token}",
            json={"kinds": ["air_raid", "missiles"], "language": "en", "regions": ["UA-32"]},
        )
        assert changed.status_code == 200, changed.text
        [active] = env.store.subscribers()
        assert (
            active.kinds == ("air_raid", "missiles")
            and active.language == "en"
            and active.regions == ("UA-32",)
        )

        # the change is announced on the resident's own channel (in the old language)
        changed_notice = (await arrived(env.sink, 2, "/r1"))[1]
        assert changed_notice.title == t("changed_notice_title", "uk")

        bad_patch = await http.patch(f"/api/manage/{token}", json={"kinds": ["tea"]})
        assert_refused(bad_patch, 400, "unknown_kind", kind="tea")

        gone = await http.delete(f"/api/manage/{token}")
        assert gone.status_code == 200 and gone.json() == {"status": "deleted"}
        deleted_notice = (await arrived(env.sink, 3, "/r1"))[2]
        assert deleted_notice.title == t("deleted_notice_title", "en")
        assert "https://alerts.example.org" in deleted_notice.message
        assert env.store.subscribers(status=None) == []
        missing = await http.get(f"/api/manage/{token}", headers={"Accept-Language": "en-GB,en;q=0.8"})
        assert_refused(missing, 404, "not_found", "en")
        assert env.service.footer_for(active.name, "uk") is None


async def test_unguessable_and_malformed_tokens_are_not_found(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        for token in ("x", "a" * 32, "../../etc/passwd"):
            response = await http.get(f"/api/manage/{token}")
            assert response.status_code == 404


# -- channel refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "json://127.0.0.1:9/x",
        "json://localhost:9/x",
        "json://10.1.2.3/x",
        "json://192.168.0.10/x",
        "json://172.16.5.5/x",
        "json://100.64.0.1/x",
        "json://169.254.169.254/latest/meta-data",
        "json://[::1]/x",
        "json://[fd00:ec2::254]/x",
        "json://[fe80::1]/x",
        "json://[::ffff:127.0.0.1]/x",
        "json://224.0.0.1/x",
        "json://0.0.0.0/x",
        "json://240.0.0.1/x",
        "json://2130706433/x",
    ],
)
async def test_private_and_metadata_targets_are_refused(make_env: Callable[..., Env], url: str) -> None:
    env = make_env(allow_private_targets=False)
    async with env.client() as http:
        data = body(env)
        data["channel"] = {"kind": "apprise", "value": url}
        response = await http.post("/api/subscriptions", json=data)
    assert_refused(response, 400, "private_target")
    assert env.store.subscribers(status=None) == []


def test_forbidden_address_classification() -> None:
    for address in (
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "::1",
        "224.0.0.1",
        "::ffff:10.0.0.1",
    ):
        assert is_forbidden_address(address), address
    for address in ("8.8.8.8", "2001:4860:4860::8888", "193.0.14.129"):
        assert not is_forbidden_address(address), address


async def test_disallowed_schemes_and_kinds_are_refused(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        for url, scheme in (("form://hooks.example.org/x", "form"), ("xml://hooks.example.org/x", "xml")):
            data = body(env)
            data["channel"] = {"kind": "apprise", "value": url}
            assert_refused(
                await http.post("/api/subscriptions", json=data), 400, "scheme_not_allowed", scheme=scheme
            )
        data = body(env, language="en")
        data["channel"] = {"kind": "sms", "value": "+380501234567"}
        assert_refused(await http.post("/api/subscriptions", json=data), 400, "channel_not_offered", "en")
        data["channel"] = {"kind": "ntfy", "value": "bad topic/../x"}
        assert_refused(await http.post("/api/subscriptions", json=data), 400, "bad_topic", "en")
        data["channel"] = {"kind": "apprise", "value": "not a url"}
        assert_refused(await http.post("/api/subscriptions", json=data), 400, "bad_url", "en")
    # by default nothing raw is accepted at all
    strict = make_env(channels=["ntfy"], allowed_schemes=[])
    async with strict.client() as http:
        assert_refused(await http.post("/api/subscriptions", json=body(strict)), 400, "channel_not_offered")
    assert env.sink.received() == []


async def test_validation_messages_are_localized(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        assert_refused(await http.post("/api/subscriptions", json=body(env, regions=[])), 400, "no_regions")
        assert_refused(
            await http.post("/api/subscriptions", json=body(env, regions=["ua:0"], language="en")),
            400,
            "unknown_region",
            "en",
            code="ua:0",
        )
        assert_refused(await http.post("/api/subscriptions", json=body(env, kinds=[])), 400, "no_kinds")
        assert_refused(
            await http.post(
                "/api/subscriptions", json=body(env, regions=[IRPIN] * 3 + [f"UA-{n}" for n in range(10, 30)])
            ),
            400,
            "too_many_regions",
            limit=10,
        )
        assert_refused(
            await http.post("/api/subscriptions?lang=en", json=body(env, language="fr")),
            400,
            "bad_language",
            "en",
        )
        assert_refused(await http.get("/api/regions", params={"q": "І"}), 400, "bad_query")
        # not JSON: refused before anything is parsed (a cross-site form cannot send application/json)
        form = await http.post("/api/subscriptions", data={"regions": IRPIN})
        assert_refused(form, 415, "json_required")
        broken = await http.post(
            "/api/subscriptions", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert_refused(broken, 400, "bad_json")


async def test_oversized_bodies_are_refused(make_env: Callable[..., Env]) -> None:
    env = make_env()
    huge = b'{"regions": ["' + b"x" * 20_000 + b'"]}'
    async with env.client() as http:
        declared = await http.post(
            "/api/subscriptions", content=huge, headers={"Content-Type": "application/json"}
        )
        assert_refused(declared, 413, "too_large", limit=16384)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
            for _ in range(20):
                yield b" " * 1000

        streamed = await http.post(
            "/api/subscriptions", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_refused(streamed, 413, "too_large", limit=16384)
    assert env.store.subscribers(status=None) == []


# -- rate limits and caps ---------------------------------------------------------------------------


async def test_rate_limit_per_client_address(make_env: Callable[..., Env]) -> None:
    env = make_env(per_client_per_hour=2)
    async with env.client("203.0.113.9") as http:
        for n in range(2):
            assert (await http.post("/api/subscriptions", json=body(env, f"/c{n}"))).status_code == 202
        assert_refused(await http.post("/api/subscriptions", json=body(env, "/c9")), 429, "rate_client")
    async with env.client("203.0.113.10") as other:  # another address is not affected
        assert (await other.post("/api/subscriptions", json=body(env, "/c9"))).status_code == 202
    env.clock.now += timedelta(hours=1, seconds=1)
    async with env.client("203.0.113.9") as http:
        assert (await http.post("/api/subscriptions", json=body(env, "/c8"))).status_code == 202


async def test_rate_limit_per_destination(make_env: Callable[..., Env]) -> None:
    env = make_env(per_destination_per_day=2)
    for n in range(2):
        async with env.client(f"203.0.113.{n + 1}") as http:
            assert (await http.post("/api/subscriptions", json=body(env, "/same"))).status_code == 202
    async with env.client("203.0.113.50") as http:
        refused = await http.post("/api/subscriptions", json=body(env, "/same", language="en"))
        assert_refused(refused, 429, "rate_destination", "en")
    assert len(env.sink.received(path="/same")) == 2  # the third code was never sent
    env.clock.now += timedelta(days=1, seconds=1)
    async with env.client("203.0.113.51") as http:
        assert (await http.post("/api/subscriptions", json=body(env, "/same"))).status_code == 202


async def test_cap_on_pending_subscriptions(make_env: Callable[..., Env]) -> None:
    env = make_env(max_pending=2, pending_ttl=600)
    async with env.client() as http:
        for n in range(2):
            assert (await http.post("/api/subscriptions", json=body(env, f"/p{n}"))).status_code == 202
        assert_refused(await http.post("/api/subscriptions", json=body(env, "/p2")), 503, "too_many_pending")
        env.clock.now += timedelta(seconds=601)  # the two expire and are purged
        assert (await http.post("/api/subscriptions", json=body(env, "/p3"))).status_code == 202
    assert len(env.store.subscribers(status="pending")) == 1


# -- codes --------------------------------------------------------------------------------------------


async def test_expired_code_is_refused(make_env: Callable[..., Env]) -> None:
    env = make_env(pending_ttl=600)
    async with env.client() as http:
        sub = (await http.post("/api/subscriptions", json=body(env))).json()
        code = code_from(env)
        env.clock.now += timedelta(seconds=601)
        late = await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code})
        assert_refused(late, 410, "expired")
        assert env.store.subscribers(status=None) == []
        assert_refused(
            await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code}),
            404,
            "not_found",
        )


async def test_wrong_codes_void_the_subscription(make_env: Callable[..., Env]) -> None:
    env = make_env(max_attempts=3)
    async with env.client() as http:
        sub = (await http.post("/api/subscriptions", json=body(env))).json()
        code = code_from(env)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        confirm = {"id": sub["id"], "code": wrong}
        assert_refused(await http.post("/api/subscriptions/confirm", json=confirm), 400, "wrong_code", left=2)
        assert_refused(await http.post("/api/subscriptions/confirm", json=confirm), 400, "wrong_code", left=1)
        assert_refused(await http.post("/api/subscriptions/confirm", json=confirm), 429, "too_many_attempts")
        right = await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code})
        assert_refused(right, 404, "not_found")
        assert_refused(
            await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": "12"}),
            400,
            "bad_code",
            length=6,
        )
    assert env.store.subscribers(status=None) == []


async def test_undeliverable_confirmation_is_refused_and_forgotten(make_env: Callable[..., Env]) -> None:
    env = make_env()
    env.sink.configure("/broken", status=500)
    async with env.client() as http:
        response = await http.post("/api/subscriptions", json=body(env, "/broken"))
    assert_refused(response, 502, "send_failed")
    assert env.store.subscribers(status=None) == []


# -- admin ----------------------------------------------------------------------------------------------


async def test_admin_endpoints_need_the_operator_token(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        sub = (await http.post("/api/subscriptions", json=body(env))).json()
        await http.post("/api/subscriptions/confirm", json={"id": sub["id"], "code": code_from(env)})

        assert_refused(await http.get("/api/admin/subscribers"), 401, "unauthorized")
        wrong = {"Authorization": "Bearer " + ADMIN[:-1] + "x"}
        assert_refused(await http.get("/api/admin/subscribers", headers=wrong), 401, "unauthorized")
        auth = {"Authorization": f"Bearer {ADMIN}"}
        listed = (await http.get("/api/admin/subscribers", headers=auth)).json()["subscribers"]
        assert [(s["origin"], s["status"]) for s in listed] == [("web", "active")]
        assert env.sink.url("/r1") not in str(listed)  # masked only
        name = listed[0]["name"]
        exported = (await http.get("/api/admin/export", headers=auth)).json()["subscribers"]
        assert exported[0]["urls"] == [env.sink.url("/r1")]
        assert (await http.post(f"/api/admin/subscribers/{name}/disable", headers=wrong)).status_code == 401
        disabled = await http.post(f"/api/admin/subscribers/{name}/disable", headers=auth)
        assert disabled.status_code == 200
        assert env.store.subscribers() == []  # no longer routed
        assert env.store.subscribers(status="disabled")[0].name == name
    off = make_env(admin_token=None)
    async with off.client() as http:
        assert_refused(
            await http.get("/api/admin/subscribers", headers={"Authorization": f"Bearer {ADMIN}"}),
            403,
            "admin_disabled",
        )


# -- the HTML form: CSRF -------------------------------------------------------------------------------


async def test_form_posts_need_the_csrf_token_and_cookie(make_env: Callable[..., Env]) -> None:
    env = make_env()
    form = {
        "lang": "en",
        "regions": IRPIN,
        "kinds": "air_raid",
        "language": "en",
        "channel": "apprise",
        "value": env.sink.url("/form"),
    }
    async with env.client() as http:
        page = await http.get("/?lang=en")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)

        missing = await http.post("/subscribe", data=form)
        assert missing.status_code == 403 and t("csrf", "en") in missing.text
        forged = await http.post("/subscribe", data={**form, "csrf": "0" * 64})
        assert forged.status_code == 403
        assert env.sink.received() == []

        ok = await http.post("/subscribe", data={**form, "csrf": token})
        assert ok.status_code == 303, ok.text
        assert ok.headers["location"].startswith("/confirm?id=")
    # another browser (no cookie) cannot reuse the token
    async with env.client() as stranger:
        assert (await stranger.post("/subscribe", data={**form, "csrf": token})).status_code == 403


async def test_form_errors_are_shown_in_the_page_language(make_env: Callable[..., Env]) -> None:
    env = make_env()
    async with env.client() as http:
        page = await http.get("/?lang=uk&q=Ірпінь")
        assert IRPIN in page.text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        response = await http.post(
            "/subscribe",
            data={
                "csrf": token,
                "lang": "uk",
                "kinds": "air_raid",
                "language": "uk",
                "channel": "apprise",
                "value": "x",
            },
        )
    assert response.status_code == 400
    assert t("no_regions", "uk") in response.text


# -- logs -------------------------------------------------------------------------------------------------


async def test_logs_mask_phone_numbers(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alertd")
    port = make_env().sink.port
    env = make_env(channels=["sms"], templates={"sms": f"json://127.0.0.1:{port}/sms/{{phone}}"})
    async with env.client("192.0.2.44") as http:
        data = body(env)
        data["channel"] = {"kind": "sms", "value": "+380 50 123 45 67"}
        response = await http.post("/api/subscriptions", json=data)
        assert response.status_code == 202, response.text
        assert response.json()["destination"] == "+38050…67"
    text = "\n".join(log_line(r) for r in caplog.records)
    assert "subscription created" in text and "+38050…67" in text and "client=192.0.2.44" in text
    assert "380501234567" not in text


def test_config_check_validates_templates(registry: RegionRegistry) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            None,
            env={},
            registry=registry,
            selfservice={
                "enabled": True,
                "public_url": "https://a.example.org",
                "channels": ["email", "telegram", "apprise"],
                "templates": {"email": "nosuchscheme://{email}", "telegram": "tgram://{bot_token}/{chat_id}"},
            },
        )
    text = str(err.value)
    assert "selfservice.templates.email: Apprise cannot load" in text
    assert "selfservice.templates.telegram: uses {bot_token}" in text
    assert "selfservice.allowed_schemes" in text
    settings: Settings = load_settings(
        None,
        env={},
        registry=registry,
        selfservice={
            "enabled": True,
            "public_url": "https://a.example.org",
            "channels": ["ntfy", "email", "sms"],
            "templates": {
                "email": "mailtos://user:pass@smtp.example.org?to={email}&from=alerts@example.org",
                "sms": "twilio://AC0123456789abcdef0123456789abcdef:token0123456789abcdef0123456789@+15551234567/{phone}",
            },
        },
    )
    assert settings.selfservice.template_for("ntfy") == "ntfys://ntfy.sh/{topic}"


def test_config_check_refuses_the_page_without_the_http_server(registry: RegionRegistry) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            None,
            env={},
            registry=registry,
            http={"enabled": False},
            selfservice={"enabled": True, "public_url": "https://a.example.org"},
        )
    assert "selfservice.enabled: the self-service page needs the HTTP server" in str(err.value)
