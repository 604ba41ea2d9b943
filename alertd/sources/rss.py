"""RSS 2.0 / Atom item feeds: US embassy alerts, State Department advisories, FCDO travel advice.

One parser serves every RSS/Atom advisory feed, because they differ only in where
the country and the advisory level hide:

* US State Department ``TAsTWs.xml``: title ``"Maldives - Level 2: Exercise
  Increased Caution"`` plus ``<category domain="Threat-Level">`` and
  ``<category domain="Country-Tag">`` (a FIPS 10-4 code, *not* ISO: ``UP`` is
  Ukraine, ``IS`` is Israel), so FIPS is mapped to ISO with :data:`FIPS_TO_ISO`.
* US embassy WordPress feeds ``https://{cc}.usembassy.gov/category/alert/feed/``:
  the country is the host's first label (ISO alpha-2, except ``uk`` → ``GB``).
* FCDO Atom: one entry per country, titled with the country's name.

Safety: the body is pre-parsed with defusedxml (DTDs, entities and external
references refused) before feedparser ever sees it, and feedparser gets a file
object, never a string it could mistake for a URL or a local file name.
The parser is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import unicodedata
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from alertd.core.model import AlertKind, Notice, Severity
from alertd.errors import ParseError
from alertd.sources._common import check_size, load_xml, parse_time
from alertd.sources.spec import FeedShape, ItemBatch, ParseInput, SkippedItem, SourceSpec

try:  # pycountry is optional: without it only the FIPS table and host names give countries
    import pycountry
except ImportError:  # pragma: no cover - exercised only where pycountry is absent
    pycountry = None  # type: ignore[assignment]

KIND = "rss"

#: Longest plain-text summary kept; a notice is a pointer to the page, not the page.
SUMMARY_MAX = 1000

_ATOM = "{http://www.w3.org/2005/Atom}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF"
_FEED_ROOTS = {"rss", f"{_ATOM}feed", _RDF}

#: feedparser "bozo" reasons (by name) that do not make a well-formed document untrustworthy
#: (the defusedxml pre-parse already proved it well-formed XML).
_BENIGN_BOZO = ("CharacterEncodingOverride", "NonXMLContentType")

#: State Department advisory level → CAP severity.
LEVEL_SEVERITY: dict[int, Severity] = {
    4: Severity.EXTREME,  # Do Not Travel
    3: Severity.SEVERE,  # Reconsider Travel
    2: Severity.MODERATE,  # Exercise Increased Caution
    1: Severity.MINOR,  # Exercise Normal Precautions
}

#: State Department ``Country-Tag`` → ISO 3166-1 alpha-2: every tag of the published
#: TAsTWs.xml (211 items, October 2025), plus the FIPS 10-4 codes earlier feeds used
#: (GZ, WE, IS, HK, US, SZ). The tags are FIPS 10-4 where FIPS has a code and the
#: Department's own otherwise (A1 Caribbean Netherlands, A2 French Guiana, A3 French West
#: Indies; SR for Switzerland): never read a tag as ISO. None: the tag covers several
#: ISO countries (A3: Guadeloupe, Martinique, St Martin, St Barthélemy), so no one code.
FIPS_TO_ISO: dict[str, str | None] = {
    "A1": "BQ", "A2": "GF", "A3": None, "AA": "AW", "AC": "AG", "AE": "AE", "AF": "AF", "AG": "DZ",
    "AJ": "AZ", "AL": "AL", "AM": "AM", "AN": "AD", "AO": "AO", "AR": "AR", "AS": "AU", "AU": "AT",
    "AV": "AI", "AY": "AQ", "BA": "BH", "BB": "BB", "BC": "BW", "BD": "BM", "BE": "BE", "BF": "BS",
    "BG": "BD", "BH": "BZ", "BK": "BA", "BL": "BO", "BM": "MM", "BN": "BJ", "BO": "BY", "BP": "SB",
    "BR": "BR", "BT": "BT", "BU": "BG", "BX": "BN", "BY": "BI", "CA": "CA", "CB": "KH", "CD": "TD",
    "CE": "LK", "CF": "CG", "CG": "CD", "CH": "CN", "CI": "CL", "CJ": "KY", "CM": "CM", "CN": "KM",
    "CO": "CO", "CS": "CR", "CT": "CF", "CU": "CU", "CV": "CV", "CY": "CY", "DA": "DK", "DJ": "DJ",
    "DO": "DM", "DR": "DO", "EC": "EC", "EG": "EG", "EI": "IE", "EK": "GQ", "EN": "EE", "ER": "ER",
    "ES": "SV", "ET": "ET", "EZ": "CZ", "FI": "FI", "FJ": "FJ", "FM": "FM", "FP": "PF", "FR": "FR",
    "GA": "GM", "GB": "GA", "GG": "GE", "GH": "GH", "GJ": "GD", "GL": "GL", "GM": "DE", "GR": "GR",
    "GT": "GT", "GV": "GN", "GW": "GW", "GY": "GY", "GZ": "PS", "HA": "HT", "HK": "HK", "HO": "HN",
    "HR": "HR", "HU": "HU", "IC": "IS", "ID": "ID", "IN": "IN", "IR": "IR", "IS": "IL", "IT": "IT",
    "IV": "CI", "IZ": "IQ", "JA": "JP", "JM": "JM", "JO": "JO", "KE": "KE", "KG": "KG", "KN": "KP",
    "KR": "KI", "KS": "KR", "KU": "KW", "KV": "XK", "KZ": "KZ", "LA": "LA", "LE": "LB", "LG": "LV",
    "LH": "LT", "LI": "LR", "LO": "SK", "LS": "LI", "LT": "LS", "LU": "LU", "LY": "LY", "MA": "MG",
    "MD": "MD", "MG": "MN", "MH": "MS", "MI": "MW", "MJ": "ME", "MK": "MK", "ML": "ML", "MO": "MA",
    "MP": "MU", "MR": "MR", "MT": "MT", "MU": "OM", "MV": "MV", "MX": "MX", "MY": "MY", "MZ": "MZ",
    "NC": "NC", "NG": "NE", "NH": "VU", "NI": "NG", "NL": "NL", "NN": "SX", "NO": "NO", "NP": "NP",
    "NR": "NR", "NS": "SR", "NU": "NI", "NZ": "NZ", "OD": "SS", "PA": "PY", "PE": "PE", "PK": "PK",
    "PL": "PL", "PM": "PA", "PO": "PT", "PP": "PG", "PS": "PW", "QA": "QA", "RI": "RS", "RM": "MH",
    "RO": "RO", "RP": "PH", "RS": "RU", "RW": "RW", "SA": "SA", "SC": "KN", "SE": "SC", "SF": "ZA",
    "SG": "SN", "SI": "SI", "SL": "SL", "SN": "SG", "SO": "SO", "SP": "ES", "SR": "CH", "ST": "LC",
    "SU": "SD", "SW": "SE", "SY": "SY", "SZ": "CH", "TD": "TT", "TH": "TH", "TI": "TJ", "TK": "TC",
    "TN": "TO", "TO": "TG", "TP": "ST", "TS": "TN", "TT": "TL", "TU": "TR", "TV": "TV", "TW": "TW",
    "TX": "TM", "TZ": "TZ", "UC": "CW", "UG": "UG", "UK": "GB", "UP": "UA", "US": "US", "UV": "BF",
    "UY": "UY", "UZ": "UZ", "VC": "VC", "VE": "VE", "VI": "VG", "VM": "VN", "WA": "NA", "WE": "PS",
    "WS": "WS", "WZ": "SZ", "YM": "YE", "ZA": "ZM", "ZI": "ZW",
}  # fmt: skip

#: US embassy host labels that are not the ISO code of the country.
_EMBASSY_HOST_ISO = {"uk": "GB"}
_EMBASSY_HOST = re.compile(r"^https?://(?P<cc>[a-z]{2})\.usembassy\.gov(?:[/:?#]|$)", re.IGNORECASE)
_STATE_TITLE = re.compile(r"^\s*(?P<country>.+?)\s+-\s+Level\s+(?P<level>[1-4])\b", re.IGNORECASE)
_LEVEL = re.compile(r"^\s*Level\s+(?P<level>[1-4])\b", re.IGNORECASE)
_DATE_ONLY_FORMATS = ("%a, %d %b %Y", "%d %b %Y", "%Y-%m-%d")


def parse(body: bytes, *, source: str, where: str | None = None) -> list[Notice]:
    """Turn an RSS 2.0 or Atom body into notices, or raise :class:`ParseError`.

    An empty list means the feed itself said "no items" (a valid channel with
    none); anything that is not a readable RSS/Atom document is an error, so a
    broken proxy page can never look like "no news". Items refused one by one
    (see :func:`parse_feed`) are left out.
    """
    return list(parse_feed(body, source=source, where=where).notices)


def parse_feed(body: bytes, *, source: str, where: str | None = None) -> ItemBatch:
    """The feed's notices, and the items refused alone: one with neither title nor description
    has nothing to tell a reader and is never sent as a blank advisory (a warning instead)."""
    check_size(body, source, where)
    root = load_xml(body, source, where)  # refuses DTDs, entities, external refs, malformed XML
    if root.tag not in _FEED_ROOTS:
        raise ParseError(source, f"not an RSS or Atom document (root element <{_local(root.tag)}>)", where)
    # Imported on first use: a daemon without RSS/Atom sources never needs feedparser (≈ 0.6 MB).
    import feedparser

    # A file object, never bytes or str: feedparser opens a str/bytes that names a URL or file.
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=True, resolve_relative_uris=False)
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        benign = tuple(getattr(feedparser, name) for name in _BENIGN_BOZO)
        if not isinstance(exc, benign):
            raise ParseError(source, f"feed is not well-formed: {exc}", where)
    if not parsed.get("version"):
        raise ParseError(source, "not an RSS or Atom feed", where)
    feed = parsed.get("feed", {})
    host_country = _embassy_country(feed)
    notices: list[Notice] = []
    skipped: list[SkippedItem] = []
    for position, entry in enumerate(parsed.get("entries", [])):
        notice = _notice(entry, source, host_country)
        if notice is None:
            key = (entry.get("id") or "").strip() or entry.get("link") or f"item {position}"
            reason = f"item {position} ({key}) has neither title nor description: refused"
            skipped.append(SkippedItem(key, reason, warning=True))
        else:
            notices.append(notice)
    return ItemBatch(notices=tuple(notices), skipped=tuple(skipped))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _notice(entry: Any, source: str, host_country: str | None) -> Notice | None:
    """One item as a notice; None when it has neither title nor description."""
    title = _plain(entry.get("title", ""), limit=500)
    link = entry.get("link") or None
    content = entry.get("content") or []
    html = content[0].get("value", "") if content else ""
    summary = _plain(html or entry.get("summary", ""), limit=SUMMARY_MAX)
    if not title and not summary:
        return None
    entry_id = (entry.get("id") or "").strip() or link or _hash_id(title or summary, link)

    published = _entry_time(entry, "published")
    updated = _entry_time(entry, "updated") or published

    tags = {
        (t.get("scheme") or "").strip().lower(): (t.get("term") or "").strip() for t in entry.get("tags", [])
    }
    level: int | None = None
    country_name: str | None = None
    if m := _LEVEL.match(tags.get("threat-level", "")):
        level = int(m.group("level"))
    if m := _STATE_TITLE.match(title):
        level = level or int(m.group("level"))
        country_name = m.group("country").strip()
    fips = tags.get("country-tag") or None
    if fips:
        fips = fips.upper()

    country = FIPS_TO_ISO.get(fips) if fips else None
    if country is None and country_name:
        country = _lookup_country(country_name)
    if country is None and host_country:
        country = host_country
        country_name = country_name or _country_name(host_country)
    if country is None and (iso := _lookup_country(title)):  # FCDO: the title is the country
        country, country_name = iso, title
    if country and not country_name:
        country_name = _country_name(country)

    return Notice(
        source=source,
        id=entry_id,
        title=title or clip(summary, 120),  # no title: the description's start, never a link or hash
        summary=summary,
        url=link,
        published_at=published,
        updated_at=updated,
        kind=AlertKind.ADVISORY,
        severity=LEVEL_SEVERITY.get(level, Severity.UNKNOWN) if level else Severity.UNKNOWN,
        level=level,
        country=country,
        country_name=country_name,
        fips=fips,
        language=(entry.get("title_detail") or {}).get("language") or None,
    )


def _hash_id(title: str, link: str | None) -> str:
    """An id for an item with neither guid nor link: stable as long as what a reader sees is."""
    return "sha256:" + hashlib.sha256(f"{title}\x1f{link or ''}".encode()).hexdigest()[:32]


def _entry_time(entry: Any, field: str) -> datetime | None:
    """Read the raw date ourselves (date-only pubDates are midnight UTC), feedparser's as a fallback.

    A bad date on one item does not make the feed untrustworthy, so it yields None, not an error.
    """
    # dict.get, not entry.get: feedparser's own get() maps "updated" to "published" with a warning.
    raw = dict.get(entry, field)
    if isinstance(raw, str) and raw.strip():
        text = raw.strip()
        for fmt in _DATE_ONLY_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                pass
        try:
            return parse_time(text, field, "rss", None)
        except ParseError:
            pass
    st = dict.get(entry, f"{field}_parsed")
    if st is not None:
        year, month, day, hour, minute, second = st[:6]  # a time.struct_time, normalised to UTC
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return None


def _embassy_country(feed: Any) -> str | None:
    """ISO alpha-2 from an ``https://{cc}.usembassy.gov/`` channel link, only when the host matches."""
    hrefs = [feed.get("link") or ""] + [link.get("href") or "" for link in feed.get("links", [])]
    for href in hrefs:
        if m := _EMBASSY_HOST.match(href.strip()):
            cc = m.group("cc").lower()
            iso = _EMBASSY_HOST_ISO.get(cc, cc.upper())
            if pycountry is None or pycountry.countries.get(alpha_2=iso) is not None:
                return iso
    return None


