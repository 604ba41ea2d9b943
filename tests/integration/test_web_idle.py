"""The embedded HTTP server at rest: one housekeeping tick a second, and a stop heard at once.

uvicorn's own loop wakes ten times a second; alertd's server ticks once a second (the
Date header's resolution) and wakes its loop when told to stop, so a long tick never
delays shutdown. Real socket on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime

import httpx
import pytest

from alertd.config import Settings
from alertd.web import server as web_server
from alertd.web.server import bind_socket, create_app, serve


async def test_a_stop_is_heard_at_once_and_the_date_header_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_server._EmbeddedServer, "TICK", 3600.0)  # the next tick: an hour away
    stop = asyncio.Event()
    listener = bind_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    app = create_app(settings=Settings(), health_check=lambda: (True, {"status": "ok"}))
    server = asyncio.ensure_future(serve(app, "127.0.0.1", port, stop, sock=listener))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    resp = await http.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        assert resp.status_code == 200
        assert parsedate_to_datetime(resp.headers["date"]).tzinfo is not None
    finally:
        stop.set()
    # ends well before the hour-long tick would have come round
    await asyncio.wait_for(server, timeout=60)
    assert listener.fileno() == -1  # the listener is closed
