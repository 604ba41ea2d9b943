"""The connect-time guard (issue 15, item 2) and the visitors' own pool (item 1), against real sockets.

A loopback listener plays the internal service an attacker wants to reach; it
counts every TCP connection it accepts. The guard must keep that count at zero
whatever the resident's URL does: a name that resolves to a public address when
vetted and to loopback when used (the resolver seam plays the rebinding DNS
server), a redirect to loopback, a host hidden in ``?smtp=``. A server dripping
one byte every two seconds plays the slow channel of item 1.
"""

from __future__ import annotations

import asyncio
import http.server
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from alertd import channels
from alertd.channels.guard import (
    ForbiddenTarget,
    Guard,
    GuardExpired,
    guard_plugin,
    is_forbidden_address,
    query_problem,
)
from alertd.config import load_settings
from alertd.core.regions import RegionRegistry
from alertd.store.sqlite import Store
from alertd.web.selfservice import SelfService, attach, routes
from alertd.web.selfservice.visitors import Busy, VisitorWork
from alertd.web.server import create_app

PUBLIC = "93.184.216.34"  # a public address: only ever resolved to, never connected to


class Listener:
    """A loopback HTTP server that counts accepted connections and answers 200 (or a redirect)."""

    def __init__(self, redirect_to: str | None = None) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                owner.requests.append(self.path)
                if owner.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", owner.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                owner.accepted += 1
                return True

        self.redirect_to = redirect_to
        self.accepted = 0
        self.requests: list[str] = []
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Drip:
    """A TCP server that answers one byte every ``interval`` seconds and never finishes."""

    def __init__(self, interval: float = 2.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.interval = interval
        self.closed_by_peer = threading.Event()
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            payload = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
            conn.settimeout(self.interval)
            for byte in payload:
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                    data = conn.recv(65536)  # waits `interval`, notices the peer hanging up
                    if data == b"":
                        self.closed_by_peer.set()
                        return
                except TimeoutError:
                    continue
                except OSError:
                    self.closed_by_peer.set()
                    return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def drip() -> Iterator[Drip]:
    server = Drip()
    yield server
    server.close()


class RebindingDns:
    """The resolver seam as a rebinding DNS server: the first answer public, every later one loopback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host != self.name:
            return socket.getaddrinfo(host, port, *args, **kwargs)
        address = PUBLIC if not self.answers else "127.0.0.1"
        self.answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]


# -- item 2: the SSRF must-show -------------------------------------------------------------------


async def test_rebinding_name_passes_the_signup_check_but_never_reaches_loopback(
    tmp_path: Path, listener: Listener
) -> None:
    registry = RegionRegistry.load()
    settings = load_settings(
        None,
        env={},
        registry=registry,
        state_dir=tmp_path / "state",
        selfservice={
            "enabled": True,
            "public_url": "https://alerts.example.org",
            "channels": ["apprise"],
            "allowed_schemes": ["json"],
            "allow_private_targets": False,
        },
    )
    dns = RebindingDns("hooks.rebind.example")
    store = Store(settings.db_path)
    service = SelfService(settings, store, registry, resolver=dns)
    app = attach(create_app(settings=settings, store=store, routes=routes()), service)
    try:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://alerts.example.org") as http:
            answer = await http.post(
                "/api/subscriptions",
                json={
                    "regions": ["UA-32"],
                    "kinds": ["air_raid"],
                    "language": "en",
                    "channel": {"kind": "apprise", "value": f"json://hooks.rebind.example:{listener.port}/x"},
                },
            )
    finally:
        await service.aclose()
        store.close()
    # vetted as public at sign-up, rebound to loopback when Apprise connected: refused at connect
    assert dns.answers[0] == PUBLIC and "127.0.0.1" in dns.answers[1:], dns.answers
    assert answer.status_code == 502 and answer.json()["error"] == "send_failed", answer.text
    assert listener.accepted == 0 and listener.requests == []
    assert store_is_empty(settings.db_path)


def store_is_empty(db_path: Path) -> bool:
    store = Store(db_path)
    try:
        return store.subscribers(status=None) == []
    finally:
        store.close()


def test_redirect_to_loopback_is_refused_at_connect_even_when_followed(listener: Listener) -> None:
    """requests follows the 307 (redirects on): the second connect is checked and refused."""
    redirector = Listener(redirect_to=f"http://127.0.0.1:{listener.port}/internal")
    try:
        guard = Guard(permit=lambda ip, port: port == redirector.port)  # stands in for a public host
        with pytest.raises(requests.ConnectionError) as caught:
            guard.run(
                requests.post, f"http://127.0.0.1:{redirector.port}/hook", json={}, allow_redirects=True
            )
        assert isinstance(_root(caught.value), ForbiddenTarget)
        assert redirector.requests == ["/hook"]
        assert listener.accepted == 0
        assert guard.refused == ["127.0.0.1"]
    finally:
        redirector.close()


@pytest.mark.parametrize("redirects", ["off", "on"])
def test_apprise_redirect_to_loopback_never_arrives(listener: Listener, redirects: str) -> None:
    redirector = Listener(redirect_to=f"http://127.0.0.1:{listener.port}/internal")
    try:
        channel = channels.load(f"json://127.0.0.1:{redirector.port}/hook")
        if redirects == "off":
            guard_plugin(channel.plugin)  # what guarded sends do
        else:
            channel.plugin.redirects = True  # Apprise's default: the guard alone must hold
        guard = Guard(permit=lambda ip, port: port == redirector.port)
        result = guard.run(channels.send, channel, "t", "b", channels.INFO, "text")
        assert not result.ok  # a 307 is not a delivery
        assert redirector.requests == ["/hook"]
        assert listener.accepted == 0
        if redirects == "on":
            assert guard.refused == ["127.0.0.1"]
    finally:
        redirector.close()


def test_smtp_host_override_is_refused_by_the_allowlist_and_at_connect(listener: Listener) -> None:
    assert query_problem("mailto://u:p@mail.example.org?smtp=127.0.0.1&to=a@b.org") == "smtp"
    assert query_problem("xmpp://u:p@example.org?xmpp=127.0.0.1") == "xmpp"
    for key in ("rto", "cto", "method", "+X-Admin", "-token", "verify", "redirect"):
        assert query_problem(f"json://example.org/hook?{key}=1") == key
    assert query_problem("json://example.org/hook?+X-Token=1", ["+X-Token"]) is None
    assert query_problem("json://example.org/hook?format=text&overflow=split") is None
    # and if a host slipped through anyway, smtplib's connect is the guard's too
    with pytest.raises(ForbiddenTarget):
        Guard().run(smtplib.SMTP, "127.0.0.1", listener.port, timeout=2)
    assert listener.accepted == 0


def test_names_and_unix_sockets_are_checked_too(listener: Listener) -> None:
    guard = Guard()
    with pytest.raises(ForbiddenTarget):  # a name handed straight to connect() is resolved and checked
        guard.run(socket.create_connection, ("localhost", listener.port), 2)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with pytest.raises(ForbiddenTarget):
            guard.run(unix.connect, "/run/some.sock")
    finally:
        unix.close()
    assert listener.accepted == 0
    # outside a guard nothing changes: the daemon's own connections pass
    with socket.create_connection(("127.0.0.1", listener.port), 2):
        pass
    assert is_forbidden_address("::ffff:127.0.0.1") and is_forbidden_address("169.254.169.254")
    assert not is_forbidden_address(PUBLIC)


def _root(exc: BaseException) -> BaseException:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                inner = _root(arg)
                if isinstance(inner, ForbiddenTarget):
                    return inner
        current = current.__cause__ or current.__context__ or getattr(current, "reason", None)
    return seen[-1]


# -- item 1: the visitors' own pool --------------------------------------------------------------


def _drip_channel(drip: Drip) -> Any:
    # rto/cto as an attacker would set them (the allowlist refuses them at sign-up; the deadline
    # holds even if they got through)
    return channels.load(f"json://127.0.0.1:{drip.port}/hook?rto=3600&cto=3600")


async def test_slow_drip_send_is_cut_at_the_deadline_and_gives_its_thread_back(drip: Drip) -> None:
    work = VisitorWork(threads=1, per_client=1, send_deadline=1.0)
    try:
        ok, _ = await _expect_failed_send(work, "198.51.100.7/32", _drip_channel(drip))
        assert not ok
        assert drip.closed_by_peer.wait(10), "the dripping connection was not cut"
        assert work.inflight == 0
        # the one thread is free again: a lookup runs at once
        assert await work.resolve("198.51.100.7/32", "127.0.0.1") == ["127.0.0.1"]
    finally:
        work.close()


async def _expect_failed_send(work: VisitorWork, client: str, channel: Any) -> tuple[bool, str]:
    try:
        result = await work.send(
            client, channels.send, channel, "t", "b", channels.INFO, "text", allow_private=True
        )
    except GuardExpired as exc:
        return False, str(exc)
    return result.ok, result.detail


async def test_in_flight_caps_per_client_and_overall(drip: Drip) -> None:
    work = VisitorWork(threads=2, per_client=1, send_deadline=3.0)
    try:
        first = asyncio.ensure_future(_expect_failed_send(work, "client-a", _drip_channel(drip)))
        await _until(lambda: work.inflight == 1)
        with pytest.raises(Busy) as same_client:
            await work.send("client-a", channels.send, _drip_channel(drip), "t", "b", "info", "text")
        assert same_client.value.scope == "client"
        second = asyncio.ensure_future(_expect_failed_send(work, "client-b", _drip_channel(drip)))
        await _until(lambda: work.inflight == 2)
        with pytest.raises(Busy) as full:
            await work.resolve("client-c", "127.0.0.1")
        assert full.value.scope == "global"
        assert not (await first)[0] and not (await second)[0]
        assert work.inflight == 0
    finally:
        work.close()


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


# -- item 2: "at every delivery", not just at sign-up ----------------------------------------------


async def test_alerts_to_a_confirmed_raw_url_are_guarded_at_every_delivery(
    tmp_path: Path, listener: Listener
) -> None:
    """Confirmed while the name pointed to a public address; then it rebinds: the alert never lands."""
    from datetime import UTC, datetime

    from alertd.core.model import AlertEvent, AlertKind, EventStatus
    from alertd.core.tracker import StepResult, TrackerState, event_id
    from alertd.run.dispatch import Dispatcher
    from alertd.store.sqlite import OutboxRow

    registry = RegionRegistry.load()
    settings = load_settings(
        None,
        env={},
        registry=registry,
        state_dir=tmp_path / "state",
        delivery={"timeout": 5, "max_attempts": 1, "retry_base": 0.05, "retry_max": 0.1},
        selfservice={
            "enabled": True,
            "public_url": "https://alerts.example.org",
            "channels": ["apprise"],
            "allowed_schemes": ["json"],
        },
    )
    dns = RebindingDns("hooks.rebind.example")
    codes: list[str] = []

    async def sender(url: str, title: str, body: str) -> bool:  # the code reached the resident
        codes.append(body)
        return True

    store = Store(settings.db_path)
    service = SelfService(settings, store, registry, resolver=dns, sender=sender)
    app = attach(create_app(settings=settings, store=store, routes=routes()), service)
    url = f"json://hooks.rebind.example:{listener.port}/x"
    try:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://alerts.example.org") as http:
            created = await http.post(
                "/api/subscriptions",
                json={
                    "regions": ["UA-32"],
                    "kinds": ["air_raid"],
                    "language": "en",
                    "channel": {"kind": "apprise", "value": url},
                },
            )
            assert created.status_code == 202, created.text
            code = next(word for word in codes[0].split() if word.strip(".:").isdigit()).strip(".:")
            confirmed = await http.post(
                "/api/subscriptions/confirm", json={"id": created.json()["id"], "code": code}
            )
            assert confirmed.status_code == 200, confirmed.text
        [resident] = store.subscribers()
        kyiv = registry.get("UA-32")
        t0 = datetime.now(UTC)
        event = AlertEvent(
            id=event_id("UA-32", AlertKind.AIR_RAID, t0, EventStatus.STARTED),
            source="test",
            kind=AlertKind.AIR_RAID,
            status=EventStatus.STARTED,
            region=kyiv,
            started_at=t0,
            observed_at=t0,
        )
        step = StepResult(
            state=TrackerState(), events=[event], notes=[], changed_keys=frozenset(), source_changed=False
        )
        store.commit_step(
            "test", step, outbox_for=lambda ev: [OutboxRow(ev.id, resident.name, url, "en")], now=t0
        )
        dispatcher = Dispatcher(store, settings, guard_for=service.guard_for)
        try:
            await dispatcher.drain(timeout=20)
        finally:
            dispatcher.close()
    finally:
        await service.aclose()
        store.close()
    assert dns.answers[0] == PUBLIC and dns.answers[-1] == "127.0.0.1", dns.answers
    assert listener.accepted == 0 and listener.requests == []
