"""``/hooks/ukrainealarm/<secret>``: ukrainealarm.com pushes (webhooks) received on the HTTP server.

The upstream does not sign its requests, so the path holds an unguessable per-source
secret (``[[sources]] webhook_secret``); a wrong secret is a plain 404. A push body is
one ``AlertRegionModel`` — the whole state of one region after a change:

* bodies are bounded (``[webhooks] max_body``, else 413) and parsed by
  :func:`alertd.sources.ukrainealarm.parse_webhook`; a bad body gets 400 and changes nothing;
* a good one announces its **starts** at once (:mod:`alertd.core.push`) and triggers an
  immediate poll of the source; its **ends** wait for real polls (no false all-clear from a
  forged or stale push);
* polling of the source slows while pushes arrive (:mod:`alertd.run.push`).

``GET`` on the same path answers a small JSON status (for ``alertd webhooks status``):
pushes received, seconds since the last one, whether polling is slowed. It needs the secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alertd.config import SourceConfig, WebhooksConfig
from alertd.core.clock import SYSTEM_CLOCK, Clock
from alertd.core.model import AlertEvent, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import ParseError
from alertd.logs import get_logger
from alertd.run.push import PushControl
from alertd.sources.ukrainealarm import parse_webhook
from alertd.web.body import BodyTooLarge, read_bounded

__all__ = ["HOOK_PATH", "hook_routes"]

log = get_logger(__name__)

#: The path a ukrainealarm source's pushes arrive at; ``{secret}`` is its webhook_secret.
HOOK_PATH = "/hooks/ukrainealarm/{secret}"


class PushDaemon(Protocol):
    registry: RegionRegistry

    async def push(self, cfg: SourceConfig, snapshot: Snapshot, received_wall: float) -> list[AlertEvent]: ...


class PushMetrics(Protocol):
    def pushed(self, source: str, outcome: str) -> None: ...
    def push_events(self, events: list[AlertEvent], received_wall: float) -> None: ...


def hook_routes(
    cfg: WebhooksConfig,
    sources: Sequence[SourceConfig],
    daemon: PushDaemon,
    control: PushControl,
    metrics: PushMetrics,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> list[Route]:
    """The push route for every ukrainealarm source with a ``webhook_secret`` (none: no route).

    ``clock`` stamps when a push arrived (its detection latency is measured from there)."""
    pushing = [s for s in sources if s.type == "ukrainealarm" and s.webhook_secret is not None]
    if not pushing:
        return []
    counts = {s.name: 0 for s in pushing}

    def lookup(secret: str) -> SourceConfig | None:
        found = None
        for source in pushing:  # compare with every secret, in constant time each
            assert source.webhook_secret is not None
            if hmac.compare_digest(source.webhook_secret.get_secret_value().encode(), secret.encode()):
                found = source
        return found

    async def receive(request: Request) -> Response:
        source = lookup(request.path_params["secret"])
        if source is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        if request.method == "GET":
            age = control.last_push_age(source.name)
            return JSONResponse(
                {
                    "source": source.name,
                    "pushes": counts[source.name],
                    "last_push_seconds_ago": None if age is None else round(age, 1),
                    "polling": "slowed" if control.slowed(source.name) else "normal",
                    "interval": source.push_interval if control.slowed(source.name) else source.interval,
                },
                headers={"Cache-Control": "no-store"},
            )
        received_wall = clock.wall()
        try:
            body = await read_bounded(request, cfg.max_body)
        except BodyTooLarge:
            metrics.pushed(source.name, "too_large")
            log.warning("push rejected", source=source.name, reason=f"body over {cfg.max_body} bytes")
            return Response("body too large\n", status_code=413, media_type="text/plain")
        try:
            _, snapshot = parse_webhook(body, source=source.name, registry=daemon.registry, where="push")
        except ParseError as exc:
            metrics.pushed(source.name, "rejected")
            log.warning("push rejected", source=source.name, reason=exc.reason)
            return Response(f"bad push: {exc.reason}\n", status_code=400, media_type="text/plain")
        for warning in snapshot.warnings:
            log.warning("push warning", source=source.name, warning=warning)
        counts[source.name] += 1
        metrics.pushed(source.name, "accepted")
        control.pushed(source.name)
        events = await daemon.push(source, snapshot, received_wall)
        metrics.push_events(events, received_wall)
        log.debug("push accepted", source=source.name, alerts=len(snapshot.alerts), started=len(events))
        return JSONResponse({"accepted": True, "started": len(events)})

    return [Route(HOOK_PATH, receive, methods=["GET", "POST"])]
