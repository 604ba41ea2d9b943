"""alerts.in.ua (https://api.alerts.in.ua): active alerts, history and the IoT status strings.

Pure parsers: ``bytes`` (plus response headers where they carry the time) in,
:class:`~alertd.core.model.Snapshot` out. Nothing here does I/O, reads the clock or logs;
what the parser saw but could not place (unknown location uids, unknown alert
types) goes into ``Snapshot.warnings`` for the shell to log.

A payload that cannot be trusted raises :class:`~alertd.errors.ParseError`
naming the source and the field. That includes an API error object
(``{"message": "..."}``), an HTML error page served with status 200, a body that
is not UTF-8 and a snapshot that says it is not complete: an empty snapshot in
their place would read as "all clear".

Endpoints (official docs, mirrored in voiceapiai/ralertsinua ``README.md``):

* ``/v1/alerts/active.json`` → :func:`parse_active`
* ``/v1/regions/:uid/alerts/month_ago.json`` → :func:`parse_history`
* ``/v1/iot/active_air_raid_alerts_by_oblast.json`` → :func:`parse_iot_statuses`
* ``/v1/iot/active_air_raid_alerts.json`` → :func:`parse_iot_all_uids`
* ``/v1/iot/active_air_raid_alerts/:uid.json`` → :func:`parse_iot_uid`
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alertd.core.model import ActiveAlert, AlertKind, Region, RegionLevel, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import ParseError
from alertd.sources._common import expect, header_time, load_api_json, parse_time
from alertd.sources.spec import Auth, FeedShape, ParseInput, SourceSpec

__all__ = [
    "ALERT_TYPES",
    "DEFAULT_URL",
    "IOT_OBLAST_ORDER",
    "KIND",
    "SPEC",
    "parse",
    "parse_active",
    "parse_history",
    "parse_iot_all_uids",
    "parse_iot_statuses",
    "parse_iot_uid",
]

#: Source kind: the key the region registry and configuration use for this upstream.
KIND = "alerts_in_ua"

#: The endpoint a configured source polls unless told otherwise: the full active set.
DEFAULT_URL = "https://api.alerts.in.ua/v1/alerts/active.json"

#: alerts.in.ua ``alert_type`` → alertd kind. Anything else is kept as UNKNOWN with a
#: warning: an alert of a kind we do not know is still an alert.
ALERT_TYPES: dict[str, AlertKind] = {
    "air_raid": AlertKind.AIR_RAID,
    "artillery_shelling": AlertKind.ARTILLERY,
    "urban_fights": AlertKind.URBAN_FIGHTS,
    "chemical": AlertKind.CHEMICAL,
    "nuclear": AlertKind.NUCLEAR,
}

#: ``location_type`` → level hint for the registry (only used for ids it does not know).
_LOCATION_TYPES: dict[str, RegionLevel] = {
    "oblast": RegionLevel.OBLAST,
    "raion": RegionLevel.RAION,
    "district": RegionLevel.RAION,
    "hromada": RegionLevel.HROMADA,
    "city": RegionLevel.CITY,
}

#: Oblast uid for each position of the by-oblast IoT string, in the official docs'
#: order (fixture ``oblast_uids_and_iot_order.json``). Hardcoded because the string
#: carries no ids: a wrong order would put an alert on the wrong oblast.
IOT_OBLAST_ORDER: tuple[int, ...] = (
    29,  # Автономна Республіка Крим
    8,  # Волинська область
    4,  # Вінницька область
    9,  # Дніпропетровська область
    28,  # Донецька область
    10,  # Житомирська область
    11,  # Закарпатська область
    12,  # Запорізька область
    13,  # Івано-Франківська область
    31,  # м. Київ
    14,  # Київська область
    15,  # Кіровоградська область
    16,  # Луганська область
    27,  # Львівська область
    17,  # Миколаївська область
    18,  # Одеська область
    19,  # Полтавська область
    5,  # Рівненська область
    30,  # м. Севастополь
    20,  # Сумська область
    21,  # Тернопільська область
    22,  # Харківська область
    23,  # Херсонська область
    3,  # Хмельницька область
    24,  # Черкаська область
    26,  # Чернівецька область
    25,  # Чернігівська область
)
_OBLAST_UIDS = frozenset(IOT_OBLAST_ORDER)

#: IoT status letters: A = air raid over the whole location, P = partial (an alert in
#: part of it, reported separately for that part), N = none.
_IOT_LETTERS = frozenset("APN")


# --------------------------------------------------------------------------- helpers


def _load(body: bytes, source: str, where: str | None) -> Any:
    return load_api_json(body, source, where, ("alerts",))


def _uid(value: Any, field: str, source: str, where: str | None) -> str:
    """A location uid arrives as string or int; alertd keys it as a decimal string."""
    expect(value, (str, int), field, source, where)
    text = str(value).strip()
    if not text.isdigit():
        raise ParseError(source, f"field {field!r} is not a numeric uid: {value!r}", where)
    return str(int(text))


def _optional(value: Any, typ: type | tuple[type, ...], field: str, source: str, where: str | None) -> Any:
    if value is None:
        return None
    return expect(value, typ, field, source, where)


def _as_of(data: dict[str, Any], source: str, where: str | None) -> datetime | None:
    """``meta.last_updated_at`` (slash format or ISO 8601) when the answer carries it.

    The API always sends ``meta``; a client stand-in or an older proxy may not, and
    an alert list without it is still a complete list. What is there must be right:
    a mistyped ``meta`` or an unreadable time is a ParseError, and a ``meta.type``
    other than "full" cannot be read as "these and only these are active".
    """
    meta = data.get("meta")
    if meta is None:
        return None
    expect(meta, dict, "meta", source, where)
    kind = _optional(meta.get("type"), str, "meta.type", source, where)
    if kind is not None and kind != "full":
        raise ParseError(source, f"meta.type is {kind!r}, expected a 'full' snapshot", where)
    if meta.get("last_updated_at") is None:
        return None
    return parse_time(meta["last_updated_at"], "meta.last_updated_at", source, where)


def _alert_list(
    data: Any,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None,
) -> Snapshot:
    """Shared body of the active and history endpoints: unfinished → alerts, finished → ended."""
    if not isinstance(data, dict):
        raise ParseError(source, f"expected a JSON object with 'alerts', got {type(data).__name__}", where)
    if "alerts" not in data:
        raise ParseError(source, "field 'alerts' is missing", where)
    items = expect(data["alerts"], list, "alerts", source, where)
    as_of = _as_of(data, source, where)
    alerts: list[ActiveAlert] = []
    ended: list[ActiveAlert] = []
    warnings: list[str] = []
    for index, item in enumerate(items):
        alert = _one_alert(item, index, source=source, registry=registry, where=where, warnings=warnings)
        (ended if alert.ended_at is not None else alerts).append(alert)
    return Snapshot(
        source=source, alerts=tuple(alerts), ended=tuple(ended), as_of=as_of, warnings=tuple(warnings)
    )


def _one_alert(
    item: Any,
    index: int,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None,
    warnings: list[str],
) -> ActiveAlert:
    pre = f"alerts[{index}]"
    expect(item, dict, pre, source, where)
    for required in ("location_uid", "alert_type", "started_at"):
        if item.get(required) is None:
            raise ParseError(source, f"field '{pre}.{required}' is missing", where)
    uid = _uid(item["location_uid"], f"{pre}.location_uid", source, where)
    alert_type = expect(item["alert_type"], str, f"{pre}.alert_type", source, where)
    started_at = parse_time(item["started_at"], f"{pre}.started_at", source, where)
    finished_raw = item.get("finished_at")
    ended_at = None if finished_raw is None else parse_time(finished_raw, f"{pre}.finished_at", source, where)

    raw_id = _optional(item.get("id"), (int, str), f"{pre}.id", source, where)
    title = _optional(item.get("location_title"), str, f"{pre}.location_title", source, where) or ""
    loc_type = _optional(item.get("location_type"), str, f"{pre}.location_type", source, where)
    oblast_raw = item.get("location_oblast_uid")
    oblast_hint = (
        None if oblast_raw is None else _uid(oblast_raw, f"{pre}.location_oblast_uid", source, where)
    )
    notes = _optional(item.get("notes"), str, f"{pre}.notes", source, where) or ""

    level = RegionLevel.HROMADA
    if loc_type is not None:
        if loc_type in _LOCATION_TYPES:
            level = _LOCATION_TYPES[loc_type]
        elif loc_type != "unknown":
            warnings.append(f"{pre}: unknown location_type {loc_type!r} for uid {uid}")

    kind = ALERT_TYPES.get(alert_type)
    if kind is None:
        kind = AlertKind.UNKNOWN
        warnings.append(f"{pre}: unknown alert_type {alert_type!r}, kept as unknown")

    region, warning = registry.resolve(KIND, uid, name=title, level=level, oblast_hint=oblast_hint)
    if warning:
        warnings.append(warning)
    else:
        mismatch = _place_mismatch(region, title, loc_type)
        if mismatch:
            warnings.append(
                f"{pre}: location_uid {uid} is {region.name_uk!r} ({region.code}) {mismatch}; placed by uid"
            )
    source_id = str(raw_id) if raw_id is not None else f"{uid}:{alert_type}:{started_at.isoformat()}"
    return ActiveAlert(
        source_id=source_id,
        kind=kind,
        region=region,
        started_at=started_at,
        ended_at=ended_at,
        details=notes,
    )


def _place_name(text: str) -> str:
    """A place name compared loosely: case, apostrophe variants, "м." and spacing do not count."""
    text = text.casefold().replace("ʼ", "'").replace("’", "'").replace("`", "'")
    text = text.removeprefix("м.").strip()
    return " ".join(text.split())


def _place_mismatch(region: Region, title: str, loc_type: str | None) -> str | None:
    """How the alert's own title/type disagree with the place its uid names, if they do.

    The uid is what the API keys on, so it keeps deciding the place; a disagreement is
    worth a warning because it means the registry or the upstream changed a mapping.
    """
    said, known = _place_name(title), _place_name(region.name_uk)
    # one may abbreviate the other ("м. Нікополь та Нікопольська …" / "Нікопольська …")
    if said and said not in known and known not in said:
        return f"but location_title says {title!r}"
    if loc_type == "oblast" and region.level is not RegionLevel.OBLAST:
        return f"a {region.level}, but location_type says oblast"
    return None


def _iot_string(data: Any, source: str, where: str | None) -> str:
    if not isinstance(data, str):
        raise ParseError(
            source, f"expected a JSON string of status letters, got {type(data).__name__}", where
        )
    return data


def _iot_region(registry: RegionRegistry, uid: int, warnings: list[str]) -> Region:
    level = RegionLevel.OBLAST if uid in _OBLAST_UIDS else RegionLevel.HROMADA
    region, warning = registry.resolve(KIND, str(uid), level=level)
    if warning:
        warnings.append(warning)
    return region


def _iot_alert(region: Region, uid: int) -> ActiveAlert:
    """The IoT endpoints say only *that* an air raid alert is on, not since when."""
    return ActiveAlert(source_id=f"iot:{uid}", kind=AlertKind.AIR_RAID, region=region, started_at=None)


# --------------------------------------------------------------------------- public


def parse_active(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
) -> Snapshot:
    """``/v1/alerts/active.json``: every active alert; an entry with ``finished_at`` goes to ``ended``.

    ``{"alerts": [], "meta": {...}}`` is a genuine "no alerts"; a missing or mistyped
    ``alerts``, a mistyped ``meta`` or a missing required alert field is a ParseError
    naming the field.
    """
    return _alert_list(_load(body, source, where), source=source, registry=registry, where=where)


def parse_history(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
) -> Snapshot:
    """``/v1/regions/:uid/alerts/month_ago.json``: finished alerts → ``ended`` (explicit end
    records the tracker can use after a restart), unfinished ones → ``alerts``.

    Same shape as the active endpoint, so the same strict reading applies.
    """
    return _alert_list(_load(body, source, where), source=source, registry=registry, where=where)


def parse_iot_statuses(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """``/v1/iot/active_air_raid_alerts_by_oblast.json``: a 27-letter string in :data:`IOT_OBLAST_ORDER`.

    ``A`` → an oblast-wide AIR_RAID alert (start time unknown). ``P`` (an alert in part of
    the oblast) is *not* an oblast-wide alert: the part is only named by the other
    endpoints, so this one cannot place it. ``N`` → none. Any other letter or length
    means we would be guessing which oblast is which: ParseError.
    """
    text = _iot_string(_load(body, source, where), source, where)
    if len(text) != len(IOT_OBLAST_ORDER):
        raise ParseError(
            source,
            f"by-oblast status string has {len(text)} letters, expected {len(IOT_OBLAST_ORDER)}",
            where,
        )
    for index, letter in enumerate(text):
        if letter not in _IOT_LETTERS:
            raise ParseError(source, f"status letter {letter!r} at index {index} is not A, P or N", where)
    active = [uid for letter, uid in zip(text, IOT_OBLAST_ORDER, strict=True) if letter == "A"]
    return _iot_snapshot(active, source=source, registry=registry, where=where, headers=headers)


def parse_iot_all_uids(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """``/v1/iot/active_air_raid_alerts.json``: one letter per uid, the index *is* the uid.

    ``' '`` marks an unassigned uid. Only ``A`` yields an alert (see
    :func:`parse_iot_statuses` for ``P``). The string must be longer than the
    by-oblast one: the highest oblast uid is 31, so a shorter string cannot cover them.
    """
    text = _iot_string(_load(body, source, where), source, where)
    if len(text) <= max(IOT_OBLAST_ORDER):
        raise ParseError(
            source, f"all-uids status string has {len(text)} letters, too short to cover every oblast", where
        )
    for uid, letter in enumerate(text):
        if letter != " " and letter not in _IOT_LETTERS:
            raise ParseError(source, f"status letter {letter!r} at uid {uid} is not A, P, N or space", where)
    active = [uid for uid, letter in enumerate(text) if letter == "A"]
    return _iot_snapshot(active, source=source, registry=registry, where=where, headers=headers)


def parse_iot_uid(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    uid: str | int,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """``/v1/iot/active_air_raid_alerts/:uid.json``: one letter for the uid in the URL.

    The body does not name the uid, so the caller passes it. The snapshot covers that
    one location only.
    """
    uid_text = _uid(uid, "uid", source, where)
    text = _iot_string(_load(body, source, where), source, where)
    if len(text) != 1 or text not in _IOT_LETTERS:
        raise ParseError(source, f"single-uid status should be one of A, P, N, got {text[:40]!r}", where)
    active = [int(uid_text)] if text == "A" else []
    return _iot_snapshot(active, source=source, registry=registry, where=where, headers=headers)


def _iot_snapshot(
    active_uids: list[int],
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None,
    headers: Mapping[str, str] | None,
) -> Snapshot:
    """The snapshot of an IoT status answer: an oblast- or place-wide AIR_RAID per ``A`` uid."""
    warnings: list[str] = []
    alerts = tuple(_iot_alert(_iot_region(registry, uid, warnings), uid) for uid in active_uids)
    return Snapshot(
        source=source, alerts=alerts, as_of=header_time(headers, source, where), warnings=tuple(warnings)
    )


def parse(
    body: bytes,
    *,
    source: str,
    registry: RegionRegistry,
    where: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Snapshot:
    """Entry point: read whichever endpoint's shape the body has.

    A JSON object with ``alerts`` → :func:`parse_active` (finished entries, as the
    history endpoint has them, go to ``ended``); a 27-letter string → by-oblast IoT;
    a longer string → all-uids IoT. A one-letter string (single-uid IoT) does not say
    which uid it is about, so it is refused here: use :func:`parse_iot_uid`.
    """
    data = _load(body, source, where)
    if isinstance(data, dict):
        return _alert_list(data, source=source, registry=registry, where=where)
    if isinstance(data, str):
        if len(data) == len(IOT_OBLAST_ORDER):
            return parse_iot_statuses(body, source=source, registry=registry, where=where, headers=headers)
        if len(data) > len(IOT_OBLAST_ORDER):
            return parse_iot_all_uids(body, source=source, registry=registry, where=where, headers=headers)
        raise ParseError(
            source,
            f"status string of {len(data)} letters: a single-uid answer needs its uid (parse_iot_uid)",
            where,
        )
    raise ParseError(source, f"unexpected JSON {type(data).__name__} at top level", where)


def _parse_payload(payload: ParseInput) -> Snapshot:
    return parse(
        payload.body,
        source=payload.source,
        registry=payload.registry,
        where=payload.where,
        headers=payload.headers,
    )


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.STATE,
    summary="alerts.in.ua active alerts (or an IoT status string); needs an API token",
    default_url=DEFAULT_URL,
    auth=Auth(required=True, prefix="Bearer "),
    accept="application/json",
    parse_state=_parse_payload,
)
