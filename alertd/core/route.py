"""Routing: which channels must hear an event (DESIGN §4). Pure: no I/O, no clock, no logging.

A region matches when the event's region and the subscribed region lie on one
line of the hierarchy: an oblast subscriber hears every alert inside the oblast,
and a hromada subscriber hears its raion's and oblast's alerts. Advisories (item
feed notices, usually without a region) reach subscribers that opted into their
source name or country.

The :class:`Router` is built once per subscriber set and precomputes indexes, so
fanning one event out to 10,000 subscribers costs a few dict lookups plus the
rows it emits, never a scan of every subscriber. Subscriber URLs are secrets
(tokens, phone numbers): nothing here logs or formats them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alertd.config import Settings, topic_rule
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region
from alertd.core.regions import RegionRegistry
from alertd.core.topics import TopicBinding, expand
from alertd.store.base import OutboxRow, StoredSubscriber

__all__ = ["Router", "Subscriber", "subscribers_from", "topic_bindings", "topic_subscribers"]

#: Statuses that only item feeds (RSS/Atom/CAP) produce: such an event also reaches advisory subscribers.
_NOTICE_STATUSES: frozenset[EventStatus] = frozenset({EventStatus.ISSUED, EventStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A routing-ready subscriber: plain values, URLs unwrapped from ``SecretStr``.

    ``kinds`` empty means every kind. ``urls`` are secrets: never log them.
    Slotted: a router holds one per subscriber (10,000 in a city).
    """

    name: str
    regions: tuple[str, ...]
    kinds: frozenset[AlertKind]
    advisories: tuple[str, ...]
    language: str
    urls: tuple[str, ...]

    def __repr__(self) -> str:
        """Without the URLs: a subscriber in a traceback or debug log must not leak tokens."""
        return (
            f"Subscriber(name={self.name!r}, regions={self.regions!r}, kinds={sorted(self.kinds)!r}, "
            f"advisories={self.advisories!r}, language={self.language!r}, urls=<{len(self.urls)} hidden>)"
        )


def _kinds(values: Iterable[str | AlertKind]) -> frozenset[AlertKind]:
    """Known kinds only. Unknown names (a store row written by a newer version) are ignored.

    If that leaves nothing, the result is empty, which means *every* kind: for a
    civilian alert service a superfluous notice is the safer failure than silence.
    """
    known = {k.value for k in AlertKind}
    return frozenset(AlertKind(str(v)) for v in values if str(v) in known)


def subscribers_from(settings: Settings, stored: Iterable[StoredSubscriber]) -> list[Subscriber]:
    """Config subscribers first (in file order), then the store's active ones.

    A stored subscriber whose name is already used by the config file is skipped:
    the outbox identifies subscribers by name, and the file is the operator's word.
    Languages default to ``settings.language``.
    """
    out: list[Subscriber] = []
    names: set[str] = set()
    # Equal region lists and kind sets are one shared object each: thousands of residents of one
    # city name the same few (a fresh frozenset per subscriber is 216 bytes × 10,000).
    same_regions: dict[tuple[str, ...], tuple[str, ...]] = {}
    same_kinds: dict[frozenset[AlertKind], frozenset[AlertKind]] = {}
    for sub in settings.subscribers:
        names.add(sub.name)
        out.append(
            Subscriber(
                name=sub.name,
                regions=same_regions.setdefault(regions := tuple(sub.regions), regions),
                kinds=same_kinds.setdefault(kinds := _kinds(sub.kinds), kinds),
                advisories=tuple(sub.advisories),
                language=sub.language or settings.language,
                urls=tuple(u.get_secret_value() for u in sub.urls),
            )
        )
    for rec in stored:
        if rec.status != "active" or rec.name in names:
            continue
        names.add(rec.name)
        out.append(
            Subscriber(
                name=rec.name,
                regions=same_regions.setdefault(regions := tuple(rec.regions), regions),
                kinds=same_kinds.setdefault(kinds := _kinds(rec.kinds), kinds),
                advisories=tuple(rec.advisories),
                language=rec.language or settings.language,
                urls=tuple(rec.urls),
            )
        )
    return out


def topic_bindings(settings: Settings, registry: RegionRegistry) -> list[TopicBinding]:
    """Every configured ``[[topics]]`` section expanded to its places (languages default to the global one)."""
    return expand([topic_rule(t, settings.language) for t in settings.topics], registry)


