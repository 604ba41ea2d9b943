"""alertd's knowledge as OASIS CAP 1.2: one ``<alert>`` per event, and a thin Atom index of them.

Pure: events (and a region-id lookup) in, bytes out; no clock (``now`` is passed in),
no I/O. The web shell (:mod:`alertd.web.cap`) reads the events from the store.

How an alert's life maps onto CAP messages (the README's "CAP feed for others"):

* ``started`` → ``msgType`` **Alert**;
* ``updated`` → **Update**, ``<references>`` naming the start;
* ``ended`` → **Update** with ``responseType`` **AllClear**, ``urgency`` Past, referencing
  the start. Not **Cancel**: CAP 1.2 (§3.2.1) defines Cancel as "cancel the earlier
  message(s)", which receivers read as "that alert was issued in error / withdrawn";
  an air raid that happened and is now over is an all-clear of a real threat, which
  CAP expresses as an Update whose responseType is AllClear ("the subject event no
  longer poses a threat"). Advisories a source withdraws (``cancelled``) do get Cancel.

Every message's ``identifier`` is ``alertd-<event id>``; event ids derive from
upstream facts (region, kind, start, status), so the identifier of a message is the
same after a restart, on every instance, and for every reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

from alertd.core.kinds import KindCap, kind_name, kind_words
from alertd.core.kinds import advice as kind_advice
from alertd.core.languages import LANGUAGES
from alertd.core.model import AlertEvent, EventStatus, RegionLevel, iso_utc
from alertd.core.tracker import Active, event_id

__all__ = [
    "CAP12",
    "CapProfile",
    "KindCap",
    "feed_events",
    "identifier",
    "message_url",
    "msg_type",
    "render_index",
    "render_message",
    "start_event_of",
    "start_id",
]

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"
#: The languages every message carries one ``<info>`` for.
#: geocode valueName of alertd's own region code (ISO 3166-2, KATOTTH or ``<source>:<id>``).
GEOCODE_REGION = "alertd:region"
#: eventCode valueName carrying the alert kind, so a reader need not guess it from words.
EVENTCODE_KIND = "alertd:kind"


#: An ended alert: the threat is over.
END_CAP = ("Past", "Minor", "Observed", "AllClear")


@dataclass(frozen=True)
class CapProfile:
    """Who publishes and where: ``sender`` (CAP sender, no spaces/commas) and the public base URL."""

    sender: str
    base_url: str
    sender_name: str = "alertd"


# -- identity ----------------------------------------------------------------------------
def identifier(event: AlertEvent) -> str:
    """The CAP identifier of the message for ``event``: stable, no spaces, commas, ``<`` or ``&``."""
    return f"alertd-{event.id}"


def message_url(base_url: str, ident: str) -> str:
    return f"{base_url.rstrip('/')}/cap/{ident}.xml"


def start_id(event: AlertEvent) -> str | None:
    """The id of the start event of the alert a state event belongs to (None for notices)."""
    if event.region is None or event.started_at is None:
        return None
    return event_id(event.region.code, event.kind, event.started_at, EventStatus.STARTED)


def start_event_of(item: Active | AlertEvent) -> AlertEvent:
    """The start event of an alert, rebuilt from what is known when it was never stored.

    An alert recorded at the first poll (not announced) has no stored start event; its
    CAP Alert is still published so a reader learns of it. Its ``sent`` is the upstream's
    start time — the same every time it is rebuilt, so its identifier and ETag are stable.
    """
    if isinstance(item, Active):
        return AlertEvent(
            id=item.start_event_id,
            source=item.source,
            kind=item.kind,
            status=EventStatus.STARTED,
            region=item.region,
            severity=item.severity,
            started_at=item.started_at,
            observed_at=item.started_at,
        )
    sid = start_id(item)
    if sid is None or item.started_at is None:
        raise ValueError("only state events (with region and start) have a start event")
    return item.model_copy(
        update={
            "id": sid,
            "status": EventStatus.STARTED,
            "ended_at": None,
            "body": "",
            "observed_at": item.started_at,
        }
    )


def msg_type(event: AlertEvent) -> str:
    if event.status in (EventStatus.STARTED, EventStatus.ISSUED):
        return "Alert"
    if event.status == EventStatus.CANCELLED:
        return "Cancel"
    return "Update"  # updated, and ended (an all-clear of a real threat, see the module doc)


# -- selection -----------------------------------------------------------------------------
def feed_events(
    recent: Iterable[AlertEvent],
    starts: Mapping[str, AlertEvent],
    active_start_ids: Iterable[str],
    now: datetime,
    window: timedelta = timedelta(hours=24),
) -> list[AlertEvent]:
    """The messages the index lists: every message of each alert active now or ended within
    ``window``, and advisories observed within it. Oldest first, each event once.

    ``recent`` are events observed within the window; ``starts`` maps start ids to start
    events (stored or rebuilt) for alerts whose start is older than the window.
    """
    cutoff = now - window
    active = set(active_start_ids)
    chosen: dict[str, AlertEvent] = {}
    for active_id in active:
        if active_id in starts:
            chosen[active_id] = starts[active_id]
    for event in recent:
        if event.observed_at < cutoff:
            continue
        sid = start_id(event)
        if sid is None:
            chosen[event.id] = event
            continue
        if event.status != EventStatus.ENDED and sid not in active:
            # an alert that is over: only its end makes it listed (below), with its whole life
            ended_recently = any(
                e.status == EventStatus.ENDED and start_id(e) == sid and e.observed_at >= cutoff
                for e in recent
            )
            if not ended_recently:
                continue
        chosen[event.id] = event
        if sid in starts:
            chosen.setdefault(sid, starts[sid])
    return sorted(chosen.values(), key=lambda e: (e.observed_at, _order(e), e.id))


def _order(event: AlertEvent) -> int:
    return {EventStatus.STARTED: 0, EventStatus.ISSUED: 0, EventStatus.UPDATED: 1}.get(event.status, 2)


# -- rendering -----------------------------------------------------------------------------
def cap_time(value: datetime) -> str:
    """CAP 1.2 dateTime: seconds and an explicit offset, never "Z" (the schema's pattern)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP12}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _geocodes(
    event: AlertEvent, place_ids: Callable[[str], Sequence[tuple[str, str]]]
) -> list[tuple[str, str]]:
    """ISO 3166-2 for a first-level division (only for one: naming the oblast of a hromada
    would tell readers the whole oblast is under alert), alertd's region code, and the
    upstream place ids (``ukrainealarm``, ``alerts_in_ua``)."""
    region = event.region
    if region is None:
        return [("ISO3166-1", event.country)] if event.country else []
    codes: list[tuple[str, str]] = []
    if region.level in (RegionLevel.OBLAST, RegionLevel.COUNTRY) and not region.code.count(":"):
        codes.append(("ISO3166-2" if region.level == RegionLevel.OBLAST else "ISO3166-1", region.code))
    codes.append((GEOCODE_REGION, region.code))
    for source, sid in place_ids(region.code):
        codes.append((source, sid))
    if ":" in region.code:  # a place only the source knows: "<source>:<id>"
        source, _, sid = region.code.partition(":")
        if (source, sid) not in codes:
            codes.append((source, sid))
    return codes


