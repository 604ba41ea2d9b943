"""Broadcast topics: one post per place, any number of listeners (DESIGN §10). Pure: no I/O.

Per-person sends do not scale to a city (Telegram ≈ 30 msg/s per bot, an SMS
number ≈ 1/s). A *topic* is a channel that a fan-out engine (an ntfy server, a
Telegram channel, a Matrix room) carries to any number of phones, so alertd
posts once per place and the engine does the rest.

A :class:`TopicRule` (one ``[[topics]]`` section) binds one channel URL to places,
either

* as a **template** applied to every place at chosen levels
  (``ntfys://ntfy.example.org/alerts-{code}`` at oblast and hromada level), or
* as an **explicit list** of places (one Telegram channel for UA-30 and UA-32).

:func:`expand` turns rules into :class:`TopicBinding` s, one per (rule, place).
Routing treats each binding like a subscriber of its one place
(:func:`topic_subscribers`), which is what makes the promise hold: a resident who
follows the topic of their own place hears every alert covering it (the place's
own, its raion's, its oblast's), because the topic is posted to for every event
on its place's line of the hierarchy, exactly as a subscriber of that place would
be. An oblast alert therefore goes to every configured topic of a place inside
the oblast: sends are O(places affected), never O(residents), and the router's
per-URL de-duplication plus the outbox's ``(event, channel)`` key mean a topic
never gets the same notice twice, however many bindings share its URL.

Topic rows are marked by their subscriber name (:data:`TOPIC_PREFIX`, see
:func:`is_topic`): the dispatcher sends them before individual channels of the
same priority and never adds a personal management link to them.

URLs are secrets (a Telegram bot token sits in ``tgram://``): nothing here logs
them; :func:`follow_link` derives the *public* address a resident subscribes to,
which never contains credentials.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from alertd.core.model import AlertKind, Region, RegionLevel
from alertd.core.regions import RegionRegistry, transliterate_uk

__all__ = [
    "PLACEHOLDERS",
    "TOPIC_LEVELS",
    "TOPIC_PREFIX",
    "TopicBinding",
    "TopicRule",
    "collisions",
    "expand",
    "follow_link",
    "for_place",
    "is_topic",
    "placeholders",
    "slug",
    "url_code",
]

#: Outbox rows whose subscriber name starts with this are topic posts (read by many).
TOPIC_PREFIX = "topic:"
#: What a URL template may contain.
PLACEHOLDERS: frozenset[str] = frozenset({"code", "slug", "oblast_code"})
#: Levels a template may be applied at (a country-wide topic is an explicit list).
TOPIC_LEVELS: tuple[RegionLevel, ...] = (
    RegionLevel.OBLAST,
    RegionLevel.RAION,
    RegionLevel.HROMADA,
    RegionLevel.CITY,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


def is_topic(subscriber: str) -> bool:
    """True for an outbox row (or routing subscriber) that is a topic post, not a person."""
    return subscriber.startswith(TOPIC_PREFIX)


@dataclass(frozen=True)
class TopicRule:
    """One ``[[topics]]`` section, as plain values (``url`` unwrapped: a secret, never log it).

    Exactly one of ``levels`` (template mode) and ``places`` (explicit list) is set;
    ``alertd.config`` enforces that. ``kinds`` empty means every kind.
    """

    name: str
    url: str
    levels: tuple[RegionLevel, ...] = ()
    places: tuple[str, ...] = ()
    kinds: frozenset[AlertKind] = frozenset()
    language: str = "uk"
    follow: str | None = None  # public link template; None: derived from the URL where possible

    def __repr__(self) -> str:
        """Without the URL: a rule in a traceback must not leak a bot token."""
        return (
            f"TopicRule(name={self.name!r}, levels={self.levels!r}, places={self.places!r}, "
            f"kinds={sorted(self.kinds)!r}, language={self.language!r})"
        )


@dataclass(frozen=True)
class TopicBinding:
    """One place bound to one topic channel: what a resident of ``place`` follows."""

    topic: str
    place: str
    url: str = field(repr=False)
    kinds: frozenset[AlertKind]
    language: str
    follow: str | None = None  # the public link, if there is one

    @property
    def subscriber(self) -> str:
        """The outbox ``subscriber`` name of this binding's posts (see :func:`is_topic`)."""
        return f"{TOPIC_PREFIX}{self.topic}:{self.place}"


def url_code(code: str) -> str:
    """A region code as it may appear in a URL path or an ntfy topic: ``ua:706`` -> ``ua-706``.

    Region codes are ``UA-NN`` or ``<prefix>:<digits>``, so replacing every
    character outside ``[A-Za-z0-9_-]`` by ``-`` keeps distinct codes distinct
    (``alertd check`` verifies that for the configured levels anyway).
    """
    return _UNSAFE.sub("-", code)


