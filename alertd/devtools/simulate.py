"""A local stand-in for the Ukrainian alert upstreams, for tests, ``alertd demo`` and benchmarks.

:class:`Upstream` is a small threaded HTTP server on ``127.0.0.1`` that answers like
alerts.in.ua and ukrainealarm.com from one scripted, in-memory alert state::

    with Upstream(token="t0ken") as up:
        up.add_alert(31)                      # air raid in Kyiv city (alerts.in.ua uid 31)
        ...                                   # point alertd at up.alerts_in_ua_url / up.ukrainealarm_url
        up.set_fault("http500", count=2)      # the next two requests (any endpoint) fail
        up.clear_alert(31)
        assert up.requests("alerts_in_ua")[-1].headers["authorization"] == "Bearer t0ken"

Endpoints (real shapes, see ``alertd/sources/alerts_in_ua.py`` and ``ukrainealarm.py``):

* ``GET /v1/alerts/active.json`` — alerts.in.ua. Needs ``Authorization: Bearer <token>``
  (else 401 with a JSON error). Sends ``ETag`` and ``Last-Modified`` and answers a
  matching ``If-None-Match`` (or, without one, an ``If-Modified-Since`` not older than
  the state) with 304.
* ``GET /api/v3/alerts`` — ukrainealarm: a list of AlertRegionModel with ``activeAlerts``.
* ``GET /api/v3/alerts/status`` — ukrainealarm: ``{"lastActionIndex": N}``; N grows by
  one on every state change. Both ukrainealarm endpoints need the raw
  ``Authorization: <token>`` header.
* ``POST|PATCH|DELETE /api/v3/webhook`` — ukrainealarm's webhook registration
  (``{"webHookUrl": ...}``, same token); :meth:`Upstream.push` then POSTs a region's
  whole state (one AlertRegionModel) to every registered URL, as the real one does on a change.

Faults (:meth:`Upstream.set_fault`), for one endpoint or all, for the next N requests
or until cleared: ``http500``, ``http429`` (``Retry-After``), ``garbage`` (random
bytes), ``empty_body``, ``truncated`` (valid JSON cut in half), ``html200`` (an HTML
error page with status 200), ``timeout`` (answers only after ``timeout_delay``
seconds), ``trickle`` (headers at once, then the body one byte at a time, each
``trickle_delay`` apart) and ``empty_list`` (a valid payload without alerts; the
status index is not touched by it).

Every request is recorded (:meth:`Upstream.requests`): path, endpoint, headers,
arrival time and the time the response was sent (``time.time()`` both), so tests can
check conditional requests, auth headers, call order and measure latency.

Run it as a process with ``python -m alertd.devtools.simulate --port 0``: it prints its URL.

:class:`Sink` plays the other end: a local notification service on ``127.0.0.1``
recording what Apprise ``json://`` channels post to it (one path per channel).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from alertd.core.model import AlertKind, Region, RegionLevel, iso_utc
from alertd.core.regions import RegionRegistry
from alertd.sources import REGISTRY, alerts_in_ua, ukrainealarm

__all__ = [
    "ENDPOINTS",
    "FAULT_MODES",
    "Fault",
    "Received",
    "RecordedRequest",
    "SimAlert",
    "Sink",
    "Upstream",
    "main",
]


def _path(url: str | None) -> str:
    if url is None:  # pragma: no cover - the Ukrainian specs have all three URLs
        raise ValueError("a simulated endpoint needs its upstream's URL")
    return urlsplit(url).path


#: Endpoint name → path, taken from the sources' own specs so the stand-in serves what alertd asks for.
#: Faults and the request log use the names.
ENDPOINTS: dict[str, str] = {
    "alerts_in_ua": _path(alerts_in_ua.SPEC.default_url),
    "ukrainealarm": _path(ukrainealarm.SPEC.default_url),
    "ukrainealarm_status": _path(ukrainealarm.status_url(ukrainealarm.DEFAULT_URL)),
    "ukrainealarm_regions": _path(ukrainealarm.regions_url(ukrainealarm.DEFAULT_URL)),
    "ukrainealarm_webhook": "/api/v3/webhook",  # webhook registration (not polled, so not in the spec)
}
_PATH_TO_ENDPOINT = {path: name for name, path in ENDPOINTS.items()}

FaultMode = Literal[
    "http500",
    "http429",
    "garbage",
    "empty_body",
    "truncated",
    "html200",
    "timeout",
    "trickle",
    "empty_list",
    "redirect",
]
FAULT_MODES: frozenset[str] = frozenset(FaultMode.__args__)  # type: ignore[attr-defined]

#: alertd kind → the upstreams' names for it.
_AIU_TYPES = {kind: name for name, kind in alerts_in_ua.ALERT_TYPES.items()}
_UA_TYPES = {kind: name for name, kind in ukrainealarm.ALERT_TYPES.items()}
_UA_REGION_TYPES = {
    RegionLevel.OBLAST: "State",
    RegionLevel.RAION: "District",
    RegionLevel.HROMADA: "Community",
    RegionLevel.CITY: "Community",
}
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
)
_DISCLAIMER = "Simulated by alertd.devtools.simulate for local testing; not real alert data."


def _kind(value: str | AlertKind) -> AlertKind:
    """An alertd kind from its own name or an upstream's (``artillery_shelling``, ``AIR``)."""
    if isinstance(value, AlertKind):
        return value
    if value in alerts_in_ua.ALERT_TYPES:
        return alerts_in_ua.ALERT_TYPES[value]
    if value in ukrainealarm.ALERT_TYPES:
        return ukrainealarm.ALERT_TYPES[value]
    return AlertKind(value)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SimAlert:
    """One simulated active alert.

    ``location_uid`` is the alerts.in.ua uid (for oblasts it is also the ukrainealarm
    regionId; below oblasts the registry's ukrainealarm id is used where it has one).
    ``feeds`` says which upstreams report it, so a test can let one source lag behind.
    """

    location_uid: str | int
    kind: str | AlertKind = AlertKind.AIR_RAID
    started_at: datetime | None = None
    feeds: frozenset[str] = frozenset({"alerts_in_ua", "ukrainealarm"})
    id: int | None = None  # alerts.in.ua alert id; assigned when the alert is added

    @property
    def uid(self) -> str:
        return str(self.location_uid)

    @property
    def alert_kind(self) -> AlertKind:
        return _kind(self.kind)

    @property
    def key(self) -> tuple[str, AlertKind]:
        return (self.uid, self.alert_kind)


