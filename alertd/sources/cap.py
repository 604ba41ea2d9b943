"""OASIS CAP 1.2 messages and CAP Atom indexes (e.g. MeteoAlarm's legacy Atom feed).

CAP is the international standard for public alerts, so its fields map onto
:class:`~alertd.core.model.Notice` almost one to one. Two shapes arrive on the wire and
are told apart by the root element:

* ``<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">`` — one message, one
  notice per ``<info>`` block (an ``<info>`` per language is common);
* an Atom ``<feed>`` whose entries carry ``cap:`` summary fields and a link to the
  full message — one notice per entry.

CAP 1.1 is accepted too: the elements alertd reads are the same. Messages whose
``status`` is not ``Actual`` (Exercise, System, Test, Draft) are dropped: they are
not meant for the public and must never reach a subscriber as a real alert.
``Ack`` messages are dropped for the same reason. Everything else that is wrong
(missing required element, unknown msgType, time without offset) raises
:class:`ParseError`. Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
from datetime import datetime
from xml.etree.ElementTree import Element

from alertd.core.model import AlertKind, Notice, Severity
from alertd.errors import ParseError
from alertd.sources._common import check_size, load_xml
from alertd.sources.rss import clip
from alertd.sources.spec import FeedShape, ItemBatch, ParseInput, SourceSpec

KIND = "cap"

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"
_CAP_NAMESPACES = (CAP12, CAP11)
_ATOM = "http://www.w3.org/2005/Atom"

#: Longest summary kept (description + instruction).
SUMMARY_MAX = 2000

MSG_TYPES = frozenset({"Alert", "Update", "Cancel", "Ack", "Error"})

#: CAP severity → model severity; anything else (including CAP's own "Unknown") → UNKNOWN.
SEVERITY: dict[str, Severity] = {
    "extreme": Severity.EXTREME,
    "severe": Severity.SEVERE,
    "moderate": Severity.MODERATE,
    "minor": Severity.MINOR,
}

#: Words in <event> (or the Atom title) → kind. Checked in order; the first match wins,
#: so specific dangers come before broad ones.
_EVENT_WORDS: tuple[tuple[re.Pattern[str], AlertKind], ...] = (
    (re.compile(r"tsunami", re.I), AlertKind.TSUNAMI),
    (re.compile(r"earthquake|seismic|\bquake", re.I), AlertKind.EARTHQUAKE),
    (re.compile(r"nuclear|radiolog|radiation", re.I), AlertKind.NUCLEAR),
    (re.compile(r"chemical", re.I), AlertKind.CHEMICAL),
    (re.compile(r"hazmat|hazardous material", re.I), AlertKind.HAZMAT),
    (re.compile(r"air[ -]?raid", re.I), AlertKind.AIR_RAID),
    (re.compile(r"missile|rocket", re.I), AlertKind.MISSILES),
    (re.compile(r"\bdrones?\b|\buavs?\b", re.I), AlertKind.DRONES),
    (re.compile(r"hostile aircraft", re.I), AlertKind.HOSTILE_AIRCRAFT),
    (re.compile(r"infiltration", re.I), AlertKind.INFILTRATION),
    (re.compile(r"artillery|shelling", re.I), AlertKind.ARTILLERY),
    (re.compile(r"urban fight|street fight", re.I), AlertKind.URBAN_FIGHTS),
)

#: eventCode valueName that names an alertd kind outright (alertd's own CAP feed, core/cap_out).
EVENTCODE_KIND = "alertd:kind"

#: CAP <category> → kind when the event text names nothing specific. ``Geo`` alone is
#: not an earthquake (landslides, volcanoes are Geo too); ``Security`` is an advisory
#: (a threat-level change, not an instruction to take cover).
_CATEGORY_KIND: dict[str, AlertKind] = {
    "CBRNE": AlertKind.HAZMAT,
    "Security": AlertKind.ADVISORY,
}


def parse(
    body: bytes,
    *,
    source: str,
    where: str | None = None,
) -> list[Notice]:
    """Turn a CAP message or a CAP Atom index into notices, or raise :class:`ParseError`."""
    check_size(body, source, where)
    root = load_xml(body, source, where)  # refuses DTDs, entities, external refs, malformed XML
    ns, local = _split(root.tag)
    if local == "alert" and ns in _CAP_NAMESPACES:
        return parse_message(root, source=source, where=where)
    if local == "feed" and ns == _ATOM:
        return parse_atom_index(root, source=source, where=where)
    if local == "alert":
        raise ParseError(source, f"unsupported CAP namespace {ns or '(none)'!r}", where)
    raise ParseError(source, f"root element <{local}> is neither a CAP alert nor an Atom feed", where)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _text(parent: Element, ns: str, name: str) -> str | None:
    el = parent.find(f"{{{ns}}}{name}")
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _texts(parent: Element, ns: str, name: str) -> list[str]:
    return [el.text.strip() for el in parent.findall(f"{{{ns}}}{name}") if el.text and el.text.strip()]


def _required(parent: Element, ns: str, name: str, source: str, where: str | None) -> str:
    value = _text(parent, ns, name)
    if value is None:
        raise ParseError(source, f"required CAP element <{name}> is missing or empty", where)
    return value


def _time(value: str, field: str, source: str, where: str | None) -> datetime:
    """A CAP dateTime: ISO 8601 with an explicit offset (required by CAP; never guessed)."""
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError as exc:
        raise ParseError(source, f"<{field}> is not a CAP dateTime: {value!r}", where) from exc
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ParseError(source, f"<{field}> has no UTC offset: {value!r}", where)
    return dt


def kind_for(event: str, categories: list[str]) -> AlertKind:
    """Map a CAP event name and categories to a kind; ADVISORY when nothing specific matches."""
    for pattern, kind in _EVENT_WORDS:
        if pattern.search(event):
            return kind
    for category in categories:
        if category in _CATEGORY_KIND:
            return _CATEGORY_KIND[category]
    return AlertKind.ADVISORY


def _coded_kind(info: Element, ns: str) -> AlertKind | None:
    """The kind an ``<eventCode>`` names with valueName ``alertd:kind``, if any: no guessing from words."""
    for code in info.findall(f"{{{ns}}}eventCode"):
        if _text(code, ns, "valueName") == EVENTCODE_KIND:
            value = _text(code, ns, "value") or ""
            if value in AlertKind.__members__.values():
                return AlertKind(value)
    return None


def _optional_time(parent: Element, ns: str, name: str, source: str, where: str | None) -> datetime | None:
    value = _text(parent, ns, name)
    return None if value is None else _time(value, name, source, where)


def parse_message(root: Element, *, source: str, where: str | None = None) -> list[Notice]:
    """One CAP ``<alert>`` → one notice per ``<info>`` (or one for a Cancel/Error without info)."""
    ns, _ = _split(root.tag)
    identifier = _required(root, ns, "identifier", source, where)
    _required(root, ns, "sender", source, where)
    sent = _time(_required(root, ns, "sent", source, where), "sent", source, where)
    status = _required(root, ns, "status", source, where)
    msg_type = _required(root, ns, "msgType", source, where)
    if msg_type not in MSG_TYPES:
        raise ParseError(source, f"unknown CAP msgType {msg_type!r}", where)
    if status != "Actual" or msg_type == "Ack":
        return []  # exercises, tests, drafts and acknowledgements are not public alerts
    references = tuple((_text(root, ns, "references") or "").split())
    infos = root.findall(f"{{{ns}}}info")

    if not infos:
        note = _text(root, ns, "note") or ""
        return [
            Notice(
                source=source,
                id=identifier,
                title=clip(note, 200) if note else f"{msg_type}: {identifier}",
                summary=clip(note, SUMMARY_MAX),
                published_at=sent,
                updated_at=sent,
                kind=AlertKind.ADVISORY,
                msg_type=msg_type,
                references=references,
            )
        ]

    languages = [_text(info, ns, "language") or "en-US" for info in infos]
    by_language = len(set(languages)) == len(languages)
    notices: list[Notice] = []
    for index, (info, language) in enumerate(zip(infos, languages, strict=True)):
        suffix = language if by_language else str(index)
        notice_id = identifier if len(infos) == 1 else f"{identifier}#{suffix}"
        event = _text(info, ns, "event") or ""
        headline = _text(info, ns, "headline")
        description = _text(info, ns, "description")
        instruction = _text(info, ns, "instruction")
        summary = "\n\n".join(" ".join(part.split()) for part in (description, instruction) if part)
        severity_text = _text(info, ns, "severity") or ""
        areas: list[str] = []
        geocodes: list[tuple[str, str]] = []
        for area in info.findall(f"{{{ns}}}area"):
            areas.extend(_texts(area, ns, "areaDesc"))
            for geocode in area.findall(f"{{{ns}}}geocode"):
                name, value = _text(geocode, ns, "valueName"), _text(geocode, ns, "value")
                if name and value:
                    geocodes.append((name, value))
        title = headline or event
        if not title:
            raise ParseError(source, "CAP <info> has neither <headline> nor <event>", where)
        notices.append(
            Notice(
                source=source,
                id=notice_id,
                title=clip(title, 500),
                summary=clip(summary, SUMMARY_MAX),
                url=_text(info, ns, "web"),
                published_at=sent,
                updated_at=sent,
                kind=_coded_kind(info, ns) or kind_for(event, _texts(info, ns, "category")),
                severity=SEVERITY.get(severity_text.lower(), Severity.UNKNOWN),
                urgency=_text(info, ns, "urgency"),
                certainty=_text(info, ns, "certainty"),
                msg_type=msg_type,
                references=references,
                language=language,
                areas=tuple(areas),
                geocodes=tuple(geocodes),
                onset=_optional_time(info, ns, "onset", source, where),
                effective=_optional_time(info, ns, "effective", source, where),
                response_types=tuple(_texts(info, ns, "responseType")),
            )
        )
    return notices


def parse_atom_index(root: Element, *, source: str, where: str | None = None) -> list[Notice]:
    """A CAP Atom index (MeteoAlarm legacy Atom): one notice per entry, url = the full CAP message.

    A feed with no entries is a genuine "nothing in force"; entries without any ``cap:``
    field mean this is not a CAP index at all, which is an error (wrong parser for the source).
    """
    atom = f"{{{_ATOM}}}"
    notices: list[Notice] = []
    for position, entry in enumerate(root.findall(f"{atom}entry")):
        ns = next((n for n in _CAP_NAMESPACES if entry.find(f"{{{n}}}event") is not None), None)
        if ns is None:
            ns = next(
                (n for n in _CAP_NAMESPACES if any(el.tag.startswith(f"{{{n}}}") for el in entry)), None
            )
        if ns is None:
            raise ParseError(source, f"Atom entry {position} carries no cap: fields", where)
        status = _text(entry, ns, "status")
        if status is not None and status != "Actual":
            continue
        msg_type = _text(entry, ns, "message_type") or _text(entry, ns, "msgType")
        if msg_type is not None and msg_type not in MSG_TYPES:
            raise ParseError(source, f"Atom entry {position}: unknown CAP message type {msg_type!r}", where)
        if msg_type == "Ack":
            continue
        identifier = _text(entry, ns, "identifier") or _text(entry, _ATOM, "id")
        if not identifier:
            raise ParseError(source, f"Atom entry {position} has neither cap:identifier nor id", where)
        event = _text(entry, ns, "event") or ""
        title = _text(entry, _ATOM, "title") or event
        if not title:
            raise ParseError(source, f"Atom entry {position} has neither title nor cap:event", where)
        sent_text = _text(entry, ns, "sent") or _text(entry, _ATOM, "published")
        updated_text = _text(entry, _ATOM, "updated")
        sent = _time(sent_text, "sent", source, where) if sent_text else None
        updated = _time(updated_text, "updated", source, where) if updated_text else sent
        effective = _text(entry, ns, "effective")
        expires = _text(entry, ns, "expires")
        window = []
        if effective:
            window.append(f"Effective {_time(effective, 'effective', source, where).isoformat()}")
        if expires:
            window.append(f"expires {_time(expires, 'expires', source, where).isoformat()}")
        summary = _text(entry, _ATOM, "summary") or ""
        summary = " ".join(
            p for p in (f"{event}." if event else "", " ".join(summary.split()), "; ".join(window)) if p
        )
        area_desc = _text(entry, ns, "areaDesc") or ""
        severity_text = _text(entry, ns, "severity") or ""
        notices.append(
            Notice(
                source=source,
                id=identifier,
                title=clip(title, 500),
                summary=clip(summary, SUMMARY_MAX),
                url=_cap_link(entry),
                published_at=sent,
                updated_at=updated,
                kind=kind_for(event, []),
                severity=SEVERITY.get(severity_text.lower(), Severity.UNKNOWN),
                urgency=_text(entry, ns, "urgency"),
                certainty=_text(entry, ns, "certainty"),
                msg_type=msg_type,
                # MeteoAlarm joins area names with " | " (names themselves contain commas).
                areas=tuple(a.strip() for a in area_desc.split("|") if a.strip()),
            )
        )
    return notices


def _cap_link(entry: Element) -> str | None:
    """The link to the full CAP message; failing that, the entry's alternate page."""
    links = entry.findall(f"{{{_ATOM}}}link")
    for link in links:
        if (link.get("type") or "").startswith("application/cap+xml") and link.get("href"):
            return link.get("href")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    return None


def _parse_payload(payload: ParseInput) -> ItemBatch:
    return ItemBatch(notices=tuple(parse(payload.body, source=payload.source, where=payload.where)))


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.ITEM,
    summary="OASIS CAP 1.1/1.2 messages, or an Atom/RSS index of them",
    # Generic: no default URL. Publishers change these a few times a day and dislike hammering.
    default_interval=300.0,
    parse_items=_parse_payload,
)
