"""Local stand-ins for the places alertd delivers to: an HTTP sink for Apprise ``json://`` and an SMTP sink.

Why threads: each sink runs its server in its own thread(s), so it answers whether
the code under test runs in this process's asyncio loop (Apprise sends from worker
threads; the loop stays free) or as a separate ``alertd`` process. Every server
binds 127.0.0.1 on a free port: tests never touch the network.

Typical use::

    with JsonSink() as sink:
        sink.configure("/u2", status=500, fail_first=2)
        url = sink.url("/u2")            # json://127.0.0.1:PORT/u2
        ...
        sink.wait_for(1, path="/u2", delivered=True)
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from alertd.devtools.simulate import Received, Sink

__all__ = ["JsonSink", "PathBehaviour", "Received", "SmtpMessage", "SmtpSink"]


@dataclass
class PathBehaviour:
    """How the sink answers on one path: a status, a delay, failing the first N requests.

    ``gate``: requests wait (each on its server thread) until the test sets it, so a test can
    observe what happens while an answer is outstanding instead of measuring how long things took.
    """

    status: int = 200
    delay: float = 0.0
    fail_first: int = 0
    fail_status: int = 500
    retry_after: str | None = None
    gate: threading.Event | None = None
    seen: int = 0

    def answer(self) -> int:
        """The status for the next request (called under the sink's lock)."""
        self.seen += 1
        if self.seen <= self.fail_first:
            return self.fail_status
        return self.status


class JsonSink(Sink):
    """:class:`alertd.devtools.simulate.Sink` (records Apprise ``json://`` posts) with per-path behaviour.

    Thread-safe: requests arrive on server threads, assertions run on the test thread.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._behaviour: dict[str, PathBehaviour] = {}
        self._in_flight = 0

    def start(self) -> JsonSink:
        super().start()
        return self

    def __enter__(self) -> JsonSink:
        return self.start()

    def configure(
        self,
        path: str,
        *,
        status: int = 200,
        delay: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        retry_after: str | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        """Set how ``path`` answers from now on (counts for ``fail_first`` restart at zero)."""
        with self._lock:
            self._behaviour[path] = PathBehaviour(
                status=status,
                delay=delay,
                fail_first=fail_first,
                fail_status=fail_status,
                retry_after=retry_after,
                gate=gate,
            )

    def arrived(self, path: str) -> int:
        """Requests that reached ``path`` so far, answered or still waiting (on a gate or a delay)."""
        with self._lock:
            behaviour = self._behaviour.get(path)
            return behaviour.seen if behaviour else 0

    def unanswered(self) -> int:
        """Requests that arrived and are not recorded yet (waiting on a delay or a gate).

        After the sender was killed, wait for this to reach 0 before counting what was received:
        the requests it had already made still finish on the sink's side.
        """
        with self._lock:
            return self._in_flight

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1  # until the request is recorded and answered
        try:
            super()._handle(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, path: str) -> tuple[int, float, str | None]:
        with self._lock:
            behaviour = self._behaviour.setdefault(path, PathBehaviour())
            answer = behaviour.answer(), behaviour.delay, behaviour.retry_after
            gate = behaviour.gate
        if gate is not None:
            gate.wait(timeout=60)  # bounded: a test that forgets to open it fails instead of hanging
        return answer


@dataclass(frozen=True)
class SmtpMessage:
    """One message the SMTP sink accepted."""

    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    at: float
    login: str | None = None


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 collecting messages (plain SMTP, optional AUTH without TLS).

    Apprise: ``mailto://user:pass@127.0.0.1:PORT?to=x@example.org&from=alertd@example.org``.
    ``mailto`` (not ``mailtos``) on a host no built-in template knows means
    ``mode=insecure``: no STARTTLS, so the plain server here is enough. With
    user and password in the URL Apprise logs in; the sink accepts any login
    (``auth_require_tls=False``) and records the user name.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._messages: list[SmtpMessage] = []
        self._host = host
        # Bound here, before the server starts, and handed to it: asking the OS for a free port and
        # binding it later would let another test (or process) take the port in between.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, port))
        self._port = int(self._sock.getsockname()[1])
        sink = self

        class _Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink._record(envelope, session)
                return "250 OK"

        def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            return AuthResult(success=True, auth_data=auth_data)

        class _BoundController(Controller):
            """aiosmtpd's threaded controller, serving on the socket bound above."""

            def _create_server(self) -> Any:
                return self.loop.create_server(self._factory_invoker, sock=sink._sock, ssl=self.ssl_context)

        self._controller = _BoundController(
            _Handler(),
            hostname=host,
            port=self._port,
            authenticator=_authenticator,
            auth_require_tls=False,
        )

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    def url(self, to: str = "x@example.org", *, user: str = "alertd", password: str = "secret") -> str:
        """The Apprise URL of a mail channel delivering to ``to`` through this sink."""
        creds = f"{user}:{password}@" if user and password else ""
        return f"mailto://{creds}{self.host}:{self.port}?to={to}&from=alertd@example.org&mode=insecure"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._sock.close()  # already closed with the server when it ran; a sink never started still holds it

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self, to: str | None = None) -> list[SmtpMessage]:
        with self._lock:
            return [m for m in self._messages if to is None or to in m.recipients]

    def wait_for(self, count: int, timeout: float = 10.0, *, to: str | None = None) -> list[SmtpMessage]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [m for m in self._messages if to is None or to in m.recipients]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"SmtpSink: expected {count} message(s), got {len(matching)}")
                self._cond.wait(remaining)

    def _record(self, envelope: Any, session: Any) -> None:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        body = part.get_content() if part is not None else ""
        auth = getattr(session, "auth_data", None)
        login = getattr(auth, "login", None)
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        message = SmtpMessage(
            mail_from=str(envelope.mail_from),
            recipients=tuple(str(r) for r in envelope.rcpt_tos),
            subject=str(parsed.get("Subject", "")),
            body=str(body),
            at=time.time(),
            login=login if isinstance(login, str) else None,
        )
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
