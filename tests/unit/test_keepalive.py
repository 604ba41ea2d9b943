"""Kept-alive connections for sends (alertd.channels.keepalive), against a real local HTTP/1.1 server.

The server counts TCP connections and remembers each request's headers, so the
tests assert what a service would see: how many connections, which cookies,
which proxy.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from alertd import channels
from alertd.channels.guard import Guard
from alertd.channels.keepalive import KeepAlive
from alertd.channels.sender import Sender


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.set_cookie = False
        self.hang_up = (
            False  # close each connection after answering, without saying so (a keep-alive timeout)
        )
        self.closed = 0

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.closed += 1

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with self.lock:
            self.connections += 1
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append({"path": self.path, "cookie": self.headers.get("Cookie")})
        self.send_response(200)
        if self.server.set_cookie:
            self.send_header("Set-Cookie", "session=resident-a; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.server.hang_up:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _channel(server: _Server, path: str) -> channels.Channel:
    ch = channels.load(f"json://127.0.0.1:{server.server_address[1]}/{path}", timeout=5)
    assert ch.usable, ch.error
    return ch


def _send(keep: KeepAlive, ch: channels.Channel, body: str = "b") -> channels.SendResult:
    return keep.run(ch.host, channels.send, ch, "t", body, channels.FAILURE)


def test_sends_to_one_host_share_a_connection(server: _Server) -> None:
    keep = KeepAlive(4)
    results = [_send(keep, _channel(server, f"c{i}")) for i in range(20)]
    assert all(r.ok for r in results)
    assert len(server.requests) == 20
    assert server.connections == 1
    keep.close()


def test_without_keepalive_every_send_opens_a_connection(server: _Server) -> None:
    """The plain path is untouched: Apprise's own behaviour outside KeepAlive.run."""
    for i in range(3):
        ch = _channel(server, f"c{i}")
        assert channels.send(ch, "t", "b", channels.FAILURE).ok
    assert server.connections == 3


def test_no_cookie_rides_along_with_another_residents_message(server: _Server) -> None:
    server.set_cookie = True
    keep = KeepAlive(2)
    assert _send(keep, _channel(server, "resident-a")).ok
    assert _send(keep, _channel(server, "resident-b")).ok
    assert server.connections == 1  # the same connection …
    assert [r["cookie"] for r in server.requests] == [None, None]  # … but no cookie carried over
    keep.close()


def test_idle_hosts_are_closed_and_the_next_send_reconnects(server: _Server) -> None:
    now = [0.0]
    keep = KeepAlive(2, idle=30.0, clock=lambda: now[0])
    ch = _channel(server, "c")
    assert _send(keep, ch).ok
    now[0] = 10.0
    assert keep.reap() == 1  # not idle long enough
    now[0] = 41.0
    assert keep.reap() == 0 and len(keep) == 0
    assert _send(keep, ch).ok
    assert server.connections == 2
    now[0] = 100.0
    assert _send(keep, ch).ok  # idle past the limit at the next send: a fresh connection, no reap needed
    assert server.connections == 3
    assert keep.opened == 3
    keep.close()


