"""The small HTTP side of alertd: ``/healthz`` and ``/metrics``, served inside the daemon's loop.

* :func:`health` is the pure decision behind ``/healthz``: every enabled source
  polled successfully within its allowance, and the outbox is not lagging.
* :func:`create_app` builds the Starlette app. It takes extra routes so the
  residents' self-service pages can later be mounted on the same server; the
  settings, store and metrics are on ``app.state`` for them.
* :func:`serve` runs uvicorn as a task **in the daemon's event loop** — the store's
  SQLite connection belongs to that thread, which is why every handler here is
  ``async`` (a sync handler would run in a worker thread). uvicorn's own signal
  handling is switched off: SIGTERM/SIGINT belong to the daemon, which sets the
  stop event, and the server follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from alertd.config import HttpConfig, Settings, SourceConfig
from alertd.core.model import iso_utc
from alertd.logs import get_logger
from alertd.store.base import SourceCursor
from alertd.web.limits import ACCEPT_BACKLOG, connection_cap, limited_h11
from alertd.web.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = [
    "DEFAULT_MAX_OUTBOX_LAG",
    "HealthStore",
    "bind_socket",
    "create_app",
    "health",
    "serve",
]

log = get_logger(__name__)

#: Seconds the oldest undelivered outbox row may wait before /healthz says the dispatcher lags.
DEFAULT_MAX_OUTBOX_LAG = 300.0


class StoreHealthView(Protocol):
    """What ``/healthz`` reads of :class:`alertd.store.runner.StoreHealth`."""

    def problem(self) -> Mapping[str, Any] | None: ...


class HealthStore(Protocol):
    """What ``/healthz`` reads from the store (every :class:`alertd.store.base.StateStore` has both)."""

    def cursors(self) -> list[SourceCursor]: ...
    def oldest_pending(self) -> datetime | None: ...


def health(
    cursors: Iterable[SourceCursor],
    sources: Iterable[SourceConfig],
    outbox_oldest: datetime | None,
    now: datetime,
    started_at: datetime,
    *,
    max_outbox_lag: float = DEFAULT_MAX_OUTBOX_LAG,
    redact: Callable[[str], str] | None = None,
    store_problem: Mapping[str, Any] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Decide whether alertd is healthy; returns ``(ok, body)`` for ``/healthz``.

    A source is healthy when its last successful poll is at most
    ``effective_allowance`` seconds old. Every source also gets a start-up grace
    of its allowance from ``started_at``: a source that has never succeeded (a
    fresh install) or whose last success predates a restart is not declared
    down before this process has had the same chance to poll it that a running
    one gets. Disabled sources are ignored.

    The outbox is healthy when its oldest pending row is at most
    ``max_outbox_lag`` seconds old.

    ``redact`` (e.g. :meth:`alertd.logs.SecretFilter.scrub`) is applied to the
    upstream error texts the body repeats.

    ``store_problem`` (:meth:`alertd.store.runner.StoreHealth.problem`): the store
    cannot be written right now. That is unhealthy at once, whatever the sources
    say: nothing new is recorded or delivered until it is writable again.
    """
    by_name = {c.name: c for c in cursors}
    scrub = redact or (lambda text: text)
    report: dict[str, dict[str, Any]] = {}
    failing: list[str] = []
    for cfg in sources:
        if not cfg.enabled:
            continue
        cursor = by_name.get(cfg.name, SourceCursor(name=cfg.name))
        allowance = cfg.effective_allowance
        reference = started_at if cursor.last_success is None else max(cursor.last_success, started_at)
        age = (now - reference).total_seconds()
        ok = age <= allowance
        entry: dict[str, Any] = {
            "ok": ok,
            "last_success": iso_utc(cursor.last_success),
            "allowance_seconds": allowance,
        }
        if cursor.consecutive_failures or not ok:
            entry.update(
                consecutive_failures=cursor.consecutive_failures,
                failing_since=iso_utc(cursor.failing_since),
                last_error=scrub(cursor.last_error) if cursor.last_error else None,
            )
        if not ok:
            if cursor.last_success is None or cursor.last_success < started_at:
                since = "never" if cursor.last_success is None else "not since start"
                entry["reason"] = (
                    f"no successful poll ({since}) in the {age:.0f}s since start (allowance {allowance:g}s)"
                )
            else:
                entry["reason"] = f"no successful poll for {age:.0f}s (allowance {allowance:g}s)"
            failing.append(cfg.name)
        report[cfg.name] = entry

    lag = max(0.0, (now - outbox_oldest).total_seconds()) if outbox_oldest is not None else 0.0
    outbox_ok = lag <= max_outbox_lag
    outbox: dict[str, Any] = {
        "ok": outbox_ok,
        "oldest_pending": iso_utc(outbox_oldest),
        "lag_seconds": round(lag, 3),
        "max_lag_seconds": max_outbox_lag,
    }
    if not outbox_ok:
        outbox["reason"] = f"oldest undelivered notice waits for {lag:.0f}s (limit {max_outbox_lag:g}s)"

    ok = not failing and outbox_ok and store_problem is None
    body: dict[str, Any] = {
        "status": "ok" if ok else "failing",
        "checked_at": iso_utc(now),
        "started_at": iso_utc(started_at),
        "failing": failing,
        "sources": report,
        "outbox": outbox,
        "store": {"ok": True} if store_problem is None else dict(store_problem),
    }
    return ok, body


