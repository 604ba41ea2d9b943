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
2. not a threat: the memorial-day sirens (title, history ``category`` 5 and 6) → ignored;
3. an **update** of an alert that goes on — "you may leave the protected space but stay
   near it" (``ניתן לצאת מהמרחב המוגן אך יש להישאר בקרבתו``) → nothing changes: the
   alert stays on until its end. Checked before the end phrases, which it contains;
4. an **end** — "the event has ended" (``האירוע הסתיים``), "you may leave the protected
   space" (``ניתן לצאת מהמרחב המוגן``), "end of the stay near the protected space"
   (``סיום שהייה בסמיכות למרחב המוגן``), history category 13 → the areas go into
   ``Snapshot.ended``. Checked before the pre-alert phrases, which the last one contains;
5. a **pre-alert** — "alerts are expected in your area in the next minutes"
   (``בדקות הקרובות צפויות להתקבל התרעות באזורך``), "stay near the protected space"
   (``…בסמיכות למרחב המוגן``), history category 14 → an ``INFO`` alert;
6. the threat named in the title (Hebrew or English), because titles are the
   same in every feed while the category numbers are not;
7. the category table of the feed (:data:`LIVE_CAT_KINDS` or :data:`HISTORY_CATEGORIES`,
   the latter the Home Front Command's whole published ``alertCategories`` list);
8. otherwise, with a title: ``UNKNOWN`` with a warning — an unrecognised alert is still
   announced; without a title: a warning to operators only (there is nothing to tell
   residents, and an empty unknown message is more likely a feed fault than a threat).

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
    UPDATE = "update"  # the alert goes on (leave the shelter, stay near it): nothing changes
    END = "end"
    DRILL = "drill"
    NOT_A_THREAT = "not_a_threat"  # memorial-day sirens
    OPERATOR = "operator"  # unknown and untitled: for operators' eyes, not residents'


#: History ``category`` ids (AlertsHistory.json, GetAlarmsHistory.aspx): the ``id`` column of
#: the Home Front Command's published ``alertCategories.json``, all 28 entries.
#: Each maps to what it means; ``None`` as kind means the phase alone says it.
HISTORY_CATEGORIES: dict[int, tuple[str, Phase, AlertKind | None]] = {
    1: ("missilealert", Phase.ALERT, AlertKind.MISSILES),
    2: ("uav", Phase.ALERT, AlertKind.HOSTILE_AIRCRAFT),
    3: ("nonconventional", Phase.ALERT, AlertKind.NONCONVENTIONAL),
    4: ("warning", Phase.ALERT, AlertKind.GENERAL_WARNING),
    5: ("memorialday1", Phase.NOT_A_THREAT, None),
    6: ("memorialday2", Phase.NOT_A_THREAT, None),
    7: ("earthquakealert1", Phase.ALERT, AlertKind.EARTHQUAKE),
    8: ("earthquakealert2", Phase.ALERT, AlertKind.EARTHQUAKE),
    9: ("cbrne", Phase.ALERT, AlertKind.NUCLEAR),
    10: ("terrorattack", Phase.ALERT, AlertKind.INFILTRATION),
    11: ("tsunami", Phase.ALERT, AlertKind.TSUNAMI),
    12: ("hazmat", Phase.ALERT, AlertKind.HAZMAT),
    13: ("update", Phase.END, None),  # "the event has ended" (an update that is not an end says so)
    14: ("flash", Phase.ALERT, AlertKind.INFO),  # pre-alert: alerts expected in the next minutes
    15: ("missilealertdrill", Phase.DRILL, None),
    16: ("uavdrill", Phase.DRILL, None),
    17: ("nonconventionaldrill", Phase.DRILL, None),
    18: ("warningdrill", Phase.DRILL, None),
    19: ("memorialdaydrill1", Phase.DRILL, None),
    20: ("memorialdaydrill2", Phase.DRILL, None),
    21: ("earthquakedrill1", Phase.DRILL, None),
    22: ("earthquakedrill2", Phase.DRILL, None),
    23: ("cbrnedrill", Phase.DRILL, None),
    24: ("terrorattackdrill", Phase.DRILL, None),
    25: ("tsunamidrill", Phase.DRILL, None),
    26: ("hazmatdrill", Phase.DRILL, None),
    27: ("updatedrill", Phase.DRILL, None),
    28: ("flashdrill", Phase.DRILL, None),
}

#: Live ``alerts.json`` ``cat`` codes: the ``matrix_id`` column of the same list, as the
#: Oref site's own live map reads them (missilealert→1, earthquake→3, cbrne→4, tsunami→5,
#: uav→6, hazmat→7, update/flash→10, terrorattack→13, drills ≥ 100). Categories whose
#: matrix id is not published (nonconventional, warning) are known by their titles.
LIVE_CAT_KINDS: dict[int, AlertKind] = {
    1: AlertKind.MISSILES,
    3: AlertKind.EARTHQUAKE,
    4: AlertKind.NUCLEAR,  # radiological / CBRNE event
    5: AlertKind.TSUNAMI,
    6: AlertKind.HOSTILE_AIRCRAFT,  # hostile aircraft intrusion (drones)
    7: AlertKind.HAZMAT,
    13: AlertKind.INFILTRATION,
}
#: Live ``cat`` 10 is "update"/"flash": pre-alert, update or end — only the title tells which.
LIVE_TITLE_ONLY_CAT = 10
LIVE_DRILL_CAT_MIN = 100

#: Threat names as they appear in titles (Hebrew live/history, English extended history).
#: Non-conventional comes before the plain missile phrase it may contain.
_TITLE_KINDS: tuple[tuple[str, AlertKind], ...] = (
    ("ירי בלתי קונבנציונלי", AlertKind.NONCONVENTIONAL),
    ("בלתי קונבנציונלי", AlertKind.NONCONVENTIONAL),
    ("ירי רקטות וטילים", AlertKind.MISSILES),
    ("חדירת כלי טיס עוין", AlertKind.HOSTILE_AIRCRAFT),
    ("רעידת אדמה", AlertKind.EARTHQUAKE),
    ("צונאמי", AlertKind.TSUNAMI),
    ("חומרים מסוכנים", AlertKind.HAZMAT),
    ("חדירת מחבלים", AlertKind.INFILTRATION),
    ("אירוע רדיולוגי", AlertKind.NUCLEAR),
    ("התרעה כללית", AlertKind.GENERAL_WARNING),
    ("non-conventional", AlertKind.NONCONVENTIONAL),
    ("nonconventional", AlertKind.NONCONVENTIONAL),
    ("unconventional", AlertKind.NONCONVENTIONAL),
    ("missile", AlertKind.MISSILES),
    ("rocket", AlertKind.MISSILES),
    ("hostile aircraft", AlertKind.HOSTILE_AIRCRAFT),
    ("earthquake", AlertKind.EARTHQUAKE),
    ("tsunami", AlertKind.TSUNAMI),
    ("hazardous materials", AlertKind.HAZMAT),
    ("terrorist infiltration", AlertKind.INFILTRATION),
    ("radiological", AlertKind.NUCLEAR),
    ("general warning", AlertKind.GENERAL_WARNING),
)
#: An update of an alert that goes on. Checked before the end phrases: it contains one.
_UPDATE_PHRASES = (
    "ניתן לצאת מהמרחב המוגן אך יש להישאר בקרבתו",
    "ניתן לצאת מהמרחב המוגן אך יש להישאר בקרבת",
    "אך יש להישאר בקרבתו",
    "but stay near",
    "but remain near",
    "but stay close",
)
#: An end. Checked before the pre-alert phrases: "end of the stay near the shelter" contains one.
_END_PHRASES = (
    "האירוע הסתיים",
    "הארוע הסתיים",  # the spelling seen in AlertsHistory.json
    "סיום שהייה בסמיכות למרחב המוגן",
    "סיום השהייה בסמיכות למרחב המוגן",
    "ניתן לצאת מהמרחב המוגן",
    "event has ended",
    "event ended",
    "end of stay near",
    "end of the stay near",
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
_NOT_A_THREAT_PHRASES = ("יום הזיכרון", "יום הזכרון", "צפירת זיכרון", "memorial day", "memorial siren")

#: Every kind this parser can raise; an end message ends each of them in its areas.
OREF_KINDS: tuple[AlertKind, ...] = (
    AlertKind.MISSILES,
    AlertKind.HOSTILE_AIRCRAFT,
    AlertKind.EARTHQUAKE,
    AlertKind.NUCLEAR,
    AlertKind.TSUNAMI,
    AlertKind.HAZMAT,
    AlertKind.INFILTRATION,
    AlertKind.NONCONVENTIONAL,
    AlertKind.GENERAL_WARNING,
    AlertKind.INFO,
    AlertKind.UNKNOWN,
)


#: What :func:`_live_json` returns for the live feed's "no alert" body (JSON ``null`` is not that).
_NO_ALERT = object()


def _live_json(body: bytes, source: str, where: str | None) -> Any:
    """The live feed's JSON, or :data:`_NO_ALERT` for its documented "no alert" answer: an
    empty or whitespace-only body (a BOM allowed). Undecodable text or bad JSON is a ParseError."""
    if not decode_text(body, source, where).strip():
        return _NO_ALERT
    return load_json(body, source, where)


def parse(
    body: bytes,
    *,
    source: str,
    where: str | None = None,
) -> Snapshot:
    """Dispatch on the payload: a JSON list is a history, an object or empty body the live feed."""
    data = _live_json(body, source, where)
    if data is _NO_ALERT:
        return Snapshot(source=source)
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
    data = _live_json(body, source, where)
    if data is _NO_ALERT:
        return Snapshot(source=source)
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
    if code is not None and not history and code >= LIVE_DRILL_CAT_MIN:
        return Phase.DRILL, None
    meaning = HISTORY_CATEGORIES.get(code) if history and code is not None else None
    if meaning is not None and meaning[1] in (Phase.DRILL, Phase.NOT_A_THREAT):
        return meaning[1], None
    if any(p in lowered for p in _NOT_A_THREAT_PHRASES):
        return Phase.NOT_A_THREAT, None
    for phrases, phase in ((_UPDATE_PHRASES, Phase.UPDATE), (_END_PHRASES, Phase.END)):
        if any(p in lowered for p in phrases):
            return phase, None
    if any(p in lowered for p in _PRE_ALERT_PHRASES):
        return Phase.ALERT, AlertKind.INFO
    for phrase, kind in _TITLE_KINDS:
        if phrase in lowered:
            return Phase.ALERT, kind
    if meaning is not None:
        return meaning[1], meaning[2]
    if not history and code is not None and code in LIVE_CAT_KINDS:
        return Phase.ALERT, LIVE_CAT_KINDS[code]
    if not title.strip():
        return Phase.OPERATOR, None
    if not history and code == LIVE_TITLE_ONLY_CAT:
        return Phase.ALERT, AlertKind.INFO  # a news flash we have no phrase for: informational
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
    quiet = _not_for_residents(phase, f"cat={code} title={title!r} areas={len(areas)}")
    if quiet is not None:
        return Snapshot(source=source, warnings=quiet)
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


def _not_for_residents(phase: Phase, what: str) -> tuple[str, ...] | None:
    """The log lines for a message residents must not hear; None when they must hear it.

    An update changes nothing (the alert goes on until its end) and is not worth a line.
    """
    if phase is Phase.DRILL:
        return (f"drill ignored: {what}",)
    if phase is Phase.NOT_A_THREAT:
        return (f"not a threat (memorial siren) ignored: {what}",)
    if phase is Phase.OPERATOR:
        return (f"operator warning: message of unknown category without a title, not announced: {what}",)
    if phase is Phase.UPDATE:
        return ()
    return None


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
        quiet = _not_for_residents(phase, f"category={code} title={title!r} area={area!r}")
        if quiet is not None:
            warnings.extend(quiet)
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
