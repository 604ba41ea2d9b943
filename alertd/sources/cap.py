r"""OASIS CAP 1.1/1.2 messages and the Atom or RSS indexes publishers list them in.

CAP is the international standard for public alerts, so its fields map onto
:class:`~alertd.core.model.Notice` almost one to one. What arrives on the wire is
told apart by the root element:

* ``<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">`` (or ``…:cap:1.1``) — one
  message, one notice per ``<info>`` block (an ``<info>`` per language is common);
* an Atom ``<feed>`` or RSS ``<rss>`` index. Each entry (item) is either
  **thick** — it embeds the whole ``<alert>`` (as XML in ``<content>``, or escaped
  as text) and is read here — or **thin** — it only links to the message
  (``<link type="application/cap+xml" href=…>``, an ``.xml``/``.cap`` href, or the
  link of an entry carrying ``cap:`` summary fields, as MeteoAlarm and the US NWS
  publish). Thin entries come back as :class:`~alertd.sources.spec.MessageLink` entries
  keyed by identifier and sent time; the poller fetches each version once
  (:func:`alertd.run.poll.resolve_links`).

What residents never see:

* a message without one of the required elements ``identifier``, ``sender``,
  ``sent``, ``status``, ``msgType``, ``scope`` (or with a value CAP does not define)
  is refused with a :class:`ParseError` naming the element; in an index only that
  entry is refused (a warning), the other entries stand;
* ``scope`` Restricted or Private: addressed to officials, not the public — read,
  not announced (logged once at info);
* ``status`` other than Actual (Exercise, System, Test, Draft) and ``Ack``
  messages: not real alerts — read, not announced.

``Update`` and ``Cancel`` messages carry ``<references>`` to what they replace; the
tracker turns them into ``updated`` and ``cancelled`` events. Pure: no I/O, no
clock, no logging.
"""

from __future__ import annotations

import re
from datetime import datetime
from xml.etree.ElementTree import Element

from alertd.core.model import AlertKind, Notice, Severity
from alertd.errors import ParseError
from alertd.sources._common import check_size, load_xml
from alertd.sources.rss import clip
from alertd.sources.spec import FeedShape, ItemBatch, MessageLink, ParseInput, SkippedItem, SourceSpec

KIND = "cap"

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"
_CAP_NAMESPACES = (CAP12, CAP11)
_ATOM = "http://www.w3.org/2005/Atom"

#: Longest summary kept (description + instruction).
SUMMARY_MAX = 2000

MSG_TYPES = frozenset({"Alert", "Update", "Cancel", "Ack", "Error"})
STATUSES = frozenset({"Actual", "Exercise", "System", "Test", "Draft"})
SCOPES = frozenset({"Public", "Restricted", "Private"})
#: The elements CAP 1.1 and 1.2 require of every ``<alert>``.
REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
_CAP_MEDIA = "application/cap+xml"

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


def parse(body: bytes, *, source: str, where: str | None = None) -> list[Notice]:
    """A CAP message or a thick index → its public notices, or raise :class:`ParseError`.

    The simple entry point: it cannot fetch, so an index with thin entries is refused
    here (use :func:`parse_feed` and fetch the links, as the daemon and ``alertd parse`` do),
    and a message or entry not meant for residents yields no notice.
    """
    batch = parse_feed(body, source=source, where=where)
    if batch.links:
        raise ParseError(
            source,
            f"index links to {len(batch.links)} CAP message(s) it does not embed: "
            "use parse_feed and fetch them",
            where,
        )
    return list(batch.notices)


def parse_feed(body: bytes, *, source: str, where: str | None = None) -> ItemBatch:
    """A CAP message, or an Atom/RSS index of them → notices, links to fetch, refused entries."""
    check_size(body, source, where)
    root = load_xml(body, source, where)  # refuses DTDs, entities, external refs, malformed XML
    ns, local = _split(root.tag)
    if local == "alert" and ns in _CAP_NAMESPACES:
        return read_message(root, source=source, where=where)
    if local == "feed" and ns == _ATOM:
        return _read_index(root.findall(f"{{{_ATOM}}}entry"), "Atom entry", source=source, where=where)
    if local == "rss" and ns == "":
        return _read_index(root.findall("channel/item"), "RSS item", source=source, where=where)
    if local == "alert":
        raise ParseError(source, f"unsupported CAP namespace {ns or '(none)'!r}", where)
    raise ParseError(
        source, f"root element <{local}> is neither a CAP alert nor an Atom/RSS index of them", where
    )


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
    """One CAP ``<alert>`` → its notices for residents ([] when it is not for them)."""
    return list(read_message(root, source=source, where=where).notices)


