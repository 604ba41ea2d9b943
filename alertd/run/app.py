"""Wiring: builds the process from settings (logging, store, daemon, delivery, HTTP) and runs it.

Everything is constructed here and passed in; no module holds process state.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from starlette.routing import BaseRoute

from alertd.config import Settings
from alertd.core.clock import SYSTEM_CLOCK, Clock, SystemClock
from alertd.core.model import AlertEvent, iso_utc
from alertd.core.regions import RegionRegistry
from alertd.core.route import Router, subscribers_from, topic_bindings, topic_subscribers
from alertd.errors import StoreError
from alertd.logs import SecretFilter, get_logger, setup_logging
from alertd.run.daemon import Background, Daemon, LiveHealth, run_forever
from alertd.run.dispatch import Dispatcher
from alertd.run.operators import OperatorNotifier
from alertd.run.retention import prune_forever
from alertd.store import OutboxRow, StateStore, instance_name, open_store
from alertd.store.runner import StoreHealth, StoreRunner
from alertd.web.metrics import Metrics

#: Threads of the daemon's own default executor (name lookups of the feeds, operator notices).
DAEMON_THREADS = 16

log = get_logger(__name__)


def settings_secrets(settings: Settings) -> list[str]:
    """Every configured secret, so the log filter can scrub whatever slips into a line."""
    secrets: list[str] = []
    for source in settings.sources:
        if source.token:
            secrets.append(source.token.get_secret_value())
        if source.webhook_secret:  # the path of the push endpoint: whoever has it can push
            secrets.append(source.webhook_secret.get_secret_value())
    urls = [u for sub in settings.subscribers for u in sub.urls] + list(settings.operators.urls)
    urls += [topic.url for topic in settings.topics if topic.url is not None]  # may hold a bot token
    secrets.extend(u.get_secret_value() for u in urls)
    if settings.store.url is not None:  # the PostgreSQL URL and, on its own, its password
        from urllib.parse import urlsplit

        secrets.append(settings.store.url.get_secret_value())
        password = urlsplit(settings.store.url.get_secret_value()).password
        if password:
            secrets.append(password)
    ss = settings.selfservice  # self-service: the admin token, the bot token, credentials in templates
    for secret in (ss.admin_token, ss.bot_token, *ss.templates.values()):
        if secret is not None:
            secrets.append(secret.get_secret_value())
    return secrets


class LiveRouter:
    """The outbox router over config and stored subscribers, rebuilt when the stored ones change.

    Runs inside the store's transaction for each new event, so it must be cheap:
    the check is one small query; the rebuild happens only after a change.
    """

    def __init__(self, settings: Settings, registry: RegionRegistry, store: StateStore) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self._version: int | None = None
        self._router: Router | None = None
        # Broadcast topics come from the config file only: expanded once, routed before people.
        self._topics = topic_subscribers(topic_bindings(settings, registry))

    def current(self) -> Router:
        version = self.store.subscribers_version()
        if self._router is None or version != self._version:
            subscribers = subscribers_from(self.settings, self.store.subscribers())
            self._router = Router([*self._topics, *subscribers], self.registry)
            self._version = version
            log.info("subscribers loaded", subscribers=len(subscribers), topics=len(self._topics))
        return self._router

    def __call__(self, event: AlertEvent) -> list[OutboxRow]:
        return self.current().route(event)


class ProcessHooks:
    """Fans the daemon's hooks out to metrics and to the operators' channels."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        metrics: Metrics,
        operators: OperatorNotifier,
        runner: StoreRunner | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.settings = settings
        self.store = store
        self.runner = runner or StoreRunner()
        self.metrics = metrics
        self.operators = operators
        self._allowance = {s.name: s.effective_allowance for s in settings.sources}
        self._tasks: set[asyncio.Task[object]] = set()

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def poll_ok(self, source: str, received_wall: float) -> None:
        self.metrics.poll_ok(source, received_wall)

    def poll_failed(self, source: str, error: str) -> None:
        self.metrics.poll_failed(source, error)
        self._spawn(self._maybe_down(source, error))

    def store_failing(self, cause: str) -> None:
        self._spawn(self.operators.store_failing(cause))

    def store_recovered(self, down_seconds: float) -> None:
        self._spawn(self.operators.store_recovered(down_seconds))

    async def _maybe_down(self, source: str, error: str) -> None:
        """Tell operators once when a source has failed longer than its allowance (store work
        on the store thread; a store failure here is already reported by the poll path)."""
        try:
            await self._report_down(source, error)
        except StoreError as exc:
            log.debug("source-down check skipped", source=source, cause=exc.cause)

    async def _report_down(self, source: str, error: str) -> None:
        cursor = await self.runner.call(self.store.cursor, source)
        since = cursor.failing_since
        if since is None or cursor.down_reported:
            return
        allowance = self._allowance.get(source, 60.0)
        down_for = (self.clock.now() - since).total_seconds()
        if down_for >= allowance:
            log.error(
                "source down longer than its allowance",
                source=source,
                down_for=f"{down_for:.0f}s",
                allowance=f"{allowance:.0f}s",
                error=error,
            )
            await self.runner.call(self.store.set_down_reported, source, True)
            self._spawn(self.operators.source_down(source, since, error, allowance))

    def recovered(self, source: str, down_seconds: float) -> None:
        self._spawn(self.operators.source_recovered(source, down_seconds))

    def events(self, events: list[AlertEvent], received_wall: float) -> None:
        self.metrics.events(events, received_wall)