def slug(region: Region) -> str:
    """A readable, URL-safe name: ``Irpin and Irpinska hromada`` -> ``irpin-and-irpinska-hromada``."""
    name = region.name_en or transliterate_uk(region.name_uk)
    return _SLUG_UNSAFE.sub("-", name.lower()).strip("-") or url_code(region.code).lower()


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a template uses (``{{`` / ``}}`` are literal braces)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return {"{"}  # an unbalanced brace: reported as an unknown placeholder


def _fill(template: str, region: Region) -> str:
    values = {
        "code": url_code(region.code),
        "slug": slug(region),
        "oblast_code": url_code(region.oblast or region.code),
    }
    return template.format_map(values) if "{" in template or "}" in template else template


def _places(rule: TopicRule, registry: RegionRegistry) -> list[Region]:
    if rule.levels:
        wanted = set(rule.levels)
        return sorted((r for r in registry if r.level in wanted), key=lambda r: r.code)
    out = []
    for code in dict.fromkeys(rule.places):
        region = registry.get(code)
        if region is not None:  # unknown codes are a config error, reported by alertd check
            out.append(region)
    return out


def expand(rules: Sequence[TopicRule], registry: RegionRegistry) -> list[TopicBinding]:
    """Every (rule, place) binding, rules in order, places by code within a rule."""
    out: list[TopicBinding] = []
    for rule in rules:
        for region in _places(rule, registry):
            url = _fill(rule.url, region)
            follow = _fill(rule.follow, region) if rule.follow else follow_link(url)
            out.append(TopicBinding(rule.name, region.code, url, rule.kinds, rule.language, follow))
    return out


def collisions(rule: TopicRule, registry: RegionRegistry) -> list[tuple[str, list[str]]]:
    """Places of a template rule that would share one URL by accident: ``[(masked hint, codes)]``.

    A template that uses ``{code}`` or ``{slug}`` promises one topic per place;
    if two places expand to the same URL (``{slug}``: 73 hromada names repeat),
    a resident would hear a stranger's alerts. A template with neither (only
    ``{oblast_code}``, or no placeholder) shares on purpose and is not checked.
    The returned hint is the first place's code, never the URL (a secret).
    """
    if not rule.levels or not placeholders(rule.url) & {"code", "slug"}:
        return []
    seen: dict[str, list[str]] = {}
    for region in _places(rule, registry):
        seen.setdefault(_fill(rule.url, region), []).append(region.code)
    return [(codes[0], codes) for codes in seen.values() if len(codes) > 1]


def for_place(bindings: Iterable[TopicBinding], registry: RegionRegistry, place: str) -> list[TopicBinding]:
    """The topic(s) a resident of ``place`` follows to hear every alert covering it.

    Per rule: the binding of the place itself, else of its nearest ancestor that
    has one (a city inside a hromada-level rule follows its hromada's topic, which
    is posted to for every alert in, above or inside that hromada). A binding of a
    place *inside* ``place`` does not qualify: it would miss alerts elsewhere in it.
    """
    line = [place] + [r.code for r in registry.ancestors(place)]
    rank = {code: i for i, code in enumerate(line)}
    best: dict[str, TopicBinding] = {}
    for binding in bindings:
        if binding.place not in rank:
            continue
        current = best.get(binding.topic)
        if current is None or rank[binding.place] < rank[current.place]:
            best[binding.topic] = binding
    return list(best.values())


def follow_link(url: str) -> str | None:
    """The public web address residents subscribe to for a topic URL, or None.

    * ``ntfy://topic`` -> ``https://ntfy.sh/topic``; ``ntfys://host/topic`` ->
      ``https://host/topic``; ``ntfy://host/topic`` -> ``http://host/topic``
      (credentials and query are dropped: they are the publisher's, not the reader's);
    * ``tgram://<bot token>/@channel`` -> ``https://t.me/channel`` (public channels only;
      a numeric chat id has no public address).

    Anything else (Matrix, Discord, …) has no derivable link: set ``follow`` in the config.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("ntfy", "ntfys"):
        host = parts.hostname or ""
        path = [p for p in parts.path.split("/") if p]
        if not path:  # ntfy://topic: the topic is in the host position, the server is ntfy.sh
            return f"https://ntfy.sh/{host}" if host and _is_ntfy_topic(host) else None
        topic = path[-1]
        if not _is_ntfy_topic(topic):
            return None
        web = "https" if scheme == "ntfys" or host == "ntfy.sh" else "http"
        port = f":{parts.port}" if parts.port else ""
        return f"{web}://{host}{port}/{topic}"
    if scheme == "tgram":
        targets = [p for p in parts.path.split("/") if p]
        publics = [t[1:] for t in targets if t.startswith("@") and re.fullmatch(r"@\w{4,}", t)]
        return f"https://t.me/{publics[0]}" if len(publics) == 1 else None
    return None


def _is_ntfy_topic(value: str) -> bool:
    return re.fullmatch(r"[-_A-Za-z0-9]{1,64}", value) is not None