def _lookup_country(name: str) -> str | None:
    """Exact country-name lookup, blind to case, accents and punctuation; never fuzzy.

    "São Tomé and Príncipe", "Sao Tome and Principe" and "Cote d Ivoire" find their
    country; a near miss finds nothing, because a wrong country is worse than none.
    """
    name = name.strip()
    if pycountry is None or not name or len(name) < 4:  # skip bare codes like "UK", "USA"
        return None
    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        pass
    folded = _fold(name)
    names = _folded_names()
    return names.get(folded) or names.get(folded.removeprefix("the")) or _NAME_ALIASES.get(folded)


#: English names publishers use that ISO 3166 (and so pycountry) spells otherwise, folded.
_NAME_ALIASES: dict[str, str] = {
    "macau": "MO", "burma": "MM", "burmamyanmar": "MM", "turkey": "TR", "ivorycoast": "CI",
    "swaziland": "SZ", "easttimor": "TL", "capeverde": "CV", "czechrepublic": "CZ",
    "northkorea": "KP", "southkorea": "KR", "laos": "LA", "russia": "RU", "syria": "SY",
    "iran": "IR", "vietnam": "VN", "moldova": "MD", "tanzania": "TZ", "bolivia": "BO",
    "venezuela": "VE", "taiwan": "TW", "brunei": "BN", "micronesia": "FM", "kosovo": "XK",
    "palestine": "PS", "vaticancity": "VA", "holysee": "VA", "northmacedonia": "MK",
}  # fmt: skip


