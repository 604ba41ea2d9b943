"""The HTTP server's connection cap and request deadline (issue 15, item 3), on a real socket.

The server is :func:`alertd.web.server.serve` on 127.0.0.1, port 0, with a small
cap so the test needs few descriptors. Slow clients send part of a request head
and then nothing; the test waits (bounded) for what the server does to them.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx

from alertd.config import HttpConfig, Settings
from alertd.web.limits import ACCEPT_BACKLOG, DESCRIPTOR_RESERVE, connection_cap
from alertd.web.server import bind_socket, create_app, serve


def _app() -> Any:
    return create_app(settings=Settings(), health_check=lambda: (True, {"status": "ok"}))


async def _closed_by_server(sock: socket.socket, timeout: float = 20.0) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), False if still open at ``timeout``."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 1024), timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return data == b""


async def _slow(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


async def test_a_request_head_must_arrive_within_the_deadline() -> None:
    stop = asyncio.Event()
    listener = bind_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = asyncio.ensure_future(
        serve(_app(), "127.0.0.1", port, stop, sock=listener, limits=HttpConfig(header_timeout=1))
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(100):
                try:
                    assert (await http.get("/healthz")).status_code == 200
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        slow = await _slow(port)
        try:
            assert await _closed_by_server(slow)
        finally:
            slow.close()
    finally:
        stop.set()
        await server


async def test_at_the_cap_the_oldest_waiting_connection_makes_room() -> None:
    stop = asyncio.Event()
    listener = bind_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    limits = HttpConfig(max_connections=16, header_timeout=120)
    server = asyncio.ensure_future(serve(_app(), "127.0.0.1", port, stop, sock=listener, limits=limits))
    slow: list[socket.socket] = []
    try:
        await asyncio.sleep(0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(100):
                try:
                    await http.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            for _ in range(16):
                slow.append(await _slow(port))
                await asyncio.sleep(0.01)  # accepted in order: the first is the oldest
            # the cap is full of half-sent requests; a real request still gets its answer...
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as fresh:
                assert (await fresh.get("/healthz")).status_code == 200
        # ...because the oldest waiting connection was dropped for it
        assert await _closed_by_server(slow[0])
    finally:
        for sock in slow:
            sock.close()
        stop.set()
        await server


def test_the_cap_stays_below_the_descriptor_limit() -> None:
    assert connection_cap(1024, soft_limit=1024) == 1024 - DESCRIPTOR_RESERVE - 4 * ACCEPT_BACKLOG
    assert connection_cap(1024, soft_limit=4096) == 1024  # the unit's LimitNOFILE=4096
    assert connection_cap(50_000, soft_limit=4096) == 4096 - 1024 - 4 * ACCEPT_BACKLOG
    assert connection_cap(1024, soft_limit=100) == 16  # never zero