@dataclass
class Fault:
    """A fault mode applied to requests of ``endpoint`` (None: every endpoint).

    ``remaining`` None means until cleared; a number counts down per request served.
    """

    mode: str
    endpoint: str | None = None
    remaining: int | None = None


@dataclass
class RecordedRequest:
    """One request as the upstream saw it. Header names are lower-case."""

    method: str
    path: str
    endpoint: str | None
    headers: dict[str, str]
    time: float  # time.time() when the request line was read
    status: int | None = None
    fault: str | None = None
    sent_at: float | None = None  # time.time() once the response body was written (None: never)


@dataclass
class _State:
    alerts: dict[tuple[str, AlertKind], SimAlert] = field(default_factory=dict)
    index: int = 1000
    changed_at: datetime = field(default_factory=_now)


class Upstream:
    """The simulated upstreams; thread-safe, usable as a context manager.

    ``token`` is required by every endpoint (``ukrainealarm_token`` overrides it for
    ukrainealarm); None disables the check. ``timeout_delay`` is how long the
    ``timeout`` fault stalls (longer than the client's timeout, please), ``retry_after``
    the ``Retry-After`` value of the ``http429`` fault, ``redirect_to`` the base URL the
    ``redirect`` fault sends clients to (302, same path; e.g. another stand-in's ``url``).
    """

    def __init__(
        self,
        *,
        token: str | None = "sim-token",
        ukrainealarm_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: RegionRegistry | None = None,
        timeout_delay: float = 3.0,
        trickle_delay: float = 0.3,
        retry_after: str = "2",
        redirect_to: str | None = None,
    ) -> None:
        self.token = token
        self.ukrainealarm_token = ukrainealarm_token if ukrainealarm_token is not None else token
        self.timeout_delay = timeout_delay
        self.trickle_delay = trickle_delay
        self.retry_after = retry_after
        self.redirect_to = redirect_to
        self.registry = registry or RegionRegistry.load()
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._state = _State()
        self._faults: list[Fault] = []
        self._log: list[RecordedRequest] = []
        self._ids = itertools.count(100_000)
        self._stopping = threading.Event()
        self._webhooks: list[str] = []  # URLs registered with POST /api/v3/webhook
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Upstream:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="alertd-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled (``timeout``/``trickle``) answers are cut short."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("Upstream is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    @property
    def alerts_in_ua_url(self) -> str:
        return self.url + ENDPOINTS["alerts_in_ua"]

    @property
    def ukrainealarm_url(self) -> str:
        return self.url + ENDPOINTS["ukrainealarm"]

    # -- alert state -------------------------------------------------------------------
    def set_alerts(self, alerts: Iterable[SimAlert]) -> None:
        """Replace the whole state (one state change)."""
        with self._lock:
            self._state.alerts = {}
            for alert in alerts:
                alert = self._complete(alert)
                self._state.alerts[alert.key] = alert
            self._changed()

    def add_alert(
        self,
        location_uid: str | int,
        kind: str | AlertKind = AlertKind.AIR_RAID,
        started_at: datetime | None = None,
        *,
        feeds: Iterable[str] | None = None,
    ) -> SimAlert:
        """Start (or replace) the alert of ``kind`` at ``location_uid``; returns it as served."""
        alert = SimAlert(location_uid, kind, started_at)
        if feeds is not None:
            alert = replace(alert, feeds=frozenset(feeds))
        with self._lock:
            alert = self._complete(alert)
            self._state.alerts[alert.key] = alert
            self._changed()
        return alert

    def clear_alert(self, location_uid: str | int, kind: str | AlertKind = AlertKind.AIR_RAID) -> bool:
        """End one alert; False if it was not active."""
        with self._lock:
            removed = self._state.alerts.pop((str(location_uid), _kind(kind)), None)
            if removed is not None:
                self._changed()
            return removed is not None

    def clear_alerts(self) -> None:
        self.set_alerts(())

    @property
    def alerts(self) -> list[SimAlert]:
        with self._lock:
            return list(self._state.alerts.values())

    @property
    def status_index(self) -> int:
        """ukrainealarm's ``lastActionIndex`` right now."""
        with self._lock:
            return self._state.index

    def _complete(self, alert: SimAlert) -> SimAlert:
        """Fill the id and start time, with seconds precision (as the upstreams send them)."""
        started = (alert.started_at or _now()).astimezone(UTC).replace(microsecond=0)
        return replace(
            alert,
            location_uid=alert.uid,
            kind=alert.alert_kind,
            started_at=started,
            id=alert.id if alert.id is not None else next(self._ids),
        )

    def _changed(self) -> None:
        self._state.index += 1
        self._state.changed_at = _now()

    # -- faults ------------------------------------------------------------------------
    def set_fault(self, mode: str, endpoint: str | None = None, count: int | None = None) -> None:
        """Apply ``mode`` to ``endpoint`` (a name from :data:`ENDPOINTS`, or None for all)
        for the next ``count`` requests (None: until :meth:`clear_faults`).

        Faults set later take precedence over earlier ones for the same request.
        """
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {sorted(FAULT_MODES)}")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS)}")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 or None")
        with self._lock:
            self._faults.append(Fault(mode, endpoint, count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str) -> str | None:
        with self._lock:
            for fault in reversed(self._faults):
                if fault.endpoint not in (None, endpoint):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault.mode
        return None

    # -- request log -------------------------------------------------------------------
    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """Requests seen so far, oldest first; ``endpoint`` filters by name (or path)."""
        with self._lock:
            log = list(self._log)
        if endpoint is None:
            return log
        return [r for r in log if endpoint in (r.endpoint, r.path)]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    # -- payloads ----------------------------------------------------------------------
    def _snapshot(self) -> tuple[list[SimAlert], int, datetime]:
        with self._lock:
            alerts = sorted(self._state.alerts.values(), key=lambda a: (a.started_at, a.uid, a.alert_kind))
            return alerts, self._state.index, self._state.changed_at

    def _region(self, uid: str) -> Region | None:
        return self.registry.by_source_id("alerts_in_ua", uid)

    def _alerts_in_ua_item(self, alert: SimAlert) -> dict[str, Any]:
        region = self._region(alert.uid)
        started = _aiu_time(alert.started_at)  # type: ignore[arg-type]
        item: dict[str, Any] = {
            "id": alert.id,
            "location_title": region.name_uk if region else f"Громада {alert.uid}",
            "location_type": str(region.level) if region else "hromada",
            "started_at": started,
            "finished_at": None,
            "updated_at": started,
            "alert_type": _AIU_TYPES.get(alert.alert_kind, str(alert.alert_kind)),
            "location_uid": alert.uid,
            "location_oblast": None,
            "location_oblast_uid": None,
            "location_raion": None,
            "notes": None,
            "calculated": None,
            "country": None,
        }
        if region is not None and region.oblast:
            oblast = self.registry.get(region.oblast)
            oblast_ids = [
                sid for src, sid in self.registry.source_ids_of(region.oblast) if src == "alerts_in_ua"
            ]
            if oblast is not None:
                item["location_oblast"] = oblast.name_uk
            if oblast_ids:
                item["location_oblast_uid"] = int(oblast_ids[0])
            raion = next((r for r in self.registry.ancestors(region) if r.level is RegionLevel.RAION), None)
            if raion is not None:
                item["location_raion"] = raion.name_uk
        return item

    def alerts_in_ua_body(self, *, empty: bool = False) -> bytes:
        """The ``/v1/alerts/active.json`` body for the current state."""
        alerts, _, changed_at = self._snapshot()
        data = {
            "alerts": []
            if empty
            else [self._alerts_in_ua_item(a) for a in alerts if "alerts_in_ua" in a.feeds],
            "meta": {"last_updated_at": changed_at.strftime("%Y/%m/%d %H:%M:%S +0000"), "type": "full"},
            "disclaimer": _DISCLAIMER,
        }
        return json.dumps(data, ensure_ascii=False).encode()

    def _ukrainealarm_region(self, uid: str) -> tuple[str, Region | None]:
        region = self._region(uid)
        if region is None:
            return uid, None
        ids = [sid for src, sid in self.registry.source_ids_of(region.code) if src == "ukrainealarm"]
        return (ids[0] if ids else uid), region

    def ukrainealarm_body(self, *, empty: bool = False) -> bytes:
        """The ``/api/v3/alerts`` body for the current state."""
        alerts, _, _ = self._snapshot()
        regions: dict[str, dict[str, Any]] = {}
        for alert in [] if empty else alerts:
            if "ukrainealarm" not in alert.feeds:
                continue
            region_id, region = self._ukrainealarm_region(alert.uid)
            region_type = _UA_REGION_TYPES.get(region.level, "Community") if region else "Community"
            stamp = iso_utc(alert.started_at)  # ukrainealarm's format is alertd's own ISO form
            entry = regions.setdefault(
                region_id,
                {
                    "regionId": region_id,
                    "regionType": region_type,
                    "regionName": region.name_uk if region else "",
                    "regionEngName": region.name_en if region else "",
                    "lastUpdate": stamp,
                    "activeAlerts": [],
                },
            )
            entry["lastUpdate"] = max(entry["lastUpdate"], stamp)
            entry["activeAlerts"].append(
                {
                    "regionId": region_id,
                    "regionType": region_type,
                    "type": _UA_TYPES.get(alert.alert_kind, "UNKNOWN"),
                    "lastUpdate": stamp,
                }
            )
        return json.dumps(list(regions.values()), ensure_ascii=False).encode()

    def regions_body(self) -> bytes:
        """The ``/api/v3/regions`` body: the registry's places as ukrainealarm's nested tree."""

        def node(region: Region) -> dict[str, Any]:
            ids = [
                sid
                for src, sid in self.registry.source_ids_of(region.code)
                if src in ("ukrainealarm", "alerts_in_ua")
            ]
            entry: dict[str, Any] = {
                "regionId": ids[0] if ids else region.code,
                "regionName": region.name_uk,
                "regionType": _UA_REGION_TYPES.get(region.level, "Community"),
            }
            children = [c for c in self.registry.children(region.code) if c.level is not RegionLevel.CITY]
            if children or region.level in (RegionLevel.OBLAST, RegionLevel.RAION):
                entry["regionChildIds"] = [node(c) for c in children]
            return entry

        return json.dumps({"states": [node(o) for o in self.registry.oblasts()]}, ensure_ascii=False).encode()

    def status_body(self) -> bytes:
        _, index, _ = self._snapshot()
        return json.dumps({"lastActionIndex": index}).encode()

    # -- webhooks ----------------------------------------------------------------------
    @property
    def webhooks(self) -> list[str]:
        """The webhook URLs registered now."""
        with self._lock:
            return list(self._webhooks)

    def webhook_body(self, location_uid: str | int) -> bytes:
        """What a push for ``location_uid`` carries: its region's whole state (AlertRegionModel)."""
        region_id, region = self._ukrainealarm_region(str(location_uid))
        for entry in json.loads(self.ukrainealarm_body()):
            if entry["regionId"] == region_id:
                return json.dumps(entry, ensure_ascii=False).encode()
        empty = {
            "regionId": region_id,
            "regionType": _UA_REGION_TYPES.get(region.level, "Community") if region else "Community",
            "regionName": region.name_uk if region else "",
            "regionEngName": region.name_en if region else "",
            "lastUpdate": iso_utc(_now()),
            "activeAlerts": [],
        }
        return json.dumps(empty, ensure_ascii=False).encode()

    def push(self, location_uid: str | int, body: bytes | None = None, timeout: float = 5.0) -> list[int]:
        """POST the region's state (or ``body``) to every registered webhook; their HTTP statuses."""
        payload = self.webhook_body(location_uid) if body is None else body
        statuses = []
        for url in self.webhooks:
            request = urllib.request.Request(
                url, data=payload, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    statuses.append(resp.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        return statuses

    def _webhook_request(self, handler: BaseHTTPRequestHandler, record: RecordedRequest) -> None:
        """POST registers, PATCH replaces the registration, DELETE removes it (body: WebHookModel)."""
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            url = json.loads(handler.rfile.read(length) or b"{}").get("webHookUrl")
        except (ValueError, AttributeError):
            url = None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            self._send(handler, record, 400, _json({"message": "webHookUrl required"}))
            return
        with self._lock:
            if handler.command == "POST" and url not in self._webhooks:
                self._webhooks.append(url)
            elif handler.command == "PATCH":
                self._webhooks = [url]
            elif handler.command == "DELETE":
                self._webhooks = [u for u in self._webhooks if u != url]
        self._send(handler, record, 200, b"", "text/plain")

    # -- request handling (called from the server's threads) ---------------------------
    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        endpoint = _PATH_TO_ENDPOINT.get(path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = RecordedRequest(handler.command, path, endpoint, headers, time.time())
        self._record(record)
        if endpoint is None:
            self._send(handler, record, 404, _json({"message": "Not found"}))
            return
        expected = _auth_value("alerts_in_ua", self.token) if endpoint == "alerts_in_ua" else None
        if endpoint != "alerts_in_ua":
            expected = _auth_value("ukrainealarm", self.ukrainealarm_token)
        if expected is not None and headers.get("authorization") != expected:
            self._send(handler, record, 401, _json({"message": "API token required or invalid"}))
            return
        if (handler.command == "GET") != (endpoint != "ukrainealarm_webhook"):
            self._send(handler, record, 405, _json({"message": "Method not allowed"}))
            return
        if endpoint == "ukrainealarm_webhook":
            self._webhook_request(handler, record)
            return
        fault = self._take_fault(endpoint)
        record.fault = fault
        if fault == "timeout":
            if self._stopping.wait(self.timeout_delay):
                return
            fault = None  # then answer normally: the client has long given up
        if fault == "http500":
            self._send(handler, record, 500, b"Internal Server Error", "text/plain")
            return
        if fault == "redirect":
            if self.redirect_to is None:
                raise ValueError("the redirect fault needs Upstream(redirect_to=...)")
            target = self.redirect_to.rstrip("/") + handler.path
            self._send(handler, record, 302, b"", "text/plain", extra={"Location": target})
            return
        if fault == "http429":
            body = _json({"message": "Too many requests"})
            self._send(handler, record, 429, body, extra={"Retry-After": self.retry_after})
            return
        if fault == "garbage":
            self._send(handler, record, 200, os.urandom(512))
            return
        if fault == "empty_body":
            self._send(handler, record, 200, b"")
            return
        if fault == "html200":
            self._send(handler, record, 200, _HTML_PAGE, "text/html; charset=utf-8")
            return

        empty = fault == "empty_list"
        extra: dict[str, str] = {}
        if endpoint == "alerts_in_ua":
            body = self.alerts_in_ua_body(empty=empty)
            _, _, changed_at = self._snapshot()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            extra = {"ETag": etag, "Last-Modified": format_datetime(changed_at, usegmt=True)}
            if fault is None and _not_modified(headers, etag, changed_at):
                self._send(handler, record, 304, b"", extra=extra)
                return
        elif endpoint == "ukrainealarm":
            body = self.ukrainealarm_body(empty=empty)
            extra = {"Last-Modified": format_datetime(self._snapshot()[2], usegmt=True)}
        elif endpoint == "ukrainealarm_regions":
            body = self.regions_body()
        else:
            body = self.status_body()
        if fault == "truncated":
            body = body[: len(body) // 2]
        self._send(handler, record, 200, body, extra=extra, trickle=fault == "trickle")

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        record: RecordedRequest,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        *,
        extra: Mapping[str, str] | None = None,
        trickle: bool = False,
    ) -> None:
        record.status = status
        try:
            handler.send_response(status)
            if status != 304:
                handler.send_header("Content-Type", content_type)
                handler.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            if trickle:
                for i in range(len(body)):
                    handler.wfile.write(body[i : i + 1])
                    handler.wfile.flush()
                    if self._stopping.wait(self.trickle_delay):
                        return
            elif status != 304:
                handler.wfile.write(body)
            handler.wfile.flush()
            record.sent_at = time.time()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True


def _auth_value(source_type: str, token: str | None) -> str | None:
    """The Authorization value the real upstream expects, built by the source's own spec."""
    auth = REGISTRY[source_type].auth
    if token is None or auth is None:
        return None
    return auth.headers(token).get("Authorization")


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _aiu_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _not_modified(headers: Mapping[str, str], etag: str, changed_at: datetime) -> bool:
    """RFC 9110 precedence: If-None-Match decides when present, else If-Modified-Since."""
    if "if-none-match" in headers:
        tags = [t.strip() for t in headers["if-none-match"].split(",")]
        return etag in tags or "*" in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            return changed_at <= parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
    return False


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up (a closed keep-alive connection, a timeout) is normal here, not a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _make_handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real upstreams (and pooled clients) use
        server_version = "alertd-sim"
        timeout = 60  # an idle keep-alive connection does not hold a thread forever

        def do_GET(self) -> None:
            upstream._respond(self)

        do_POST = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is the record; stderr stays quiet in tests

    return Handler


# -- the delivery side: a local notification service ------------------------------------


@dataclass(frozen=True)
class Received:
    """One post the :class:`Sink` saw, whatever it answered."""

    path: str
    payload: dict[str, Any]
    status: int  # what the sink answered
    at: float  # time.time() when the request arrived
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.payload.get("title", ""))

    @property
    def message(self) -> str:
        return str(self.payload.get("message", ""))

    @property
    def type(self) -> str:
        """Apprise's notify type: info | success | warning | failure."""
        return str(self.payload.get("type", ""))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _SinkServer(_QuietServer):
    daemon_threads = True  # a slow request must never keep the process alive
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when a fan-out opens dozens of connections at
    # once; the kernel then drops the SYN and the client retries a second later, which looks
    # like a slow delivery that alertd never caused.
    request_queue_size = 256
    sink: Sink


class _SinkHandler(BaseHTTPRequestHandler):
    server: _SinkServer

    def do_POST(self) -> None:
        self.server.sink._handle(self)

    do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the received list is the record


class Sink:
    """A local notification service: records what Apprise ``json://`` channels post to it.

    A threaded HTTP server on ``127.0.0.1`` (a free port unless given). Give each
    channel its own path; every post is kept as a :class:`Received` (path, parsed
    JSON with title/message/type, arrival ``time.time()``)::

        with Sink(on_message=lambda r: print(r.path, r.title)) as sink:
            url = sink.url("olena")              # json://127.0.0.1:PORT/olena
            ...                                  # a subscriber with that URL
            sink.wait_for(2, path="/olena")

    Thread-safe: posts arrive on server threads. ``on_message`` is called on the
    server thread after each post is recorded; an exception from it is ignored
    (it must not turn a delivery into a failure). Subclasses can vary the answer
    per path by overriding :meth:`_answer`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_message: Callable[[Received], object] | None = None,
    ) -> None:
        self.on_message = on_message
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._received: list[Received] = []
        self._server = _SinkServer((host, port), _SinkHandler)
        self._server.sink = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Sink:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="alertd-sink",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()  # only while serve_forever runs: it would wait forever otherwise
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/", scheme: str = "json", query: str = "") -> str:
        """The Apprise URL of one channel on this sink, e.g. ``json://127.0.0.1:PORT/olena``."""
        path = path if path.startswith("/") else "/" + path
        return f"{scheme}://{self.host}:{self.port}{path}" + (f"?{query}" if query else "")

    # -- reading -----------------------------------------------------------------------
    def received(self, path: str | None = None, *, delivered: bool = False) -> list[Received]:
        """Posts seen (on ``path``), oldest first; ``delivered`` keeps only those answered 2xx."""
        with self._lock:
            return self._matching(path, delivered)

    def wait_for(
        self, count: int, timeout: float = 10.0, *, path: str | None = None, delivered: bool = False
    ) -> list[Received]:
        """Block until at least ``count`` matching posts arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = self._matching(path, delivered)
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{type(self).__name__}: expected {count} request(s) on {path or 'any path'}, "
                        f"got {len(matching)}"
                    )
                self._cond.wait(remaining)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def _matching(self, path: str | None, delivered: bool) -> list[Received]:
        return [r for r in self._received if (path is None or r.path == path) and (not delivered or r.ok)]

    # -- serving -----------------------------------------------------------------------
    def _answer(self, path: str) -> tuple[int, float, str | None]:
        """(status, delay in seconds, Retry-After) for the next post on ``path``: always 200 here."""
        return 200, 0.0, None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = {"_raw": raw.decode("utf-8", "replace")}
        path = request.path.split("?", 1)[0]
        status, delay, retry_after = self._answer(path)
        if delay:
            time.sleep(delay)
        received = Received(
            path=path,
            payload=payload if isinstance(payload, dict) else {"_value": payload},
            status=status,
            at=arrived,
            headers=dict(request.headers.items()),
        )
        with self._cond:
            self._received.append(received)
            self._cond.notify_all()
        body = b"{}" if 200 <= status < 300 else b'{"error": "sink says no"}'
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            if retry_after is not None and status in (429, 503):
                request.send_header("Retry-After", retry_after)
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass  # the client gave up (its read timeout): what it sent is still recorded
        if self.on_message is not None:
            with contextlib.suppress(Exception):
                self.on_message(received)


def main(argv: list[str] | None = None) -> int:
    """``python -m alertd.devtools.simulate``: serve until interrupted, with optional starting alerts."""
    parser = argparse.ArgumentParser(
        prog="python -m alertd.devtools.simulate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="sim-token", help="token both upstreams require")
    parser.add_argument(
        "--alert", action="append", default=[], metavar="UID[:KIND]", help="start an alert, e.g. 31:air_raid"
    )
    args = parser.parse_args(argv)
    upstream = Upstream(token=args.token, host=args.host, port=args.port)
    for spec in args.alert:
        uid, _, kind = spec.partition(":")
        upstream.add_alert(uid, kind or AlertKind.AIR_RAID)
    with upstream:
        print(upstream.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