def read_message(root: Element, *, source: str, where: str | None = None) -> ItemBatch:
    """One CAP ``<alert>`` → one notice per ``<info>`` (or one for a Cancel/Error without info).

    Required elements are checked first, all of them, and a missing one is named. A
    valid message that is not for residents (scope, status, Ack) yields no notice and
    one :class:`SkippedItem` saying why, to be logged once.
    """
    ns, _ = _split(root.tag)
    missing = [name for name in REQUIRED if _text(root, ns, name) is None]
    if missing:
        names = ", ".join(f"<{name}>" for name in missing)
        raise ParseError(source, f"required CAP element {names} is missing or empty", where)
    identifier = _required(root, ns, "identifier", source, where)
    sent = _time(_required(root, ns, "sent", source, where), "sent", source, where)
    status = _one_of(root, ns, "status", STATUSES, source, where)
    msg_type = _one_of(root, ns, "msgType", MSG_TYPES, source, where)
    scope = _one_of(root, ns, "scope", SCOPES, source, where)
    key = f"{identifier}|{sent.isoformat()}"
    if status != "Actual":
        return _not_announced(key, f"CAP message {identifier}: status {status}, not a real alert")
    if msg_type == "Ack":
        return _not_announced(key, f"CAP message {identifier}: an acknowledgement, not an alert")
    if scope != "Public":
        return _not_announced(
            key, f"CAP message {identifier}: scope {scope}, addressed to officials, not the public"
        )
    return ItemBatch(notices=tuple(_notices(root, ns, identifier, sent, msg_type, source, where)))


def _not_announced(key: str, reason: str) -> ItemBatch:
    return ItemBatch(skipped=(SkippedItem(key, reason + ": not announced", warning=False),))


def _one_of(
    parent: Element, ns: str, name: str, allowed: frozenset[str], source: str, where: str | None
) -> str:
    value = _required(parent, ns, name, source, where)
    if value not in allowed:
        raise ParseError(source, f"CAP <{name}> {value!r} is not one of {', '.join(sorted(allowed))}", where)
    return value


def _notices(
    root: Element,
    ns: str,
    identifier: str,
    sent: datetime,
    msg_type: str,
    source: str,
    where: str | None,
) -> list[Notice]:
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


def parse_atom_index(root: Element, *, source: str, where: str | None = None) -> ItemBatch:
    """A CAP Atom index, thick or thin (see the module doc); kept as a name for callers of old."""
    return _read_index(root.findall(f"{{{_ATOM}}}entry"), "Atom entry", source=source, where=where)


def _read_index(entries: list[Element], what: str, *, source: str, where: str | None) -> ItemBatch:
    """Each entry on its own: a bad one is refused with a warning, the rest of the index stands.

    An index with entries of which none embeds, links to or summarises a CAP message is
    not a CAP index at all (the wrong URL or type for this source): that is an error.
    """
    notices: list[Notice] = []
    links: list[MessageLink] = []
    skipped: list[SkippedItem] = []
    for position, entry in enumerate(entries):
        cap_ns = _entry_cap_ns(entry)
        ident = (_text(entry, cap_ns, "identifier") if cap_ns else None) or _entry_text(entry, "id", "guid")
        name = f"{what} {position}" + (f" ({ident})" if ident else "")
        key = _version_key(entry, cap_ns, ident or str(position))
        try:
            alert = _embedded_alert(entry, source, where)
            if alert is not None:
                batch = read_message(alert, source=source, where=where)
                notices += batch.notices
                skipped += batch.skipped
                continue
            reason = _summary_says_not_public(entry, cap_ns) if cap_ns else None
            if reason is not None:
                skipped.append(SkippedItem(key, f"{name}: {reason}: not announced", warning=False))
                continue
            href = _message_href(entry, cap_ns)
            if href is None:
                skipped.append(
                    SkippedItem(key, f"{name}: embeds no CAP message and links to none", warning=True)
                )
                continue
            links.append(MessageLink(key=key, url=href, entry=name))
        except ParseError as exc:
            skipped.append(SkippedItem(key, f"{name} refused: {exc.reason}", warning=True))
    if entries and not notices and not links and all(item.warning for item in skipped):
        raise ParseError(source, f"no {what} embeds or links to a CAP message: is this a CAP index?", where)
    return ItemBatch(notices=tuple(notices), links=tuple(links), skipped=tuple(skipped))


