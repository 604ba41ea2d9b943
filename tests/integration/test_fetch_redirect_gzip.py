"""fetch() and redirects, compressed bodies and proxies, against real local servers."""

from __future__ import annotations

import gzip
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from alertd.errors import FetchError
from alertd.run.fetch import fetch, make_client

BODY = b'{"alerts": [], "meta": {"type": "full"}}'
BOMB = gzip.compress(b"\0" * 50_000_000, compresslevel=9)  # ~50 kB on the wire, 50 MB inflated

Route = Callable[[BaseHTTPRequestHandler], None]


def _serve(routes: dict[str, Route]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            route = routes.get(self.path)
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            route(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _send(status: int, body: bytes = b"", **headers: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


@pytest.fixture
def servers() -> Iterator[tuple[dict[str, Route], str, dict[str, Route], str]]:
    """Two origins: the feed's and "somewhere else" (another port is another origin)."""
    feed_routes: dict[str, Route] = {}
    other_routes: dict[str, Route] = {"/feed.json": _send(200, BODY, Content_Type="application/json")}
    feed, feed_url = _serve(feed_routes)
    other, other_url = _serve(other_routes)
    yield feed_routes, feed_url, other_routes, other_url
    for server in (feed, other):
        server.shutdown()
        server.server_close()


@pytest.fixture
async def client():
    client = make_client()
    yield client
    await client.aclose()


async def test_redirect_to_another_origin_is_a_failed_fetch(servers, client: httpx.AsyncClient) -> None:
    feed_routes, feed_url, _, other_url = servers
    feed_routes["/feed.json"] = _send(302, Location=f"{other_url}/feed.json")
    with pytest.raises(FetchError, match="redirect to another origin") as info:
        await fetch(client, "aiu", f"{feed_url}/feed.json", timeout=5)
    assert info.value.status == 302
    assert other_url.split("//")[1] in info.value.reason  # the log names where it pointed


async def test_scheme_change_is_another_origin(servers, client: httpx.AsyncClient) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/feed.json"] = _send(301, Location=feed_url.replace("http://", "https://") + "/feed.json")
    with pytest.raises(FetchError, match="another origin"):
        await fetch(client, "aiu", f"{feed_url}/feed.json", timeout=5)


async def test_same_origin_redirect_is_followed(servers, client: httpx.AsyncClient) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/old.json"] = _send(308, Location="/new.json")
    feed_routes["/new.json"] = _send(200, BODY)
    resp = await fetch(client, "aiu", f"{feed_url}/old.json", timeout=5)
    assert resp.body == BODY


async def test_redirect_loop_is_a_failed_fetch(servers, client: httpx.AsyncClient) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/a"] = _send(302, Location="/b")
    feed_routes["/b"] = _send(302, Location="/a")
    with pytest.raises(FetchError, match="redirects"):
        await fetch(client, "aiu", f"{feed_url}/a", timeout=5)


async def test_http_errors_carry_their_status(servers, client: httpx.AsyncClient) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/503"] = _send(503, b"busy", Retry_After="7")
    feed_routes["/404"] = _send(404, b"nope")
    with pytest.raises(FetchError) as info:
        await fetch(client, "aiu", f"{feed_url}/503", timeout=5)
    assert (info.value.status, info.value.retry_after) == (503, 7.0)
    with pytest.raises(FetchError) as info:
        await fetch(client, "aiu", f"{feed_url}/404", timeout=5)
    assert (info.value.status, info.value.retry_after) == (404, None)


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),  # RFC deflate: zlib-wrapped
        ("deflate", zlib.compress(BODY)[2:-4]),  # what many servers send: raw deflate
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
async def test_compressed_bodies_are_decoded(servers, client, encoding: str, packed: bytes) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/z"] = _send(200, packed, Content_Encoding=encoding)
    assert (await fetch(client, "aiu", f"{feed_url}/z", timeout=5)).body == BODY


async def test_gzip_bomb_is_refused_on_decompressed_bytes_without_inflating_it(servers, client) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/bomb"] = _send(200, BOMB, Content_Encoding="gzip", Content_Type="application/json")
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="decompressed response exceeds the 5000000-byte cap"):
            await fetch(client, "aiu", f"{feed_url}/bomb", timeout=30, max_bytes=5_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the cap plus one inflate step and the wire buffers, never the 50 MB the body would inflate to
    assert peak < 16_000_000, f"peak {peak} bytes"


async def test_corrupt_gzip_is_a_fetch_error(servers, client) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/bad"] = _send(200, b"\x1f\x8b\x08\x00garbage-not-gzip", Content_Encoding="gzip")
    with pytest.raises(FetchError, match="not valid gzip"):
        await fetch(client, "aiu", f"{feed_url}/bad", timeout=5)


async def test_loopback_is_reached_directly_whatever_the_proxy_environment(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_routes, feed_url, _, _ = servers
    feed_routes["/feed.json"] = _send(200, BODY)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on the discard port
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with make_client() as proxied:
        assert (await fetch(proxied, "aiu", f"{feed_url}/feed.json", timeout=5)).body == BODY
        # a non-loopback host does go to the (dead) proxy: the environment is still honoured
        with pytest.raises(FetchError, match="request failed"):
            await fetch(proxied, "aiu", "http://feed.invalid/feed.json", timeout=5)
