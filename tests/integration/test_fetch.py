"""fetch() against a real local HTTP server: size cap, timeouts, 429/Retry-After, 304, User-Agent."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from alertd import __version__
from alertd.devtools.simulate import Upstream
from alertd.errors import FetchError
from alertd.run.fetch import USER_AGENT, fetch, make_client, retry_after_seconds

TOKEN = "fetch-test-token-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(token=TOKEN, timeout_delay=2.0, trickle_delay=0.2) as up:
        up.add_alert(31)
        yield up


@pytest.fixture
async def client():
    client = make_client()
    yield client
    await client.aclose()


class _BigHandler(BaseHTTPRequestHandler):
    """Serves /declared (Content-Length says 2000) and /chunked (2000 bytes, no length)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"x" * 2000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 100):
                part = body[i : i + 100]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def big_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BigHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_good_fetch_returns_body_and_validators(upstream: Upstream, client: httpx.AsyncClient) -> None:
    resp = await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=2)
    assert resp.status == 200 and not resp.not_modified
    assert b'"alerts"' in resp.body
    assert resp.etag and resp.last_modified


@pytest.mark.parametrize("path", ["/declared", "/chunked"])
async def test_body_over_the_cap_is_a_fetch_error(
    big_server: str, client: httpx.AsyncClient, path: str
) -> None:
    with pytest.raises(FetchError, match="cap") as info:
        await fetch(client, "big", big_server + path, max_bytes=1000, timeout=2)
    assert info.value.source == "big"
    # at the cap exactly it is fine
    resp = await fetch(client, "big", big_server + path, max_bytes=2000, timeout=2)
    assert len(resp.body) == 2000


async def test_stalled_upstream_times_out(upstream: Upstream, client: httpx.AsyncClient) -> None:
    upstream.set_fault("timeout", "alerts_in_ua", count=1)
    with pytest.raises(FetchError, match="timed out") as info:
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=0.5)
    assert info.value.source == "aiu"


async def test_trickling_upstream_hits_the_overall_deadline(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    """Each byte comes well within the read timeout, but the whole answer would take minutes."""
    upstream.set_fault("trickle", "alerts_in_ua", count=1)
    with pytest.raises(FetchError, match="timed out"):
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=1.0)


async def test_429_carries_retry_after(upstream: Upstream, client: httpx.AsyncClient) -> None:
    upstream.set_fault("http429", "alerts_in_ua", count=1)
    with pytest.raises(FetchError, match="HTTP 429") as info:
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=2)
    assert info.value.retry_after == 2.0


async def test_500_and_401_are_fetch_errors_without_retry_after(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    upstream.set_fault("http500", "alerts_in_ua", count=1)
    with pytest.raises(FetchError, match="HTTP 500") as info:
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=2)
    assert info.value.retry_after is None
    with pytest.raises(FetchError, match="HTTP 401") as info:
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers={"Authorization": "Bearer nope"})
    assert TOKEN not in str(info.value) and "nope" not in str(info.value)


def test_retry_after_both_forms() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 120 ") == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None


async def test_conditional_request_gets_304(upstream: Upstream, client: httpx.AsyncClient) -> None:
    first = await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=2)
    again = await fetch(
        client,
        "aiu",
        upstream.alerts_in_ua_url,
        headers=AUTH,
        etag=first.etag,
        last_modified=first.last_modified,
        timeout=2,
    )
    assert again.status == 304 and again.not_modified and again.body == b""
    sent = upstream.requests("alerts_in_ua")[-1].headers
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified
    # a state change gives a new ETag: the conditional request now returns the body
    upstream.add_alert(14)
    changed = await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, etag=first.etag, timeout=2)
    assert changed.status == 200 and changed.etag != first.etag


async def test_user_agent_is_present_and_honest(upstream: Upstream, client: httpx.AsyncClient) -> None:
    await fetch(client, "aiu", upstream.alerts_in_ua_url, headers=AUTH, timeout=2)
    agent = upstream.requests("alerts_in_ua")[-1].headers["user-agent"]
    assert agent == USER_AGENT
    assert agent.startswith(f"alertd/{__version__} ")
    assert "notifier" in agent and "Mozilla" not in agent


async def test_connection_refused_is_a_fetch_error(client: httpx.AsyncClient) -> None:
    with Upstream() as up:
        url = up.alerts_in_ua_url
    with pytest.raises(FetchError, match="request failed"):
        await fetch(client, "aiu", url, timeout=1)


@pytest.mark.parametrize("token", ["leaky-token-4e1d\n", " leaky-token-4e1d\r\nX: y", "leaky-tokén-4e1d"])
async def test_malformed_token_is_not_quoted_in_the_error(
    upstream: Upstream, client: httpx.AsyncClient, token: str
) -> None:
    """httpx/h11 quote an illegal header value; the FetchError (logged, stored) must not."""
    with pytest.raises(FetchError, match="request not sent") as info:
        await fetch(client, "aiu", upstream.alerts_in_ua_url, headers={"Authorization": f"Bearer {token}"})
    text = "".join(traceback.format_exception(info.value))  # what log.exception would print
    assert "leaky" not in text and "4e1d" not in text
    assert upstream.requests() == []