def _entry_cap_ns(entry: Element) -> str | None:
    """The CAP namespace of an entry's ``cap:`` summary fields, if it has any."""
    for el in entry:
        ns, _ = _split(el.tag)
        if ns in _CAP_NAMESPACES:
            return ns
    return None


def _entry_text(entry: Element, *names: str) -> str | None:
    """The first of Atom ``names`` (namespaced) or RSS ``names`` (plain) the entry has."""
    for name in names:
        value = _text(entry, _ATOM, name)
        if value is None:
            el = entry.find(name)
            value = el.text.strip() if el is not None and el.text and el.text.strip() else None
        if value is not None:
            return value
    return None


def _version_key(entry: Element, cap_ns: str | None, ident: str) -> str:
    """Identity and version of the message an entry stands for: identifier + sent where given.

    A new version (an Update re-using the entry, a new sent time) gets a new key and is
    fetched; the same version never is twice.
    """
    sent = _text(entry, cap_ns, "sent") if cap_ns else None
    version = sent or _entry_text(entry, "updated", "published", "pubDate") or ""
    return f"{ident}|{version}"


def _embedded_alert(entry: Element, source: str, where: str | None) -> Element | None:
    """A CAP ``<alert>`` inside the entry: as XML (thick Atom ``<content>``) or as escaped text."""
    for el in entry.iter():
        ns, local = _split(el.tag)
        if local == "alert" and ns in _CAP_NAMESPACES:
            return el
    for el in entry.iter():
        _, local = _split(el.tag)
        text = (el.text or "").strip()
        if local in ("content", "description", "summary") and text.startswith("<") and "alert" in text[:400]:
            inner = load_xml(text.encode("utf-8"), source, where)
            ns, local = _split(inner.tag)
            if local == "alert" and ns in _CAP_NAMESPACES:
                return inner
    return None


def _summary_says_not_public(entry: Element, cap_ns: str) -> str | None:
    """A thin entry whose own ``cap:`` summary already rules it out: no need to fetch it."""
    status = _text(entry, cap_ns, "status")
    if status is not None and status != "Actual":
        return f"status {status}, not a real alert"
    scope = _text(entry, cap_ns, "scope")
    if scope is not None and scope != "Public":
        return f"scope {scope}, addressed to officials, not the public"
    return None


def _message_href(entry: Element, cap_ns: str | None) -> str | None:
    """Where the entry's full CAP message lives, in order of how sure we are:

    a link typed ``application/cap+xml`` (Atom ``<link>``, RSS ``<enclosure>``); an href
    ending in ``.xml``/``.cap``; for an entry with ``cap:`` summary fields, its
    alternate link (or an http(s) id/guid).
    """
    typed: list[tuple[str, str, str]] = []  # (type, href, rel)
    for link in entry.findall(f"{{{_ATOM}}}link"):
        typed.append((link.get("type") or "", link.get("href") or "", link.get("rel") or "alternate"))
    for enclosure in entry.findall("enclosure"):
        typed.append((enclosure.get("type") or "", enclosure.get("url") or "", "enclosure"))
    rss_link = entry.find("link")
    if rss_link is not None and rss_link.text and rss_link.text.strip():
        typed.append(("", rss_link.text.strip(), "alternate"))
    for media, href, _ in typed:
        if href and media.split(";")[0].strip().lower() == _CAP_MEDIA:
            return href
    for _, href, rel in typed:
        if href and rel != "self" and re.search(r"\.(xml|cap)$", href.split("?")[0].split("#")[0], re.I):
            return href
    if cap_ns is None:
        return None
    for _, href, rel in typed:
        if href and rel in ("alternate", "enclosure"):
            return href
    ident = _entry_text(entry, "id", "guid")
    return ident if ident and re.match(r"^https?://", ident) else None


def _parse_payload(payload: ParseInput) -> ItemBatch:
    return parse_feed(payload.body, source=payload.source, where=payload.where)


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.ITEM,
    summary="OASIS CAP 1.1/1.2 messages, or an Atom/RSS index of them",
    # Generic: no default URL. Publishers change these a few times a day and dislike hammering.
    default_interval=300.0,
    # Thin indexes are fetched message by message: ask for CAP first where the server negotiates
    # (api.weather.gov answers JSON-LD unless told), Atom/RSS for the index itself.
    accept="application/cap+xml, application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5",
    parse_items=_parse_payload,
)
