"""ukrainealarm.com (https://api.ukrainealarm.com): the official siren API, read strictly.

Pure parsers: ``bytes`` (plus response headers where they carry the time) in,
alertd model out; no I/O, no clock, no logging. Unknown region ids and alert
types go into ``Snapshot.warnings``; a payload that cannot be trusted (an HTML
error page, an error object, a non-UTF-8 body, a field of the wrong type) raises
:class:`~alertd.errors.ParseError` naming the source and field, because an empty
snapshot in its place would read as "all clear".

Shapes follow the OpenAPI document (UkraineAlarm/UkraineAlarm-nodejs-server
``api/openapi.yaml``):

* ``/api/v3/alerts`` and ``/api/v3/alerts/{regionId}`` → list of AlertRegionModel → :func:`parse_alerts`
* ``/api/v3/alerts/status`` → ``{"lastActionIndex": N}`` → :func:`parse_status` (the cheap
  "has anything changed" check the fetcher polls first)
* ``/api/v3/regions`` → :func:`parse_regions`
* ``/api/v3/alerts/regionHistory`` → :func:`parse_region_history`
* a webhook POST (one AlertRegionModel) → :func:`parse_webhook`

The official ``Alert`` model has ``lastUpdate`` but no ``createdAt``; some clients
document ``createdAt``. The start time is ``createdAt`` when present, else the
alert's ``lastUpdate`` (which the API sets when the alert is raised). Times without
an offset are UTC, as ukrainealarm documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alertd.core.model import ActiveAlert, AlertKind, Region, RegionLevel, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import ParseError
from alertd.sources._common import expect, header_time, load_api_json, parse_time
from alertd.sources.spec import Auth, ChangeIndex, FeedShape, ParseInput, RegistryRefresh, SourceSpec

__all__ = [
    "ALERT_TYPES",
    "DEFAULT_URL",
    "KIND",
    "REGION_TYPES",
    "SPEC",
    "parse",
    "parse_alerts",
    "parse_region_history",
    "parse_regions",
    "parse_status",
    "parse_webhook",
]

#: Source kind: the key the region registry and configuration use for this upstream.
KIND = "ukrainealarm"

#: The full list of regions with active alerts (needs an ``Authorization`` token).
DEFAULT_URL = "https://api.ukrainealarm.com/api/v3/alerts"

#: ukrainealarm ``AlertType`` → alertd kind (one table per source, DESIGN §2).
ALERT_TYPES: dict[str, AlertKind] = {
    "AIR": AlertKind.AIR_RAID,
    "ARTILLERY": AlertKind.ARTILLERY,
    "URBAN_FIGHTS": AlertKind.URBAN_FIGHTS,
    "CHEMICAL": AlertKind.CHEMICAL,
    "NUCLEAR": AlertKind.NUCLEAR,
    "INFO": AlertKind.INFO,
    "UNKNOWN": AlertKind.UNKNOWN,
}

#: ``v2RegionType`` → level hint for the registry (used only for ids it does not know).
REGION_TYPES: dict[str, RegionLevel] = {
    "State": RegionLevel.OBLAST,
    "District": RegionLevel.RAION,
    "Community": RegionLevel.HROMADA,
}

#: ukrainealarm's "no end yet" placeholder in history (.NET ``DateTime.MinValue``).
_NO_END_PREFIX = "0001-01-01"


# --------------------------------------------------------------------------- helpers


def _load(body: bytes, source: str, where: str | None) -> Any:
    return load_api_json(body, source, where, ("activeAlerts", "lastActionIndex"))


def _optional_str(value: Any, field: str, source: str, where: str | None) -> str | None:
    return None if value is None else expect(value, str, field, source, where)


def _region_id(value: Any, field: str, source: str, where: str | None) -> str:
    """regionId is a string in the spec; accept an int too, but never an empty or odd value."""
    if value is None:
        raise ParseError(source, f"field {field!r} is missing", where)
    expect(value, (str, int), field, source, where)
    text = str(value).strip()
    if not text:
        raise ParseError(source, f"field {field!r} is empty", where)
    return text


def _level(value: Any, field: str, source: str, where: str | None, warnings: list[str]) -> RegionLevel | None:
    """Level hint from ``regionType``; ``"Null"``/null give None, an unknown name a warning."""
    text = _optional_str(value, field, source, where)
    if text is None or text == "Null":
        return None
    level = REGION_TYPES.get(text)
    if level is None:
        warnings.append(f"{field}: unknown regionType {text!r}")
    return level


def _resolve(
    registry: RegionRegistry, region_id: str, name: str, level: RegionLevel | None, warnings: list[str]
) -> Region:
    region, warning = registry.resolve(KIND, region_id, name=name, level=level or RegionLevel.HROMADA)
    if warning:
        warnings.append(warning)
    return region


def _kind(
    value: Any, field: str, source: str, where: str | None, warnings: list[str]
) -> tuple[str, AlertKind]:
    text = expect(value, str, field, source, where)
    kind = ALERT_TYPES.get(text)
    if kind is None:
        warnings.append(f"{field}: unknown alert type {text!r}, kept as unknown")
        kind = AlertKind.UNKNOWN
    return text, kind


def _region_alerts(
    entry: Any,
    pre: str,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None,
    warnings: list[str],
) -> tuple[Region, list[ActiveAlert]]:
    """One AlertRegionModel → its region and its active alerts.

    Each alert is placed by its *own* ``regionId`` when it has one: a region's list may
    carry alerts of a part of it, and putting those on the whole region would overstate them.
    """
    expect(entry, dict, pre, source, where)
    region_id = _region_id(entry.get("regionId"), f"{pre}.regionId", source, where)
    name = _optional_str(entry.get("regionName"), f"{pre}.regionName", source, where) or ""
    _optional_str(entry.get("regionEngName"), f"{pre}.regionEngName", source, where)
    region_update = (
        None
        if entry.get("lastUpdate") is None
        else parse_time(entry["lastUpdate"], f"{pre}.lastUpdate", source, where)
    )
    level = _level(entry.get("regionType"), f"{pre}.regionType", source, where, warnings)
    region = _resolve(registry, region_id, name, level, warnings)

    if "activeAlerts" not in entry:
        raise ParseError(source, f"field '{pre}.activeAlerts' is missing", where)
    raw_alerts = entry["activeAlerts"]
    raw_alerts = [] if raw_alerts is None else expect(raw_alerts, list, f"{pre}.activeAlerts", source, where)
    alerts: list[ActiveAlert] = []
    for j, raw in enumerate(raw_alerts):
        apre = f"{pre}.activeAlerts[{j}]"
        expect(raw, dict, apre, source, where)
        if raw.get("type") is None:
            raise ParseError(source, f"field '{apre}.type' is missing", where)
        type_name, kind = _kind(raw["type"], f"{apre}.type", source, where, warnings)
        started_at = _alert_start(raw, apre, region_update, source, where)
        alert_region = region
        alert_region_id = region_id
        if raw.get("regionId") is not None:
            alert_region_id = _region_id(raw["regionId"], f"{apre}.regionId", source, where)
            if alert_region_id != region_id:
                alert_level = _level(raw.get("regionType"), f"{apre}.regionType", source, where, warnings)
                alert_region = _resolve(registry, alert_region_id, "", alert_level, warnings)
        alerts.append(
            ActiveAlert(
                source_id=f"{alert_region_id}:{type_name}",
                kind=kind,
                region=alert_region,
                started_at=started_at,
            )
        )
    return region, alerts


def _alert_start(
    raw: dict[str, Any], pre: str, region_update: datetime | None, source: str, where: str | None
) -> datetime | None:
    """When an alert started, as well as the payload says: ``createdAt``, else the alert's
    ``lastUpdate`` (set when it was raised), else its region's ``lastUpdate``, else unknown
    (None: the tracker takes the poll time). The spec marks all of them optional, so a missing
    one is no reason to refuse the snapshot; a present one that is not a time still is.
    """
    for field in ("createdAt", "lastUpdate"):
        if raw.get(field) is not None:
            return parse_time(raw[field], f"{pre}.{field}", source, where)
    return region_update


def _named(exc: ParseError, entry: Any, index: int, source: str, where: str | None) -> ParseError:
    """The same error, naming the entry (index, regionId, regionName) so the log shows which one."""
    if isinstance(entry, dict):
        rid, name = entry.get("regionId"), entry.get("regionName")
        label = f"entry [{index}] (regionId {rid!r}" + (f", {name}" if isinstance(name, str) else "") + ")"
    else:
        label = f"entry [{index}]"
    return ParseError(source, f"{label} is malformed: {exc.reason}", where)


def _region_list(
    data: Any, *, source: str, registry: RegionRegistry, where: str | None, headers: Mapping[str, str] | None
) -> Snapshot:
    if not isinstance(data, list):
        raise ParseError(source, f"expected a JSON list of regions, got {type(data).__name__}", where)
    warnings: list[str] = []
    seen: dict[str, ActiveAlert] = {}
    for i, entry in enumerate(data):
        # A malformed entry fails the whole poll: dropping it would end its alerts falsely.
        try:
            _, alerts = _region_alerts(
                entry, f"[{i}]", source=source, registry=registry, where=where, warnings=warnings
            )
        except ParseError as exc:
            raise _named(exc, entry, i, source, where) from None
        for alert in alerts:
            # The same (region, type) may be listed under a region and under its parent: keep one.
            seen.setdefault(alert.source_id, alert)
    return Snapshot(
        source=source,
        alerts=tuple(seen.values()),
        as_of=header_time(headers, source, where),
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- public


def parse_alerts(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """``/api/v3/alerts`` (and ``/api/v3/alerts/{regionId}``): the regions with alerts now.

    ``[]`` is a genuine all-clear: the list shape itself is checked, so an error page
    or object never reads as one. ``source_id`` is ``"{regionId}:{type}"`` — the API
    has no alert ids and one region has at most one alert per type.
    """
    return _region_list(
        _load(body, source, where), source=source, registry=registry, where=where, headers=headers
    )


def parse_status(body: bytes, *, source: str, where: str | None = None) -> int:
    """``/api/v3/alerts/status`` → ``lastActionIndex``: when it has not moved, nothing changed."""
    data = _load(body, source, where)
    expect(data, dict, "status", source, where)
    if "lastActionIndex" not in data:
        raise ParseError(source, "field 'lastActionIndex' is missing", where)
    value: int = expect(data["lastActionIndex"], int, "lastActionIndex", source, where)
    if value < 0:
        raise ParseError(source, f"field 'lastActionIndex' is negative: {value}", where)
    return value


def parse_regions(
    body: bytes, *, source: str, where: str | None = None
) -> list[tuple[str, str, str, str | None]]:
    """``/api/v3/regions`` flattened to ``(regionId, regionName, regionType, parentId)``, parents first.

    Used to build and check the region registry, so every entry must be complete.
    """
    data = _load(body, source, where)
    expect(data, dict, "regions", source, where)
    if "states" not in data:
        raise ParseError(source, "field 'states' is missing", where)
    out: list[tuple[str, str, str, str | None]] = []

    def walk(items: Any, pre: str, parent: str | None, depth: int) -> None:
        if items is None:
            return
        expect(items, list, pre, source, where)
        if depth > 4:
            raise ParseError(source, f"{pre}: regions nested deeper than state/district/community", where)
        for i, item in enumerate(items):
            ipre = f"{pre}[{i}]"
            if item is None:
                continue
            expect(item, dict, ipre, source, where)
            rid = _region_id(item.get("regionId"), f"{ipre}.regionId", source, where)
            name = _optional_str(item.get("regionName"), f"{ipre}.regionName", source, where) or ""
            rtype = _optional_str(item.get("regionType"), f"{ipre}.regionType", source, where) or "Null"
            out.append((rid, name, rtype, parent))
            walk(item.get("regionChildIds"), f"{ipre}.regionChildIds", rid, depth + 1)

    walk(data["states"], "states", None, 1)
    return out


def parse_webhook(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[Region, Snapshot]:
    """A webhook POST: one AlertRegionModel, the *whole* state of one region after a change.

    Returned as ``(region, snapshot)`` because the snapshot is complete for that region
    only: read as a source-wide snapshot it would end every other region's alerts. An
    empty ``activeAlerts`` means every alert in the region ended (the tracker knows
    which were active there); the payload does not say which kinds, so ``ended`` stays empty.
    """
    data = _load(body, source, where)
    expect(data, dict, "webhook event", source, where)
    warnings: list[str] = []
    region, alerts = _region_alerts(
        data, "event", source=source, registry=registry, where=where, warnings=warnings
    )
    as_of = (
        parse_time(data["lastUpdate"], "event.lastUpdate", source, where) if data.get("lastUpdate") else None
    )
    return region, Snapshot(
        source=source,
        alerts=tuple(alerts),
        as_of=as_of or header_time(headers, source, where),
        warnings=tuple(warnings),
    )


def parse_region_history(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """``/api/v3/alerts/regionHistory``: the last alarms of a region; finished → ``ended``, going on → ``alerts``.

    ``duration`` is ignored (its shape varies: ``"hh:mm:ss"``, ticks, or a TimeSpan
    object; start and end already say everything). An alarm still going on has
    ``isContinue: true`` and ``endDate`` ``0001-01-01T00:00:00``.
    """
    data = _load(body, source, where)
    if not isinstance(data, list):
        raise ParseError(
            source, f"expected a JSON list of region histories, got {type(data).__name__}", where
        )
    warnings: list[str] = []
    alerts: list[ActiveAlert] = []
    ended: list[ActiveAlert] = []
    for i, entry in enumerate(data):
        pre = f"[{i}]"
        expect(entry, dict, pre, source, where)
        region_id = _region_id(entry.get("regionId"), f"{pre}.regionId", source, where)
        name = _optional_str(entry.get("regionName"), f"{pre}.regionName", source, where) or ""
        region = _resolve(registry, region_id, name, None, warnings)
        alarms = entry.get("alarms")
        alarms = [] if alarms is None else expect(alarms, list, f"{pre}.alarms", source, where)
        for j, alarm in enumerate(alarms):
            apre = f"{pre}.alarms[{j}]"
            expect(alarm, dict, apre, source, where)
            type_name, kind = _kind(alarm.get("alertType"), f"{apre}.alertType", source, where, warnings)
            started_at = parse_time(alarm.get("startDate"), f"{apre}.startDate", source, where)
            is_continue = alarm.get("isContinue", False)
            expect(is_continue, bool, f"{apre}.isContinue", source, where)
            end_raw = alarm.get("endDate")
            ended_at: datetime | None = None
            if not is_continue:
                if end_raw is None or str(end_raw).startswith(_NO_END_PREFIX):
                    raise ParseError(source, f"field '{apre}.endDate' is missing for a finished alarm", where)
                ended_at = parse_time(end_raw, f"{apre}.endDate", source, where)
            alarm_region = region
            if alarm.get("regionId") is not None:
                alarm_id = _region_id(alarm["regionId"], f"{apre}.regionId", source, where)
                if alarm_id != region_id:
                    alarm_region = _resolve(registry, alarm_id, "", None, warnings)
            else:
                alarm_id = region_id
            item = ActiveAlert(
                source_id=f"{alarm_id}:{type_name}:{started_at.astimezone(UTC).isoformat()}",
                kind=kind,
                region=alarm_region,
                started_at=started_at,
                ended_at=ended_at,
            )
            (ended if ended_at is not None else alerts).append(item)
    return Snapshot(
        source=source,
        alerts=tuple(alerts),
        ended=tuple(ended),
        as_of=header_time(headers, source, where),
        warnings=tuple(warnings),
    )


def parse(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """Entry point: an alert list (``/api/v3/alerts``, ``/api/v3/alerts/{regionId}``) → Snapshot.

    A list of region histories (entries with ``alarms``) goes to :func:`parse_region_history`.
    The status, regions and webhook payloads are not snapshots of the whole source;
    they are refused with a ParseError that names the function to use.
    """
    data = _load(body, source, where)
    if isinstance(data, list):
        if data and isinstance(data[0], dict) and "alarms" in data[0] and "activeAlerts" not in data[0]:
            return parse_region_history(body, source=source, registry=registry, where=where, headers=headers)
        return _region_list(data, source=source, registry=registry, where=where, headers=headers)
    if isinstance(data, dict):
        if "lastActionIndex" in data:
            raise ParseError(
                source, "status payload (lastActionIndex), not an alert list: use parse_status", where
            )
        if "states" in data:
            raise ParseError(source, "regions payload, not an alert list: use parse_regions", where)
        if "activeAlerts" in data:
            raise ParseError(
                source, "single-region webhook event, not an alert list: use parse_webhook", where
            )
    raise ParseError(source, f"expected a JSON list of regions, got {type(data).__name__}", where)


def _parse_payload(payload: ParseInput) -> Snapshot:
    return parse(
        payload.body,
        source=payload.source,
        registry=payload.registry,
        where=payload.where,
        headers=payload.headers,
    )


def status_url(url: str) -> str | None:
    """``…/api/v3/alerts`` → ``…/api/v3/alerts/status``; another URL has no known index."""
    url = url.rstrip("/")
    return f"{url}/status" if url.endswith("/alerts") else None


def regions_url(url: str) -> str | None:
    """``…/api/v3/alerts`` → ``…/api/v3/regions`` (the region list beside the alert list)."""
    url = url.rstrip("/")
    return url[: -len("/alerts")] + "/regions" if url.endswith("/alerts") else None


def _status_index(payload: ParseInput) -> str:
    return str(parse_status(payload.body, source=payload.source, where=payload.where))


def _learn_regions(registry: RegionRegistry, payload: ParseInput) -> RegionRegistry:
    """The upstream's own region list, so ids the shipped registry lacks still find their place."""
    entries = parse_regions(payload.body, source=payload.source, where=payload.where)
    return registry.learn_ukrainealarm_regions(entries)


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.STATE,
    summary="ukrainealarm.com regions with active alerts; needs an API key",
    default_url=DEFAULT_URL,
    auth=Auth(required=True),  # the raw key, no scheme
    accept="application/json",
    parse_state=_parse_payload,
    change_index=ChangeIndex(url_for=status_url, parse=_status_index),
    refresh=RegistryRefresh(url_for=regions_url, update=_learn_regions, every=86400.0),
)
