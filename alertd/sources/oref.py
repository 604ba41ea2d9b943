"""Israel's Home Front Command (Pikud HaOref): the live ``alerts.json`` and the alert histories.

Three payloads, one module:

* ``WarningMessages/alert/alerts.json`` (live): one JSON object ``{"id", "cat",
  "title", "data": [areas], "desc"}`` while an alert pulse is on, otherwise an
  empty body or just ``\\r\\n`` (often behind a UTF-8 BOM). For this source — and
  only this one — an empty body is the documented "no alert" answer, so it yields
  an empty snapshot instead of a :class:`ParseError`.
* ``AlertsHistory.json`` (24 h) and ``GetAlarmsHistory.aspx`` (extended): JSON
  lists of one record per area with an Israel-local ``alertDate`` and a
  ``category`` that uses a *different* numbering from the live ``cat``.

How a message is classified (:func:`classify`), first rule that applies:

1. a drill (title mentions a drill, live ``cat`` ≥ 100, history ``category`` 15–28)
   → ignored with a warning: a drill must never reach a subscriber as an alert;
2. an end/leave-shelter message (title "האירוע הסתיים", "ניתן לצאת מהמרחב המוגן",
   history category 13) → the areas go into ``Snapshot.ended``;
3. a pre-alert / "stay near the shelter" (title "בדקות הקרובות צפויות להתקבל
   התרעות באזורך", "…בסמיכות למרחב המוגן", history category 14) → an ``INFO``
   alert: an early warning, not an air raid;
4. the threat named in the title (Hebrew or English), because titles are the
   same in every feed while the category numbers are not;
5. the category table of the feed (:data:`LIVE_CAT_KINDS` or :data:`HISTORY_CATEGORY_KINDS`);
6. otherwise ``UNKNOWN`` with a warning — an unrecognised alert is still announced.

An end message does not say which threat ended; it clears the area. Since the
tracker matches ends by (region, kind), an end yields one ``ended`` record per
kind this source can raise (:data:`OREF_KINDS`); the tracker ignores the ones
that were not active. Israel is not in the Ukrainian region registry: areas become
``Region(code="oref:<area name>", level=CITY)``. Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from alertd.core.model import ActiveAlert, AlertKind, Region, RegionLevel, Severity, Snapshot
from alertd.errors import ParseError
from alertd.sources._common import decode_text, load_json, parse_time
from alertd.sources.spec import FeedShape, ParseInput, SourceSpec

KIND = "oref"

#: The zone Oref's ``alertDate`` values are written in (no offset on the wire).
ISRAEL_TZ = ZoneInfo("Asia/Jerusalem")


class Phase(StrEnum):
    """What a message means for the areas it names."""

    ALERT = "alert"
    END = "end"
    DRILL = "drill"


#: Live ``alerts.json`` ``cat`` codes. They follow the ``matrix_id`` column of the
#: categories table (alert_categories_excerpt.json: missilealert→1, uav→6,
#: cbrne→4, terrorattack→13, update/flash→10), not the history ``category`` ids.
LIVE_CAT_KINDS: dict[int, AlertKind] = {
    1: AlertKind.MISSILES,  # missiles and rockets
    2: AlertKind.HOSTILE_AIRCRAFT,  # seen in some clients as hostile aircraft; harmless alias
    3: AlertKind.EARTHQUAKE,
    4: AlertKind.NUCLEAR,  # radiological / CBRNE event
    5: AlertKind.TSUNAMI,
    6: AlertKind.HOSTILE_AIRCRAFT,  # hostile aircraft intrusion (drones)
    7: AlertKind.HAZMAT,  # hazardous materials
    10: AlertKind.INFO,  # "update"/"flash": news flash, pre-alert or end — the title decides
    13: AlertKind.INFILTRATION,  # terrorist infiltration
}

#: History ``category`` ids (AlertsHistory.json, GetAlarmsHistory.aspx): the ``id``
#: column of the categories table (missilealert=1, uav=2, cbrne=9, terrorattack=10,
#: update=13, flash=14, missilealertdrill=15 …).
HISTORY_CATEGORY_KINDS: dict[int, AlertKind] = {
    1: AlertKind.MISSILES,
    2: AlertKind.HOSTILE_AIRCRAFT,  # "uav"
    7: AlertKind.EARTHQUAKE,  # earthquake alert, stage 1
    8: AlertKind.EARTHQUAKE,  # earthquake alert, stage 2
    9: AlertKind.NUCLEAR,  # cbrne
    10: AlertKind.INFILTRATION,  # terrorattack
    11: AlertKind.TSUNAMI,
    12: AlertKind.HAZMAT,
    14: AlertKind.INFO,  # "flash": pre-alert, alerts expected in the next minutes
}
HISTORY_END_CATEGORY = 13  # "update": the event has ended / you may leave the shelter
HISTORY_DRILL_CATEGORIES = range(15, 29)
LIVE_DRILL_CAT_MIN = 100

#: Threat names as they appear in titles (Hebrew live/history, English extended history).
_TITLE_KINDS: tuple[tuple[str, AlertKind], ...] = (
    ("ירי רקטות וטילים", AlertKind.MISSILES),
    ("חדירת כלי טיס עוין", AlertKind.HOSTILE_AIRCRAFT),
    ("רעידת אדמה", AlertKind.EARTHQUAKE),
    ("צונאמי", AlertKind.TSUNAMI),
    ("חומרים מסוכנים", AlertKind.HAZMAT),
    ("חדירת מחבלים", AlertKind.INFILTRATION),
    ("אירוע רדיולוגי", AlertKind.NUCLEAR),
    ("missile", AlertKind.MISSILES),
    ("rocket", AlertKind.MISSILES),
    ("hostile aircraft", AlertKind.HOSTILE_AIRCRAFT),
    ("earthquake", AlertKind.EARTHQUAKE),
    ("tsunami", AlertKind.TSUNAMI),
    ("hazardous materials", AlertKind.HAZMAT),
    ("terrorist infiltration", AlertKind.INFILTRATION),
    ("radiological", AlertKind.NUCLEAR),
)
_END_PHRASES = (
    "האירוע הסתיים",
    "הארוע הסתיים",  # the spelling seen in AlertsHistory.json
    "ניתן לצאת מהמרחב המוגן",
    "event has ended",
    "event ended",
    "may leave the protected",
    "can leave the protected",
)
_PRE_ALERT_PHRASES = (
    "בדקות הקרובות צפויות להתקבל התרעות",
    "בסמיכות למרחב המוגן",
    "בסמיכות למרחב מוגן",
    "alerts are expected in your area",
    "near the protected space",
    "near a protected space",
)
_DRILL_PHRASES = ("תרגיל", "drill")

#: Every kind this parser can raise; an end message ends each of them in its areas.
OREF_KINDS: tuple[AlertKind, ...] = (
    AlertKind.MISSILES,
    AlertKind.HOSTILE_AIRCRAFT,
    AlertKind.EARTHQUAKE,
    AlertKind.NUCLEAR,
    AlertKind.TSUNAMI,
    AlertKind.HAZMAT,
    AlertKind.INFILTRATION,
    AlertKind.INFO,
    AlertKind.UNKNOWN,
)


def parse(
    body: bytes,
    *,
    source: str,
    where: str | None = None,
) -> Snapshot:
    """Dispatch on the payload: a JSON list is a history, an object or empty body the live feed."""
    text = decode_text(body, source, where)
    if not text.strip():
        return Snapshot(source=source)
    data = load_json(body, source, where)
    if isinstance(data, list):
        return _history(data, source, where)
    if isinstance(data, dict):
        return _live(data, source, where)
    raise ParseError(source, f"expected a JSON object or list, got {type(data).__name__}", where)


def parse_live(
    body: bytes,
    *,
    source: str,
    where: str | None = None,
) -> Snapshot:
    """``alerts.json``: an empty/whitespace body (BOM allowed) is "no alert"; else one alert object."""
    text = decode_text(body, source, where)
    if not text.strip():
        return Snapshot(source=source)
    data = load_json(body, source, where)
    if not isinstance(data, dict):
        raise ParseError(source, f"live alert should be a JSON object, got {type(data).__name__}", where)
    return _live(data, source, where)


def parse_history(
    body: bytes,
    *,
    source: str,
    where: str | None = None,
) -> Snapshot:
    """AlertsHistory.json / GetAlarmsHistory.aspx: what is active, and what ended, per area.

    An empty history body is refused: unlike the live feed, the history endpoint
    has no documented "empty means nothing" contract (it is known to return
    ``\\r\\n`` while alerts happened), and ``[]`` is the way to say "no records".
    """
    data = load_json(body, source, where)
    if not isinstance(data, list):
        raise ParseError(source, f"history should be a JSON list, got {type(data).__name__}", where)
    return _history(data, source, where)


def region_for(area: str) -> Region:
    """An Oref area as a region: Oref's own area name is its only stable id."""
    return Region(
        code=f"oref:{area}",
        level=RegionLevel.CITY,
        name_uk=area,
        name_en=area if area.isascii() else "",
        parent=None,
        oblast=None,
    )


