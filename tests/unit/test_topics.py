"""Broadcast topics (DESIGN §10): the pure expansion and how routing posts to topics.

Against the real shipped registry: 27 oblasts, 126 raions, 1,469 hromadas.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.core.regions import RegionRegistry
from alertd.core.route import Router, Subscriber, topic_subscribers
from alertd.core.topics import (
    TopicBinding,
    TopicRule,
    collisions,
    expand,
    follow_link,
    for_place,
    is_topic,
    placeholders,
    slug,
    url_code,
)

T0 = datetime(2026, 11, 25, 12, 3, tzinfo=UTC)
NTFY = "ntfys://ntfy.example.org/alerts-{code}"
LEVELS = (RegionLevel.OBLAST, RegionLevel.HROMADA)


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


@pytest.fixture(scope="module")
def city_topics(registry: RegionRegistry) -> list[TopicBinding]:
    return expand([TopicRule("places", NTFY, levels=LEVELS)], registry)


def event(
    region: Region, status: EventStatus = EventStatus.STARTED, kind: AlertKind = AlertKind.AIR_RAID
) -> AlertEvent:
    return AlertEvent(
        id=AlertEvent.make_id("t", region.code, kind, status),
        source="alerts_in_ua",
        kind=kind,
        status=status,
        region=region,
        started_at=T0,
        observed_at=T0,
    )


def region(registry: RegionRegistry, code: str) -> Region:
    found = registry.get(code)
    assert found is not None, code
    return found


def urls(router: Router, ev: AlertEvent) -> list[str]:
    return [row.channel for row in router.route(ev)]


# -- expansion ---------------------------------------------------------------------------------


def test_template_gives_one_url_safe_topic_per_place_at_the_chosen_levels(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    levels = Counter(region(registry, b.place).level for b in city_topics)
    assert levels == {RegionLevel.OBLAST: 27, RegionLevel.HROMADA: 1469}
    by_place = {b.place: b for b in city_topics}
    assert by_place["ua:706"].url == "ntfys://ntfy.example.org/alerts-ua-706"
    assert by_place["UA-32"].url == "ntfys://ntfy.example.org/alerts-UA-32"
    assert len({b.url for b in city_topics}) == len(city_topics)  # one topic per place
    # every topic name is a valid ntfy topic: [-_A-Za-z0-9]{1,64}
    assert all(follow_link(b.url) == b.follow for b in city_topics)
    assert all(b.follow and b.follow.startswith("https://ntfy.example.org/alerts-") for b in city_topics)
    assert collisions(TopicRule("places", NTFY, levels=LEVELS), registry) == []


def test_placeholders_slug_and_oblast_code(registry: RegionRegistry) -> None:
    irpin = region(registry, "ua:706")
    assert url_code("ua:706") == "ua-706" and url_code("UA-30") == "UA-30"
    assert slug(irpin) == "irpin-and-irpinska-hromada"
    assert placeholders("ntfy://h/{slug}-{oblast_code}") == {"slug", "oblast_code"}
    assert placeholders("ntfy://h/{bad") == {"{"}  # unbalanced: reported by alertd check
    rule = TopicRule("s", "ntfy://h/{slug}-{oblast_code}", places=("ua:706",))
    assert [b.url for b in expand([rule], registry)] == ["ntfy://h/irpin-and-irpinska-hromada-UA-32"]


def test_slug_only_template_collides_and_names_the_places(registry: RegionRegistry) -> None:
    found = collisions(TopicRule("s", "ntfy://h/{slug}", levels=(RegionLevel.HROMADA,)), registry)
    assert found, "73 hromada names repeat across oblasts"
    for first, codes in found:
        assert first == codes[0] and len(codes) >= 2
        assert len({slug(region(registry, c)) for c in codes}) == 1
    # a template sharing on purpose (one topic per oblast) is not a collision
    assert collisions(TopicRule("o", "ntfy://h/{oblast_code}", levels=(RegionLevel.HROMADA,)), registry) == []


def test_explicit_list_binds_one_url_to_several_places(registry: RegionRegistry) -> None:
    rule = TopicRule("kyiv", "tgram://123456:AAbbCC/@kyiv_alerts", places=("UA-30", "UA-32", "UA-30"))
    bindings = expand([rule], registry)
    assert [b.place for b in bindings] == ["UA-30", "UA-32"]
    assert {b.url for b in bindings} == {"tgram://123456:AAbbCC/@kyiv_alerts"}
    assert {b.follow for b in bindings} == {"https://t.me/kyiv_alerts"}
    assert "AAbbCC" not in repr(rule) and "AAbbCC" not in repr(bindings[0])
    assert is_topic(bindings[0].subscriber) and not is_topic("resident-1")


def test_follow_links_never_carry_credentials() -> None:
    assert follow_link("ntfy://alerts-ua-706") == "https://ntfy.sh/alerts-ua-706"
    assert (
        follow_link("ntfys://user:pw@ntfy.example.org/alerts-x?priority=5")
        == "https://ntfy.example.org/alerts-x"
    )
    assert follow_link("ntfy://tk_abc@10.0.0.5:8080/alerts-x") == "http://10.0.0.5:8080/alerts-x"
    assert follow_link("tgram://123456:AAbbCC/-100123456") is None  # a private chat id
    assert follow_link("mailto://user:pw@example.org") is None
    assert follow_link("json://127.0.0.1:9/t/x") is None


def test_for_place_is_own_topic_else_nearest_enclosing(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    assert [b.place for b in for_place(city_topics, registry, "ua:706")] == ["ua:706"]
    raion = region(registry, "ua:706").parent or ""
    # a raion has no topic of its own at these levels: its oblast's topic hears everything inside it
    assert [b.place for b in for_place(city_topics, registry, raion)] == ["UA-32"]
    city = region(registry, "ua:5279")  # Kryvyi Rih, a city inside a hromada
    assert [b.place for b in for_place(city_topics, registry, city.code)] == [city.parent]
    assert for_place(city_topics, registry, "nowhere") == []


# -- routing -----------------------------------------------------------------------------------


def test_hromada_topic_hears_its_hromada_raion_and_oblast_once_each(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    router = Router(topic_subscribers(city_topics), registry)
    irpin = region(registry, "ua:706")
    raion = region(registry, irpin.parent or "")
    oblast = region(registry, "UA-32")
    mine = "ntfys://ntfy.example.org/alerts-ua-706"
    for place in (irpin, raion, oblast):
        assert urls(router, event(place)).count(mine) == 1, place.code
    sibling = next(r for r in registry.children(raion.code) if r.code != irpin.code)
    assert mine not in urls(router, event(sibling))
    assert mine not in urls(router, event(region(registry, "UA-30")))


def test_oblast_alert_posts_once_to_every_topic_inside_and_nothing_else(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    router = Router(topic_subscribers(city_topics), registry)
    oblast = region(registry, "UA-63")  # Kharkiv oblast
    rows = router.route(event(oblast))
    inside = {b.url for b in city_topics if registry.contains("UA-63", b.place)}
    assert Counter(r.channel for r in rows) == Counter(inside)
    assert len(inside) == 1 + sum(
        1 for r in registry if r.level is RegionLevel.HROMADA and r.oblast == "UA-63"
    )
    assert all(is_topic(r.subscriber) for r in rows)


def test_nationwide_alert_is_one_post_per_place_however_many_residents(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    people = [
        Subscriber(f"p{i}", ("ua:706",), frozenset(), (), "uk", (f"json://127.0.0.1/p{i}",))
        for i in range(500)
    ]
    router = Router([*topic_subscribers(city_topics), *people], registry)
    posts = Counter()
    for oblast in registry.oblasts():
        posts.update(r.channel for r in router.route(event(oblast)) if is_topic(r.subscriber))
    assert set(posts) == {b.url for b in city_topics}  # every topic, ...
    assert set(posts.values()) == {1}  # ... exactly once


def test_topics_come_first_and_own_a_url_shared_with_a_person(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    shared = "ntfys://ntfy.example.org/alerts-ua-706"
    person = Subscriber("p", ("ua:706",), frozenset(), (), "en", ("json://127.0.0.1/p", shared))
    router = Router([*topic_subscribers(city_topics), person], registry)
    rows = router.route(event(region(registry, "ua:706")))
    assert [r.channel for r in rows].count(shared) == 1
    assert [r.subscriber for r in rows] == ["topic:places:UA-32", "topic:places:ua:706", "p"]


def test_shared_topic_url_gets_one_post_per_event(registry: RegionRegistry) -> None:
    per_oblast = expand(
        [TopicRule("obl", "ntfy://h/alerts-{oblast_code}", levels=(RegionLevel.OBLAST, RegionLevel.HROMADA))],
        registry,
    )
    telegram = expand([TopicRule("kyiv", "tgram://1:AA/@kyiv_alerts", places=("UA-30", "UA-32"))], registry)
    router = Router(topic_subscribers([*per_oblast, *telegram]), registry)
    rows = router.route(event(region(registry, "UA-32")))
    assert Counter(r.channel for r in rows) == {"ntfy://h/alerts-UA-32": 1, "tgram://1:AA/@kyiv_alerts": 1}


def test_topic_kinds_and_language(registry: RegionRegistry) -> None:
    rule = TopicRule(
        "missiles",
        "ntfy://h/m-{code}",
        levels=(RegionLevel.OBLAST,),
        kinds=frozenset({AlertKind.MISSILES}),
        language="en",
    )
    router = Router(topic_subscribers(expand([rule], registry)), registry)
    kyiv = region(registry, "UA-30")
    assert router.route(event(kyiv, kind=AlertKind.AIR_RAID)) == []
    rows = router.route(event(kyiv, kind=AlertKind.MISSILES))
    assert [(r.channel, r.language) for r in rows] == [("ntfy://h/m-UA-30", "en")]


def test_any_topic_hears_exactly_the_alerts_covering_its_place(
    registry: RegionRegistry, city_topics: list[TopicBinding]
) -> None:
    """For sampled places P and event regions E: P's topic is posted to iff P and E lie on one line."""
    router = Router(topic_subscribers(city_topics), registry)
    rng = random.Random(12)
    regions = list(registry)
    by_url = {b.url: b.place for b in city_topics}
    for _ in range(200):
        where = rng.choice(regions)
        posted = {by_url[c] for c in urls(router, event(where))}
        expected = {b.place for b in city_topics if registry.related(b.place, where.code)}
        assert posted == expected, where.code