def create_app(
    *,
    settings: Settings,
    store: HealthStore | None = None,
    store_health: StoreHealthView | None = None,
    metrics: Metrics | None = None,
    health_check: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    routes: Sequence[BaseRoute] = (),
    middleware: Sequence[Middleware] = (),
    started_at: datetime | None = None,
    max_outbox_lag: float = DEFAULT_MAX_OUTBOX_LAG,
    redact: Callable[[str], str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    shared: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """Build the HTTP app: ``/healthz``, ``/metrics`` (when ``metrics`` is given), then ``routes``.

    ``/healthz`` uses ``health_check`` when given, else :func:`health` over
    ``store`` and ``settings.sources``. ``started_at`` is the process start (the
    sources' start-up grace counts from it; default: now). ``store_health``: the
    writers' view of the store (a failed write makes ``/healthz`` 503 at once). ``shared``: with
    several instances on one shared store, what ``/healthz`` adds about them (this instance,
    leases, claims).
    """
    if health_check is None and store is None:
        raise ValueError("create_app needs a store or a health_check")
    started = started_at or clock()

    def default_check() -> tuple[bool, dict[str, Any]]:
        assert store is not None
        return health(
            store.cursors(),
            settings.sources,
            store.oldest_pending(),
            clock(),
            started,
            max_outbox_lag=max_outbox_lag,
            redact=redact,
            store_problem=store_health.problem() if store_health is not None else None,
        )

    check = health_check or default_check

    async def healthz(request: Request) -> Response:
        try:
            ok, body = check()
            if shared is not None:
                body["instances"] = shared()
        except Exception as exc:  # the state file locked or gone: that is unhealthy, not a 500
            log.warning("healthz check failed", error=f"{type(exc).__name__}: {exc}")
            ok, body = False, {"status": "failing", "error": f"health check failed: {type(exc).__name__}"}
            problem = store_health.problem() if store_health is not None else None
            if problem is not None:
                body["store"] = problem
        return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    async def metrics_endpoint(request: Request) -> Response:
        assert metrics is not None
        return Response(
            metrics.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    all_routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    if metrics is not None:
        all_routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    all_routes.extend(routes)
    app = Starlette(routes=all_routes, middleware=list(middleware))
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    app.state.started_at = started
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers.

    ``uvicorn.Server.serve()`` (0.29+, still so in 0.54) wraps itself in
    ``capture_signals()``, which replaces the SIGINT/SIGTERM handlers with
    ``signal.signal`` and re-raises the captured signal when it exits; there is
    no config switch for it. Here the daemon owns those signals (its
    ``loop.add_signal_handler`` sets the stop event) and tells the server to exit
    through :func:`serve`'s stop event, so the context manager does nothing.
    """

    #: Seconds between the server's housekeeping ticks. uvicorn's own loop ticks every 0.1 s to
    #: refresh the Date header once a second and to notice ``should_exit``: ten wakeups a second
    #: of an otherwise idle daemon (about 0.2 % of a core here). Once a second is the Date
    #: header's own resolution, and :meth:`request_exit` wakes the loop at once.
    TICK = 1.0

    _tick: asyncio.Future[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # a multiple of 10: on_tick's once-a-second work, each tick
            tick = self._tick = loop.create_future()
            handle = loop.call_later(self.TICK, _resolve, tick)
            try:
                await tick
            finally:
                handle.cancel()
                self._tick = None
            should_exit = await self.on_tick(counter)

    def request_exit(self, *, force: bool = False) -> None:
        """Stop serving (``force``: without waiting for open connections); the tick wakes now."""
        self.should_exit = True
        if force:
            self.force_exit = True
        if self._tick is not None:
            _resolve(self._tick)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a busy port fails start-up with a clear OSError.

    (Left to uvicorn, a bind failure ends in ``sys.exit(1)`` inside a task.)
    Port 0 picks a free port: read it back with ``sock.getsockname()[1]``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=ACCEPT_BACKLOG)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


async def serve(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    sock: socket.socket | None = None,
    graceful_timeout: int = 5,
    limits: HttpConfig | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` in the running loop until ``stop`` is set.

    Pass an already bound ``sock`` (see :func:`bind_socket`) to fail early on a
    busy port or to listen on port 0. Returns once the server has closed.
    ``limits`` (default: ``HttpConfig()``'s) caps open connections below the
    descriptor limit and gives each request a deadline (:mod:`alertd.web.limits`).
    """
    if sock is None:
        sock = bind_socket(host, port)
    limits = limits or HttpConfig()
    cap = connection_cap(limits.max_connections)
    if cap < limits.max_connections:
        log.warning(
            "http connections capped below the descriptor limit",
            configured=limits.max_connections,
            cap=cap,
            hint="raise LimitNOFILE= (ulimit -n)",
        )
    config = uvicorn.Config(
        app,
        http=limited_h11(cap, limits.header_timeout),
        timeout_keep_alive=max(1, round(limits.keep_alive)),
        h11_max_incomplete_event_size=16 * 1024,  # request line + headers
        backlog=ACCEPT_BACKLOG,
        log_config=None,  # alertd's logging stays as setup_logging made it
        log_level="warning",  # no "Started server process" chatter in alertd's log
        access_log=False,
        lifespan="off",
        ws="none",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = _EmbeddedServer(config)
    bound = sock.getsockname()
    listen = f"{bound[0]}:{bound[1]}"
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while not (server.started or task.done() or stop.is_set()):
            await asyncio.wait({task, stopper}, timeout=0.05)
        if server.started:
            log.info("http server listening", listen=listen)
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not stop.is_set():
            task.result()  # the server ended on its own: raise its error, if any
            log.error("http server stopped unexpectedly", listen=listen)
            return
        server.request_exit()
        await task
        log.info("http server stopped", listen=listen)
    except asyncio.CancelledError:
        # cancelled rather than stopped: still close the listener, quickly
        server.request_exit(force=True)
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
            await asyncio.wait_for(task, timeout=2)
        for listener in getattr(server, "servers", []):
            listener.close()
        raise
    finally:
        stopper.cancel()
        if sock.fileno() != -1:  # never started, or not closed by uvicorn's shutdown
            sock.close()
