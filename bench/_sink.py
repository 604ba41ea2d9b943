"""A fast local sink for Apprise ``json://`` posts, run as its own process.

Why not ``tests/support/sinks.JsonSink`` (or ``http.server``): a thread per
connection and a full request parser cost ~1 ms of Python per post, and at 10,000
posts the sink would become what the benchmark measures. This one is a bare
``asyncio.Protocol``: it finds the end of the headers, reads ``Content-Length``
bytes, notes ``time.time()``, the path and the Apprise notify type (``failure`` for
an alert start, ``success`` for an end), and answers ``200`` at once (keep-alive
honoured). It runs in a separate process so it never competes with the code
under test for the GIL.

Control (plain GET on the same port):

* ``GET /_stats?from=K`` → ``{"count": N, "items": [[t, path, type], ...]}`` (records K..N)
* ``GET /_reset`` → forget every record

Run: ``python bench/_sink.py [--port 0]``; it prints ``PORT <n>`` on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: text/plain\r\n\r\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

RECORDS: list[tuple[float, str, str]] = []


def _notify_type(body: bytes) -> str:
    i = body.find(b'"type"')
    if i < 0:
        return ""
    j = body.find(b'"', body.find(b":", i) + 1)
    k = body.find(b'"', j + 1)
    return body[j + 1 : k].decode("ascii", "replace") if j > 0 and k > j else ""


class SinkProtocol(asyncio.Protocol):
    __slots__ = ("buf", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                length = int(lower[i + 15 : lower.find(b"\r\n", i) if lower.find(b"\r\n", i) > 0 else None])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
            parts = line.split(b" ")
            method, target = parts[0], parts[1].decode("latin-1") if len(parts) > 1 else "/"
            close = b"connection: close" in lower
            if method == b"GET" and target.startswith("/_"):
                self._control(target)
                continue
            RECORDS.append((time.time(), target, _notify_type(body)))
            self.transport.write(_OK_CLOSE if close else _OK)  # type: ignore[attr-defined]
            if close:
                self.transport.close()
                return

    def _control(self, target: str) -> None:
        if target.startswith("/_reset"):
            RECORDS.clear()
            payload = b"{}"
        else:
            start = 0
            if "from=" in target:
                start = int(target.split("from=", 1)[1].split("&", 1)[0])
            payload = json.dumps({"count": len(RECORDS), "items": RECORDS[start:]}).encode()
        self.transport.write(  # type: ignore[attr-defined]
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
