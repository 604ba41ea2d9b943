"""Routing (DESIGN §4): who hears an event, against the real shipped region registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from alertd.config import Settings, SubscriberConfig
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.core.regions import RegionRegistry
from alertd.core.route import Router, Subscriber, subscribers_from
from alertd.store.sqlite import StoredSubscriber

T0 = datetime(2026, 11, 25, 12, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


@pytest.fixture(scope="module")
def places(registry: RegionRegistry) -> dict[str, Region]:
    """A real hromada in Kyiv oblast, its raion and oblast, a sibling hromada, and neighbours."""
    irpin = registry.search("Ірпінь", 1)[0]
    raion = registry.get(irpin.parent or "")
    assert raion is not None and raion.level is RegionLevel.RAION and raion.oblast == "UA-32"
    sibling_raion = next(r for r in registry.children("UA-32") if r.code != raion.code)
    other_hromada = registry.children(sibling_raion.code)[0]
    found = {
        "hromada": irpin,
        "raion": raion,
        "oblast": registry.get("UA-32"),
        "kyiv": registry.get("UA-30"),
        "zhytomyr": registry.get("UA-18"),
        "other_hromada": other_hromada,
    }
    assert all(v is not None for v in found.values())
    return found  # type: ignore[return-value]


def sub(name: str, regions: tuple[str, ...] = (), **kw: object) -> Subscriber:
    return Subscriber(
        name=name,
        regions=regions,
        kinds=kw.get("kinds", frozenset()),  # type: ignore[arg-type]
        advisories=kw.get("advisories", ()),  # type: ignore[arg-type]
        language=kw.get("language", "uk"),  # type: ignore[arg-type]
        urls=kw.get("urls", (f"json://localhost/{name}",)),  # type: ignore[arg-type]
    )


def event(
    region: Region | None,
    kind: AlertKind = AlertKind.AIR_RAID,
    status: EventStatus = EventStatus.STARTED,
    **kw: object,
) -> AlertEvent:
    return AlertEvent(
        id=AlertEvent.make_id("t", region.code if region else None, kind, status, kw.get("country")),
        source=str(kw.pop("source", "alerts_in_ua")),
        kind=kind,
        status=status,
        region=region,
        started_at=T0,
        observed_at=T0,
        **kw,  # type: ignore[arg-type]
    )


def names(router: Router, ev: AlertEvent) -> list[str]:
    return [row.subscriber for row in router.route(ev)]


def test_hromada_subscriber_hears_own_raion_and_oblast(registry: RegionRegistry, places: dict) -> None:
    router = Router([sub("h", (places["hromada"].code,))], registry)
    assert names(router, event(places["hromada"])) == ["h"]
    assert names(router, event(places["raion"])) == ["h"]
    assert names(router, event(places["oblast"])) == ["h"]
    assert names(router, event(places["other_hromada"])) == []  # a hromada elsewhere in the oblast
    assert names(router, event(places["kyiv"])) == []


def test_oblast_subscriber_hears_everything_inside(registry: RegionRegistry, places: dict) -> None:
    router = Router([sub("o", ("UA-32",))], registry)
    for key in ("hromada", "raion", "oblast", "other_hromada"):
        assert names(router, event(places[key])) == ["o"], key
    assert names(router, event(places["zhytomyr"])) == []  # neighbouring oblast


def test_kyiv_city_and_kyiv_oblast_are_separate(registry: RegionRegistry, places: dict) -> None:
    router = Router([sub("city", ("UA-30",)), sub("oblast", ("UA-32",))], registry)
    assert names(router, event(places["kyiv"])) == ["city"]
    assert names(router, event(places["oblast"])) == ["oblast"]
    assert names(router, event(places["hromada"])) == ["oblast"]


def test_ended_and_updated_route_like_started(registry: RegionRegistry, places: dict) -> None:
    router = Router([sub("h", (places["hromada"].code,))], registry)
    for status in (EventStatus.ENDED, EventStatus.UPDATED):
        assert names(router, event(places["oblast"], status=status)) == ["h"]


def test_kinds_filter(registry: RegionRegistry, places: dict) -> None:
    router = Router(
        [sub("air", ("UA-32",), kinds=frozenset({AlertKind.AIR_RAID})), sub("all", ("UA-32",))], registry
    )
    assert names(router, event(places["oblast"])) == ["air", "all"]
    assert names(router, event(places["oblast"], AlertKind.ARTILLERY)) == ["all"]


def test_advisories_by_source_and_country(registry: RegionRegistry) -> None:
    router = Router(
        [
            sub("by-source", advisories=("us-state-dept",)),
            sub("by-country", advisories=("ua",)),
            sub("other", advisories=("PL",)),
            sub("regional", ("UA-32",)),
        ],
        registry,
    )
    adv = event(None, AlertKind.ADVISORY, EventStatus.ISSUED, source="us-state-dept", country="UA")
    assert names(router, adv) == ["by-source", "by-country"]
    other = event(None, AlertKind.ADVISORY, EventStatus.CANCELLED, source="gov-uk", country="pl")
    assert names(router, other) == ["other"]
    no_country = event(None, AlertKind.ADVISORY, EventStatus.UPDATED, source="gov-uk")
    assert names(router, no_country) == []


def test_shared_url_emitted_once_first_subscriber_wins(registry: RegionRegistry, places: dict) -> None:
    shared = "tgram://123456789:abcdefg_hijklmnop/-100123"
    router = Router(
        [
            sub("mum", ("UA-32",), urls=(shared, "json://localhost/mum"), language="uk"),
            sub("son", (places["hromada"].code,), urls=(shared,), language="en"),
        ],
        registry,
    )
    rows = router(event(places["hromada"]))
    assert [(r.subscriber, r.channel, r.language) for r in rows] == [
        ("mum", shared, "uk"),
        ("mum", "json://localhost/mum", "uk"),
    ]
    assert all(r.event_id == rows[0].event_id for r in rows)


def test_subscriber_without_regions_or_advisories_hears_nothing(
    registry: RegionRegistry, places: dict
) -> None:
    router = Router([sub("empty")], registry)
    assert router.route(event(places["oblast"])) == []
    assert router.route(event(None, AlertKind.ADVISORY, EventStatus.ISSUED, country="UA")) == []


def test_unknown_region_uses_its_own_parent_chain(registry: RegionRegistry) -> None:
    unknown = Region(
        code="alerts_in_ua:99999",
        level=RegionLevel.HROMADA,
        name_uk="Невідома громада",
        parent="UA-32",
        oblast="UA-32",
    )
    router = Router([sub("o", ("UA-32",)), sub("city", ("UA-30",))], registry)
    assert names(router, event(unknown)) == ["o"]
    orphan = unknown.model_copy(
        update={"parent": "alerts_in_ua:12345"}
    )  # parent unknown too: oblast still counts
    assert names(router, event(orphan)) == ["o"]


def test_subscribers_from_config_and_store() -> None:
    settings = Settings(
        language="en",
        subscribers=[
            SubscriberConfig(name="cfg", regions=["UA-30"], urls=[SecretStr("json://localhost/a")]),
            SubscriberConfig(name="cfg-uk", regions=["UA-32"], language="uk", kinds=[AlertKind.AIR_RAID]),
        ],
    )
    stored = [
        StoredSubscriber(
            name="cli", regions=("UA-18",), kinds=("drones", "no-such-kind"), urls=("json://x/",)
        ),
        StoredSubscriber(name="gone", regions=("UA-18",), status="removed"),
        StoredSubscriber(name="cfg", regions=("UA-18",)),  # name clash: the config file wins
    ]
    subs = subscribers_from(settings, stored)
    assert [s.name for s in subs] == ["cfg", "cfg-uk", "cli"]
    assert subs[0].urls == ("json://localhost/a",) and subs[0].language == "en"
    assert subs[1].language == "uk" and subs[1].kinds == frozenset({AlertKind.AIR_RAID})
    assert subs[2].kinds == frozenset({AlertKind.DRONES}) and subs[2].language == "en"
    assert "json://" not in repr(subs[0])  # URLs are secrets


def test_residents_naming_the_same_places_share_one_region_tuple_and_kind_set() -> None:
    """A city's residents name the same few places and kinds: one object each, not one per resident."""
    settings = Settings(
        language="en",
        subscribers=[
            SubscriberConfig(name=f"r{i}", regions=["UA-30"], urls=[SecretStr(f"json://localhost/{i}")])
            for i in range(3)
        ]
        + [SubscriberConfig(name="uk", regions=["UA-32"], kinds=[AlertKind.AIR_RAID])],
    )
    stored = [StoredSubscriber(name="cli", regions=("UA-30",), kinds=("air_raid",), urls=("json://x/",))]
    subs = subscribers_from(settings, stored)
    assert subs[0].regions is subs[1].regions is subs[2].regions is subs[4].regions == ("UA-30",)
    assert subs[0].kinds is subs[2].kinds == frozenset()
    assert subs[3].kinds is subs[4].kinds == frozenset({AlertKind.AIR_RAID})
    assert subs[3].regions == ("UA-32",) and [s.urls for s in subs[:2]] == [
        ("json://localhost/0",),
        ("json://localhost/1",),
    ]
    assert not hasattr(subs[0], "__dict__")  # slotted: a router holds one per subscriber


def test_ten_thousand_subscribers(registry: RegionRegistry) -> None:
    codes = [r.code for r in registry]
    subs = [sub(f"s{i}", (codes[i % len(codes)],), urls=(f"json://localhost/{i}",)) for i in range(10_000)]
    router = Router(subs, registry)
    rows = router.route(event(registry.get("UA-32")))
    expected = sum(1 for s in subs if registry.related(s.regions[0], "UA-32"))
    assert len(rows) == expected > 0
    assert len({r.channel for r in rows}) == len(rows)