async def run_app(
    settings: Settings,
    registry: RegionRegistry,
    *,
    once: bool = False,
    log_format: str | None = None,
    log_level: str | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    http_socket: socket.socket | None = None,
    init: bool = False,
) -> int:
    """Run the daemon until stopped. ``http_socket``: an already bound listener for the HTTP
    server (tests bind port 0 to learn the port first); default: bind ``settings.http.listen``.
    ``init``: start afresh over an empty or non-database state file (``alertd run --init``)."""
    secrets = settings_secrets(settings)
    setup_logging(
        level=log_level or settings.log_level, fmt=log_format or settings.log_format, secrets=secrets
    )
    # The loop's default executor serves the daemon alone (httpx resolves feed hosts on it, operator
    # notices send on it); whatever visitors of the public page trigger runs in the self-service
    # pool instead (alertd.web.selfservice.visitors), so they can never starve it.
    daemon_pool = ThreadPoolExecutor(max_workers=DAEMON_THREADS, thread_name_prefix="alertd-daemon")
    asyncio.get_running_loop().set_default_executor(daemon_pool)
    store = open_store(settings, daemon=True, init=init)
    runner = StoreRunner()  # the poll path's (and the dispatcher's) store calls, off the loop
    # The one clock of the process: everything below reads the time from it (tests pass a fake one
    # to the pieces they build; alertd.run.clock alone watches the real clocks for steps).
    clock: Clock = SystemClock()
    try:
        started_at = clock.now()
        metrics = Metrics(
            clock=clock.wall,
            outbox_depth=store.outbox_depth,
            sources=[s.name for s in settings.sources if s.enabled],
        )
        instance = instance_name(settings)
        operators = OperatorNotifier(
            [u.get_secret_value() for u in settings.operators.urls],
            settings.operators.language,
            # several instances on one store: each operator notice goes out once, not once each
            once=(lambda key: store.once(key, instance)) if store.shared else None,
            timeout=settings.delivery.timeout,
            clock=clock,
        )
        selfservice = None
        if settings.selfservice.enabled and settings.http.enabled:
            from alertd.web.selfservice import SelfService

            selfservice = SelfService(settings, store, registry, clock=clock.now, monotonic=clock.monotonic)
        hooks = ProcessHooks(settings, store, metrics, operators, runner, clock=clock)
        store_health = StoreHealth(on_outage=hooks.store_failing, on_recovery=hooks.store_recovered)
        dispatcher = Dispatcher(
            store,
            settings,
            hooks=metrics,
            operators=operators,
            footer_for=selfservice.footer_for if selfservice is not None else None,
            guard_for=selfservice.guard_for if selfservice is not None else None,
            store_health=store_health,
            runner=runner,
            clock=clock.now,
            monotonic=clock.monotonic,
        )
        router = LiveRouter(settings, registry, store)
        daemon = Daemon(
            settings,
            registry,
            store,
            router=router,
            hooks=hooks,
            on_commit=dispatcher.wake,
            runner=runner,
            store_health=store_health,
            clock=clock,
        )
        if once:
            try:
                await daemon.poll_all()
                await dispatcher.drain()
            finally:
                await daemon.aclose()
                dispatcher.close()
            return 0
        retention = settings.store
        background: list[Background] = [
            supervised("dispatcher", dispatcher.run),
            lambda stop_event: prune_forever(
                store, runner, retention.retention, retention.prune_interval, stop_event, clock=clock.now
            ),
        ]
        if store.shared:
            background.append(_share(settings, store, instance, daemon, dispatcher, metrics))
        if settings.http.enabled:
            from alertd.web.server import bind_socket, create_app, serve

            try:
                sock = http_socket or bind_socket(settings.http.host, settings.http.port)
            except OSError as exc:
                log.error("cannot listen", listen=settings.http.listen, error=exc.strerror or str(exc))
                return 1
            app = create_app(
                settings=settings,
                store=LiveHealth(store, daemon),  # the store's cursors with this process's latest polls
                store_health=store_health,
                metrics=metrics,
                started_at=started_at,
                clock=clock.now,
                redact=SecretFilter(secrets).scrub,
                shared=(lambda: shared_status(store, instance)) if store.shared else None,
                routes=[
                    *_selfservice_routes(selfservice),
                    *_cap_routes(settings, store, daemon, started_at, clock),
                    *_hook_routes(settings, daemon, metrics, background, clock),
                ],
            )
            if selfservice is not None:
                from alertd.web.selfservice import attach

                attach(app, selfservice)
                log.info("self-service page enabled", public_url=settings.selfservice.public_url)
            background.append(
                lambda stop_event: serve(
                    app, settings.http.host, settings.http.port, stop_event, sock=sock, limits=settings.http
                )
            )
            log.info("http listening", address=settings.http.listen)
        if on_ready is not None:
            on_ready()
        try:
            # The dispatcher's clean stop waits up to the delivery timeout for sends in flight.
            await run_forever(
                daemon, background=background, stop=stop, stop_grace=settings.delivery.timeout + 5
            )
        finally:
            dispatcher.close()
            if selfservice is not None:
                await selfservice.aclose()
        return 0
    finally:
        await asyncio.to_thread(runner.close)
        store.close()