def topic_subscribers(bindings: Iterable[TopicBinding]) -> list[Subscriber]:
    """Each topic binding as a subscriber of its one place (see :mod:`alertd.core.topics`).

    Routing then gives a topic exactly what a resident of that place must hear:
    alerts in the place, in the places containing it and inside it. Put these
    first in the router's list: a URL shared with a person is then owned by the
    topic (no personal footer on a message many read), and topic rows are
    written, hence claimed, before the individual rows of the same event.
    """
    return [
        Subscriber(
            name=b.subscriber,
            regions=(b.place,),
            kinds=b.kinds,
            advisories=(),
            language=b.language,
            urls=(b.url,),
        )
        for b in bindings
    ]


class Router:
    """Maps an event to outbox rows for a fixed subscriber set.

    Indexes (values are subscriber positions, so output order is subscriber order):

    * ``exact[S]``: subscribers of region S;
    * ``under[A]``: subscribers of a region strictly inside A (A is an ancestor of S);
    * ``by_source[name]`` / ``by_country[CC]``: advisory opt-ins.

    An event in region E reaches ``under[E]`` (places inside E) plus ``exact[A]``
    for A on E's upward line including E itself (E and the places containing it).
    """

    def __init__(self, subscribers: Sequence[Subscriber], registry: RegionRegistry) -> None:
        self._subs: tuple[Subscriber, ...] = tuple(subscribers)
        self._registry = registry
        exact: dict[str, list[int]] = {}
        under: dict[str, list[int]] = {}
        by_source: dict[str, list[int]] = {}
        by_country: dict[str, list[int]] = {}
        for i, sub in enumerate(self._subs):
            for code in dict.fromkeys(sub.regions):
                exact.setdefault(code, []).append(i)
                for anc in registry.ancestors(code):
                    under.setdefault(anc.code, []).append(i)
            for adv in dict.fromkeys(a.strip() for a in sub.advisories):
                if not adv:
                    continue
                by_source.setdefault(adv, []).append(i)
                if len(adv) == 2 and adv.isalpha():  # "UA" / "ua": a country (could also be a source name)
                    by_country.setdefault(adv.upper(), []).append(i)
        self._exact = exact
        self._under = under
        self._by_source = by_source
        self._by_country = by_country

    def __len__(self) -> int:
        return len(self._subs)

    def _upward(self, region: Region) -> list[str]:
        """E's code, its ancestors', and its oblast: the places that contain E.

        Prefers the registry's record; a region the registry does not know (an
        upstream id not mapped yet) walks up from its own parent, and its
        ``oblast`` is added in any case so it still reaches oblast subscribers.
        """
        known = self._registry.get(region.code)
        base = known if known is not None else region
        line = [base.code] + [r.code for r in self._registry.ancestors(base)]
        for extra in (base.parent, base.oblast):
            if extra is not None and extra not in line:
                line.append(extra)
        return line

    def matches(self, event: AlertEvent) -> list[Subscriber]:
        """The subscribers that must hear ``event``, in subscriber order."""
        hit: set[int] = set()
        region = event.region
        if region is not None:
            regional: set[int] = set(self._under.get(region.code, ()))
            for code in self._upward(region):
                regional.update(self._exact.get(code, ()))
            hit.update(i for i in regional if not self._subs[i].kinds or event.kind in self._subs[i].kinds)
        if region is None or event.status in _NOTICE_STATUSES:
            # Advisories are an explicit opt-in by source or country; ``kinds`` filters regional alerts only.
            hit.update(self._by_source.get(event.source, ()))
            if event.country:
                hit.update(self._by_country.get(event.country.strip().upper(), ()))
        return [self._subs[i] for i in sorted(hit)]

    def route(self, event: AlertEvent) -> list[OutboxRow]:
        """One row per (subscriber, URL); a URL shared by several subscribers goes out once.

        The first subscriber in order owns a shared URL (its language is used), so
        a family sharing one Telegram group is not told three times.
        """
        rows: list[OutboxRow] = []
        seen: set[str] = set()
        for sub in self.matches(event):
            for url in sub.urls:
                if url in seen:
                    continue
                seen.add(url)
                rows.append(
                    OutboxRow(event_id=event.id, subscriber=sub.name, channel=url, language=sub.language)
                )
        return rows

    __call__ = route