def _description(event: AlertEvent, lang: str) -> str:
    if event.body:
        return event.body
    place = event.region.name(lang) if event.region else ""
    if event.status == EventStatus.ENDED and event.started_at and event.ended_at:
        if lang == "uk":
            return f"{kind_name(event.kind, lang, end=True)}: {place}. Тривала з {cap_time(event.started_at)} до {cap_time(event.ended_at)}."
        return f"{kind_name(event.kind, lang, end=True)}: {place}. In force from {cap_time(event.started_at)} to {cap_time(event.ended_at)}."
    if event.started_at:
        since = "з" if lang == "uk" else "since"
        return f"{kind_name(event.kind, lang)}: {place}, {since} {cap_time(event.started_at)}."
    return kind_name(event.kind, lang)


def render_message(
    event: AlertEvent,
    profile: CapProfile,
    *,
    start: AlertEvent | None = None,
    place_ids: Callable[[str], Sequence[tuple[str, str]]] = lambda code: (),
) -> bytes:
    """One CAP 1.2 ``<alert>`` for ``event`` (UTF-8 bytes with an XML declaration).

    ``start`` is the alert's start event, referenced by updates and ends (rebuilt with
    :func:`start_event_of` when not given).
    """
    root = ET.Element(f"{{{CAP12}}}alert")
    _sub(root, "identifier", identifier(event))
    _sub(root, "sender", profile.sender)
    _sub(root, "sent", cap_time(event.observed_at))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type(event))
    _sub(root, "source", event.source)
    _sub(root, "scope", "Public")
    if event.region is not None and event.status != EventStatus.STARTED:
        first = start or start_event_of(event)
        _sub(root, "references", f"{profile.sender},{identifier(first)},{cap_time(first.observed_at)}")
    is_state = event.region is not None
    ended = event.status == EventStatus.ENDED
    table = kind_words(event.kind).cap  # the one kinds table (alertd.core.kinds)
    for lang in LANGUAGES:
        info = _sub(root, "info")
        _sub(info, "language", lang)
        _sub(info, "category", table.category)
        _sub(info, "event", kind_name(event.kind, lang))
        if ended:
            urgency, severity, certainty, response = END_CAP
        else:
            urgency, severity, certainty, response = (
                table.urgency,
                table.severity if is_state else str(event.severity),
                table.certainty,
                table.response,
            )
        _sub(info, "responseType", response)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", certainty)
        code = _sub(info, "eventCode")
        _sub(code, "valueName", EVENTCODE_KIND)
        _sub(code, "value", str(event.kind))
        if ended and event.ended_at is not None:
            _sub(info, "effective", cap_time(event.ended_at))
        if event.started_at is not None:
            _sub(info, "onset", cap_time(event.started_at))
        _sub(info, "senderName", profile.sender_name)
        if is_state:
            assert event.region is not None
            headline = f"{kind_name(event.kind, lang, end=ended)} — {event.region.name(lang)}"
        else:
            headline = event.headline or kind_name(event.kind, lang)
        _sub(info, "headline", headline)
        _sub(info, "description", _description(event, lang))
        advice = "" if ended or not is_state else kind_advice(event.kind, lang)
        if advice:
            _sub(info, "instruction", advice)
        if event.url:
            _sub(info, "web", event.url)
        area = _sub(info, "area")
        if event.region is not None:
            desc = event.region.name(lang)
        else:
            desc = event.country or ("Невизначено" if lang == "uk" else "Unspecified")
        _sub(area, "areaDesc", desc)
        for name, value in _geocodes(event, place_ids):
            geocode = _sub(area, "geocode")
            _sub(geocode, "valueName", name)
            _sub(geocode, "value", value)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=CAP12)
    return xml


