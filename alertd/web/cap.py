"""``GET /cap/alerts.atom`` and ``GET /cap/<identifier>.xml``: alertd's alerts as CAP 1.2 for others.

The shell around :mod:`alertd.core.cap_out`: it reads events through the store
(recent events, the start events of active alerts), lets the pure renderer make the
bytes, and speaks HTTP caching (``ETag`` / ``If-None-Match``, ``Last-Modified`` /
``If-Modified-Since``, ``Cache-Control``) so aggregators can poll it cheaply.
Handlers are ``async`` like every handler on this server: the store's SQLite
connection belongs to the event loop's thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alertd.config import CapOutConfig
from alertd.core.cap_out import (
    CapProfile,
    etag_of,
    feed_events,
    identifier,
    render_index,
    render_message,
    start_event_of,
    start_id,
)
from alertd.core.model import AlertEvent
from alertd.core.tracker import Active

__all__ = ["CapReadStore", "cap_routes"]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
CAP_TYPE = "application/cap+xml; charset=utf-8"
_IDENT = re.compile(r"^alertd-([0-9a-f]{24})$")
#: Seconds a rendered index is served before it is rendered again.
INDEX_TTL = 1.0


class CapReadStore(Protocol):
    """What the CAP feed reads from the store."""

    def events_since(self, since: datetime) -> list[AlertEvent]: ...
    def event(self, event_id: str) -> AlertEvent | None: ...
    def active_alerts(self) -> list[Active]: ...


def _feed(store: CapReadStore, now: datetime, window: timedelta) -> list[AlertEvent]:
    """The events the index lists, with start events looked up (or rebuilt) for every alert."""
    recent = store.events_since(now - window)
    active = store.active_alerts()
    starts: dict[str, AlertEvent] = {}
    for alert in active:
        starts[alert.start_event_id] = store.event(alert.start_event_id) or start_event_of(alert)
    for event in recent:
        sid = start_id(event)
        if sid is not None and sid not in starts:
            starts[sid] = store.event(sid) or start_event_of(event)
    return feed_events(recent, starts, [a.start_event_id for a in active], now, window)


def _not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match wins over If-Modified-Since."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return etag in tags or "*" in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return last_modified.replace(microsecond=0) <= since
    return False


def _respond(
    request: Request, body: bytes, media_type: str, last_modified: datetime, max_age: int
) -> Response:
    etag = etag_of(body)
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified.astimezone(UTC), usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
    }
    if _not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def cap_routes(
    cfg: CapOutConfig,
    store: CapReadStore,
    place_ids: Callable[[str], Sequence[tuple[str, str]]],
    *,
    started_at: datetime,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> list[Route]:
    """The two CAP routes; ``place_ids(code)`` gives a region's upstream ids (the region registry)."""
    window = timedelta(seconds=cfg.window)

    def profile(request: Request) -> CapProfile:
        base = cfg.public_url or str(request.base_url)
        return CapProfile(sender=cfg.sender, base_url=base.rstrip("/"))

    # The index rendered at most once per INDEX_TTL per base URL: however hard aggregators
    # poll, the store reads and rendering stay off the event loop's critical path (polls and
    # delivery share that loop; DESIGN §10).
    rendered: dict[str, tuple[float, bytes, datetime]] = {}

    async def index(request: Request) -> Response:
        prof = profile(request)
        hit = rendered.get(prof.base_url)
        now = monotonic()
        if hit is None or now - hit[0] >= INDEX_TTL:
            events = _feed(store, clock(), window)
            updated = max((e.observed_at for e in events), default=started_at)
            hit = (now, render_index(events, prof, updated=updated), updated)
            rendered.clear()  # one base URL in practice; never a growing map
            rendered[prof.base_url] = hit
        return _respond(request, hit[1], ATOM_TYPE, hit[2], cfg.max_age)

    async def message(request: Request) -> Response:
        ident = request.path_params["identifier"]
        m = _IDENT.match(ident)
        if m is None:
            return Response("no such CAP message\n", status_code=404, media_type="text/plain")
        event = store.event(m.group(1))
        if event is None:  # a start recorded but never announced: rebuilt, listed in the index
            event = next((e for e in _feed(store, clock(), window) if identifier(e) == ident), None)
        if event is None:
            return Response("no such CAP message\n", status_code=404, media_type="text/plain")
        sid = start_id(event)
        start = None
        if sid is not None and sid != event.id:
            start = store.event(sid) or start_event_of(event)
        body = render_message(event, profile(request), start=start, place_ids=place_ids)
        # a message never changes once sent: readers may keep it
        return _respond(request, body, CAP_TYPE, event.observed_at, 3600)

    return [
        Route("/cap/alerts.atom", index, methods=["GET"]),
        Route("/cap/{identifier}.xml", message, methods=["GET"]),
    ]