def test_environment_proxy_is_honoured(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy still applies, as it would to Apprise's own requests.post (read once per origin)."""
    port = server.server_address[1]
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.delenv("NO_PROXY", raising=False)
    keep = KeepAlive(2)
    ch = channels.load("json://service.invalid/c", timeout=5)  # only reachable through the "proxy"
    assert _send(keep, ch).ok
    assert server.requests and server.requests[0]["path"].startswith("http://service.invalid/")
    keep.close()


def test_no_proxy_keeps_loopback_direct(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    keep = KeepAlive(2)
    assert _send(keep, _channel(server, "c")).ok
    assert server.requests[0]["path"] == "/c"
    keep.close()


def test_plain_requests_outside_a_send_are_unchanged(server: _Server) -> None:
    keep = KeepAlive(2)
    assert _send(keep, _channel(server, "c")).ok
    url = f"http://127.0.0.1:{server.server_address[1]}/direct"
    assert requests.post(url, data=b"x", timeout=5).status_code == 200
    assert server.connections == 2  # the direct call did not borrow the kept connection
    keep.close()


def test_sender_reuses_connections_but_never_for_a_guarded_send(server: _Server) -> None:
    """A resident's raw URL is checked at every connect: it never gets a connection vetted for another."""
    port = server.server_address[1]
    checked: list[tuple[str, int]] = []

    def permit(address: str, p: int) -> bool:
        checked.append((address, p))
        return p == port

    async def scenario() -> None:
        sender = Sender(4)
        try:
            chans = [_channel(server, f"c{i}") for i in range(12)]
            for ch in chans:  # one at a time: each finds the connection the last one left
                assert (await sender.send(ch, "t", "b", channels.FAILURE, timeout=5)).ok
            assert server.connections == 1
            for i in range(3):
                guarded = await sender.send(
                    _channel(server, f"g{i}"),
                    "t",
                    "b",
                    channels.FAILURE,
                    timeout=5,
                    guard=Guard(permit=permit),
                )
                assert guarded.ok
            assert server.connections == 4  # each guarded send connected (and was checked) itself
            assert len(checked) == 3
        finally:
            sender.close()

    asyncio.run(scenario())


def test_a_connection_the_service_closed_is_not_a_failed_delivery(server: _Server) -> None:
    """Services close idle keep-alive connections (Apache after 5 s): the next send reconnects."""
    server.hang_up = True
    keep = KeepAlive(2)
    ch = _channel(server, "c")
    results = []
    for n in range(1, 6):
        results.append(_send(keep, ch))
        deadline = time.monotonic() + 10
        while server.closed < n and time.monotonic() < deadline:  # the server hung up, as between two sends
            time.sleep(0.01)
    assert all(r.ok for r in results), [r.detail for r in results]
    assert server.connections == 5 and len(server.requests) == 5
    keep.close()


class _EchoHandler(BaseHTTPRequestHandler):
    """Records everything a service would see; ``/redirect-NNN`` answers NNN with a Location."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {
            k.lower(): v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        if "multipart/form-data" in headers.get("content-type", ""):
            boundary = headers["content-type"].split("boundary=")[1]  # random per request
            body = body.replace(boundary.encode(), b"B")
            headers["content-type"] = "multipart/form-data; boundary=B"
        with self.server.lock:
            self.server.requests.append(
                {"method": self.command, "path": self.path, "headers": headers, "body": body}
            )
        if self.path.startswith("/redirect-"):
            self.send_response(int(self.path.split("-")[1][:3]))
            self.send_header("Location", "/landed")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[_Server]:
    srv = _Server()
    srv.RequestHandlerClass = _EchoHandler
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("POST", "/json", {"json": {"text": "Повітряна тривога"}}),
        ("POST", "/form", {"data": {"chat_id": "1", "text": "a b&c"}, "params": {"q": "1"}}),
        (
            "POST",
            "/raw?x=1",
            {"data": "plain", "headers": {"Content-Type": "text/plain", "User-Agent": "Apprise"}},
        ),
        ("POST", "/auth", {"data": b"x", "auth": ("user", "pass")}),
        ("POST", "/no-accept", {"data": b"x", "headers": {"Accept": None, "X-Token": "t"}}),
        ("POST", "/files", {"files": {"attach": ("a.txt", b"hello", "text/plain")}, "data": {"k": "v"}}),
        ("GET", "/get", {"params": {"chat": "@kyiv"}}),
        ("PUT", "/put", {"data": b"{}"}),
        ("POST", "/redirect-302", {"data": b"x"}),  # POST → GET at the new place, as browsers and requests do
        ("POST", "/redirect-307", {"data": b"x"}),  # method and body kept
        ("POST", "/redirect-302", {"data": b"x", "allow_redirects": False}),
    ],
)
def test_a_kept_session_sends_what_requests_itself_sends(
    echo: _Server, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """HostSession.request skips Session.request's per-call merging; the service must see no difference."""
    base = f"http://127.0.0.1:{echo.server_address[1]}"
    plain = requests.request(method, base + path, timeout=5, **kwargs)
    seen_plain = list(echo.requests)
    echo.requests.clear()
    keep = KeepAlive(2)
    kept = keep.run("127.0.0.1", requests.request, method, base + path, timeout=5, **kwargs)
    keep.close()
    assert echo.requests == seen_plain
    assert (kept.status_code, kept.url, kept.content, len(kept.history)) == (
        plain.status_code,
        plain.url,
        plain.content,
        len(plain.history),
    )
    assert (kept.next.url if kept.next else None) == (plain.next.url if plain.next else None)


def test_netrc_credentials_apply_as_with_requests(
    echo: _Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login svc password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = f"http://127.0.0.1:{echo.server_address[1]}/n"
    keep = KeepAlive(2)
    for _ in range(2):  # the second from the per-origin cache
        keep.run("127.0.0.1", requests.post, url, data=b"x", timeout=5)
    keep.run("127.0.0.1", requests.post, url, data=b"x", auth=("own", "pw"), timeout=5)  # explicit wins
    keep.close()
    requests.post(url, data=b"x", timeout=5)
    auths = [r["headers"].get("authorization") for r in echo.requests]
    assert auths[0] == auths[1] == auths[3] == requests.auth._basic_auth_str("svc", "s3cret")
    assert auths[2] == requests.auth._basic_auth_str("own", "pw")