def render_index(
    events: Sequence[AlertEvent], profile: CapProfile, *, updated: datetime, self_url: str | None = None
) -> bytes:
    """The thin Atom index: one entry per message, linking to its ``/cap/<identifier>.xml``.

    Thin (the OASIS CAP-feeds note's term): entries carry no ``cap:`` fields; readers
    fetch each message. ``updated`` is the newest message's time (or the server's start
    when there is none), so an unchanged feed keeps its bytes and ETag.
    """
    base = profile.base_url.rstrip("/")
    # Unqualified tags under an explicit xmlns: ElementTree's default_namespace option
    # refuses the unqualified attributes (rel, href) Atom uses.
    feed = ET.Element("feed", {"xmlns": ATOM})

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, tag, attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", f"{base}/cap/alerts.atom")
    sub(feed, "title", "alertd: active and recent alerts (CAP 1.2)")
    sub(feed, "updated", iso_utc(updated))
    author = sub(feed, "author")
    sub(author, "name", profile.sender_name)
    sub(feed, "link", rel="self", type="application/atom+xml", href=self_url or f"{base}/cap/alerts.atom")
    for event in reversed(events):  # newest first, as feed readers expect
        ident = identifier(event)
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:alertd:cap:{ident}")
        if event.region is not None:
            title = f"{kind_name(event.kind, 'en', end=event.status == EventStatus.ENDED)} — {event.region.name('en')}"
        else:
            title = event.headline or kind_name(event.kind, "en")
        sub(entry, "title", title)
        sub(entry, "updated", iso_utc(event.observed_at))
        sub(entry, "link", rel="alternate", type="application/cap+xml", href=message_url(base, ident))
    xml: bytes = ET.tostring(
        feed, encoding="utf-8", xml_declaration=True
    )  # bytes for any encoding but "unicode"
    return xml


def etag_of(body: bytes) -> str:
    """A strong ETag of a response body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