def _share(
    settings: Settings,
    store: StateStore,
    instance: str,
    daemon: Daemon,
    dispatcher: Dispatcher,
    metrics: Metrics,
) -> Background:
    """Several instances on one shared store (README "Two servers"): this instance polls a source
    only while it holds its lease (taken over from a dead holder, then polled at once), keeps its
    outbox claims alive, and looks at the shared outbox every tick for rows other instances wrote."""
    from alertd.run.leases import LeaseKeeper

    keeper = LeaseKeeper(
        store,
        daemon.sources,
        instance,
        on_acquired=lambda cfg: daemon.poll_soon(cfg.name),
        on_tick=dispatcher.wake,
        clock=daemon.clock,
    )
    daemon.may_poll = keeper.holds
    metrics.shared_store(lambda: (store.leases(), store.claims()), instance)
    log.info("shared store", instance=instance, store=store.location, claim_lease=settings.store.claim_lease)
    return keeper.run


def shared_status(store: StateStore, instance: str) -> dict[str, Any]:
    """Who holds which poll lease and how many outbox rows each instance has claimed (/healthz, status)."""
    return {
        "this": instance,
        "leases": {
            lease.source: {"holder": lease.holder, "until": iso_utc(lease.until), "live": lease.live}
            for lease in store.leases()
        },
        "claimed": store.claims(),
    }


def supervised(
    name: str, run: Callable[[asyncio.Event], Awaitable[None]], *, first_delay: float = 1.0
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """``run`` restarted whenever it dies (raises, or returns before ``stop``), with a log line each time.

    The dispatcher is the process's reason to exist: a bug or an unexpected error
    in it must cost a restart of the task (backed off up to 30 s), never silence
    until someone restarts the daemon.
    """

    async def supervise(stop: asyncio.Event) -> None:
        delay = first_delay
        while True:
            try:
                await run(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "task died; restarting", task=name, error=f"{type(exc).__name__}: {exc}", retry_in=delay
                )
            else:
                if stop.is_set():
                    return
                log.error("task stopped by itself; restarting", task=name, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            delay = min(30.0, delay * 2)

    return supervise


def _cap_routes(
    settings: Settings, store: StateStore, daemon: Daemon, started_at: datetime, clock: Clock
) -> Sequence[BaseRoute]:
    """``/cap/alerts.atom`` and ``/cap/<identifier>.xml`` when ``[cap_out] enabled`` (alertd.web.cap)."""
    if not settings.cap_out.enabled:
        return []
    from alertd.web.cap import cap_routes

    log.info("CAP feed enabled", path="/cap/alerts.atom")
    # the daemon's registry, not the start-up one: it learns upstream region ids daily
    return cap_routes(
        settings.cap_out,
        store,
        lambda code: daemon.registry.source_ids_of(code),
        started_at=started_at,
        clock=clock.now,
        monotonic=clock.monotonic,
    )


def _hook_routes(
    settings: Settings, daemon: Daemon, metrics: Metrics, background: list[Background], clock: Clock
) -> Sequence[BaseRoute]:
    """``/hooks/ukrainealarm/<secret>`` for sources with a webhook_secret (alertd.web.hooks), and
    the watch that returns their polling to normal when pushes stop (alertd.run.push)."""
    pushing = [s for s in daemon.sources if s.webhook_secret is not None]
    if not pushing:
        return []
    from alertd.run.push import PushControl
    from alertd.web.hooks import hook_routes

    control = PushControl(pushing, daemon, metrics, clock=clock.monotonic)
    background.append(control.run)
    log.info("push endpoint enabled", sources=[s.name for s in pushing], path="/hooks/ukrainealarm/<secret>")
    return hook_routes(settings.webhooks, pushing, daemon, control, metrics, clock=clock)


def _selfservice_routes(selfservice: object | None) -> Sequence[BaseRoute]:
    """The residents' page and API routes, when self-service is enabled (alertd.web.selfservice)."""
    if selfservice is None:
        return []
    from alertd.web.selfservice import routes

    return routes()