def _fold(text: str) -> str:
    """Lower case, accents dropped, only letters and digits: "Côte d'Ivoire" → "cotedivoire"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


@functools.cache
def _folded_names() -> dict[str, str]:
    """Folded country name (name, official and common) → ISO alpha-2, built once from pycountry."""
    out: dict[str, str] = {}
    if pycountry is None:
        return out
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                out.setdefault(_fold(value), country.alpha_2)
    return out


def _country_name(iso: str) -> str | None:
    if pycountry is None:
        return None
    country = pycountry.countries.get(alpha_2=iso)
    if country is None:
        return None
    return getattr(country, "common_name", None) or country.name


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become spaces."""

    _BLOCK = frozenset({"p", "br", "div", "li", "ul", "ol", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6"})
    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain_text(html: str) -> str:
    """HTML (or plain text with entities) → one line of text with whitespace collapsed."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return " ".join("".join(extractor.parts).split())


def clip(text: str, limit: int) -> str:
    """Shorten to at most ``limit`` characters at a word boundary, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _plain(html: str, *, limit: int) -> str:
    return clip(plain_text(html or ""), limit)


def _parse_payload(payload: ParseInput) -> ItemBatch:
    return parse_feed(payload.body, source=payload.source, where=payload.where)


SPEC = SourceSpec(
    type=KIND,
    shape=FeedShape.ITEM,
    summary="RSS 2.0 / Atom advisories (State Department, embassies, FCDO)",
    # Generic: no default URL. Publishers change these a few times a day and dislike hammering.
    default_interval=300.0,
    parse_items=_parse_payload,
)