def classify(title: str, code: int | None, *, history: bool) -> tuple[Phase, AlertKind | None]:
    """Decide what a message means, by title first and by category number second (see module doc)."""
    lowered = title.casefold()
    if any(p in lowered for p in _DRILL_PHRASES):
        return Phase.DRILL, None
    if history:
        if code in HISTORY_DRILL_CATEGORIES:
            return Phase.DRILL, None
    elif code is not None and code >= LIVE_DRILL_CAT_MIN:
        return Phase.DRILL, None
    if any(p in lowered for p in _END_PHRASES) or (history and code == HISTORY_END_CATEGORY):
        return Phase.END, None
    if any(p in lowered for p in _PRE_ALERT_PHRASES):
        return Phase.ALERT, AlertKind.INFO
    for phrase, kind in _TITLE_KINDS:
        if phrase in lowered:
            return Phase.ALERT, kind
    table = HISTORY_CATEGORY_KINDS if history else LIVE_CAT_KINDS
    if code is not None and code in table:
        return Phase.ALERT, table[code]
    return Phase.ALERT, None


def _severity(kind: AlertKind) -> Severity:
    return Severity.MODERATE if kind is AlertKind.INFO else Severity.SEVERE


def _code(value: Any, field: str, source: str, where: str | None) -> int | None:
    """Category numbers come as int (history) or numeric string (live)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ParseError(source, f"field {field!r} should be a number, got bool", where)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ParseError(source, f"field {field!r} should be a number, got {value!r}", where)


def _str(
    value: Any, field: str, source: str, where: str | None, *, required: bool = True, number_ok: bool = False
) -> str:
    """A string field, stripped (real payloads carry stray spaces, e.g. "Kfar Yuval ")."""
    if value is None and not required:
        return ""
    if number_ok and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids are sometimes numbers
    if not isinstance(value, str):
        raise ParseError(source, f"field {field!r} should be a string, got {type(value).__name__}", where)
    return value.strip()


def _ends(area: str, source_id: str, ended_at: datetime | None, details: str) -> list[ActiveAlert]:
    region = region_for(area)
    return [
        ActiveAlert(
            source_id=source_id,
            kind=kind,
            region=region,
            ended_at=ended_at,
            severity=_severity(kind),
            details=details,
        )
        for kind in OREF_KINDS
    ]


def _live(data: dict[str, Any], source: str, where: str | None) -> Snapshot:
    alert_id = _str(data.get("id"), "id", source, where, number_ok=True)
    if not alert_id:
        raise ParseError(source, "field 'id' is empty", where)
    title = _str(data.get("title"), "title", source, where)
    desc = _str(data.get("desc"), "desc", source, where, required=False)
    code = _code(data.get("cat"), "cat", source, where)
    areas_raw = data.get("data")
    if not isinstance(areas_raw, list) or not areas_raw:
        raise ParseError(source, "field 'data' should be a non-empty list of area names", where)
    areas: list[str] = []
    for i, area in enumerate(areas_raw):
        name = _str(area, f"data[{i}]", source, where)
        if name and name not in areas:
            areas.append(name)
    if not areas:
        raise ParseError(source, "field 'data' names no area", where)

    phase, kind = classify(title, code, history=False)
    details = " — ".join(p for p in (title, desc) if p)
    if phase is Phase.DRILL:
        return Snapshot(source=source, warnings=(f"drill ignored: cat={code} title={title!r}",))
    if phase is Phase.END:
        ended = [e for area in areas for e in _ends(area, f"{alert_id}:{area}", None, details)]
        return Snapshot(source=source, ended=tuple(ended))
    warnings: tuple[str, ...] = ()
    if kind is None:
        kind = AlertKind.UNKNOWN
        warnings = (f"unknown alert category cat={code} title={title!r}; reported as unknown",)
    alerts = tuple(
        ActiveAlert(
            source_id=f"{alert_id}:{area}",
            kind=kind,
            region=region_for(area),
            started_at=None,  # the live feed carries no time
            severity=_severity(kind),
            details=details,
        )
        for area in areas
    )
    return Snapshot(source=source, alerts=alerts, warnings=warnings)


def _history(records: list[Any], source: str, where: str | None) -> Snapshot:
    """Replay the records per area in time order: starts add kinds, an end clears the area.

    What is left at the end is active (with the start of its current run); an area
    whose latest record is an end yields explicit ``ended`` records at that time.
    """
    parsed: list[tuple[datetime, int, str, Phase, AlertKind | None, str, str]] = []
    warnings: list[str] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ParseError(
                source, f"history record {i} should be an object, got {type(record).__name__}", where
            )
        area = _str(record.get("data"), f"[{i}].data", source, where)
        if not area:
            raise ParseError(source, f"history record {i} names no area", where)
        when = parse_time(record.get("alertDate"), f"[{i}].alertDate", source, where, naive_tz=ISRAEL_TZ)
        title = _str(
            record.get("title", record.get("category_desc")), f"[{i}].title", source, where, required=False
        )
        code = _code(record.get("category"), f"[{i}].category", source, where)
        rid = record.get("rid")
        source_id = f"{rid}:{area}" if rid is not None else f"{when.isoformat()}:{area}"
        phase, kind = classify(title, code, history=True)
        if phase is Phase.DRILL:
            warnings.append(f"drill ignored: category={code} area={area!r}")
            continue
        if phase is Phase.ALERT and kind is None:
            kind = AlertKind.UNKNOWN
            warnings.append(f"unknown alert category={code} title={title!r}; reported as unknown")
        parsed.append((when, i, area, phase, kind, source_id, title))

    parsed.sort(key=lambda r: (r[0], r[1]))  # stable: same minute keeps payload order
    active: dict[str, dict[AlertKind, ActiveAlert]] = {}
    last_end: dict[str, tuple[datetime, str, str]] = {}
    for when, _, area, phase, kind, source_id, title in parsed:
        if phase is Phase.END:
            active.pop(area, None)
            last_end[area] = (when, source_id, title)
            continue
        assert kind is not None
        last_end.pop(area, None)
        kinds = active.setdefault(area, {})
        if kind not in kinds:  # a repeated salvo continues the run that is already on
            kinds[kind] = ActiveAlert(
                source_id=source_id,
                kind=kind,
                region=region_for(area),
                started_at=when,
                severity=_severity(kind),
                details=title,
            )
    alerts = tuple(alert for kinds in active.values() for alert in kinds.values())
    ended = tuple(e for area, (when, sid, title) in last_end.items() for e in _ends(area, sid, when, title))
    return Snapshot(source=source, alerts=alerts, ended=ended, warnings=tuple(dict.fromkeys(warnings)))


def _parse_payload(payload: ParseInput) -> Snapshot:
    return parse(payload.body, source=payload.source, where=payload.where)


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.STATE,
    summary="Israel Home Front Command live alerts.json (or an alert history)",
    default_url="https://www.oref.org.il/warningMessages/alert/alerts.json",
    accept="application/json",
    # Oref's site answers its own pages' XHRs; without these it serves a block page.
    headers={"Referer": "https://www.oref.org.il/", "X-Requested-With": "XMLHttpRequest"},
    parse_state=_parse_payload,
    # The live list shows an alert for about a minute while people must stay in shelter
    # until its "event ended" message: absence there is not an all-clear.
    end_hold=3600.0,
)
