"""Advisory feeds at their edges: blank items, diacritics, and every State Department country tag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertd.sources import rss

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STATE_TAGS = json.loads(
    (FIXTURES / "us_state_dept" / "tastws_country_tags_211_items.json").read_text("utf-8")
)


def state_feed(items: list[tuple[str, str | None]]) -> bytes:
    """A TAsTWs.xml-shaped RSS channel (title "<Country> - Level N: …", Country-Tag category)."""
    out = []
    for i, (country, tag) in enumerate(items):
        slug = f"https://travel.state.gov/content/travel/en/traveladvisories/traveladvisories/a{i}.html"
        tag_el = f'<category domain="Country-Tag">{tag}</category>' if tag else ""
        out.append(
            f"<item><title>{country} - Level 2: Exercise Increased Caution</title><link>{slug}</link>"
            f"<pubDate>Tue, 07 Oct 2025</pubDate><description>Exercise increased caution.</description>"
            f'<category domain="Threat-Level">Level 2: Exercise Increased Caution</category>{tag_el}'
            f"<guid>{slug}</guid></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>travel.state.gov: Travel Advisories</title><link>https://travel.state.gov/</link>"
        "<description>d</description>" + "".join(out) + "</channel></rss>"
    ).encode()


def test_every_country_tag_of_the_published_feed_resolves_to_its_country() -> None:
    items = [(e["title_country"].replace("&", "&amp;"), e["country_tag"]) for e in STATE_TAGS]
    notices = rss.parse(state_feed(items), source="state")
    assert len(notices) == 211
    resolved = {n.title.split(" - Level")[0]: n.country for n in notices}
    unresolved = sorted(name for name, iso in resolved.items() if iso is None)
    # French West Indies is several ISO countries under one tag: no single code is right
    assert unresolved == ["French West Indies"]


@pytest.mark.parametrize(
    ("country", "tag", "iso"),
    [
        ("Sao Tome and Principe", "TP", "ST"),
        ("Curaçao", "UC", "CW"),
        ("Suriname", "NS", "SR"),
        ("Switzerland", "SR", "CH"),  # the Department's own tag: SR is not Suriname here
        ("Australia", "AS", "AU"),  # FIPS, not ISO: AS is not American Samoa
        ("Austria", "AU", "AT"),
        ("Bonaire", "A1", "BQ"),
        ("French Guiana", "A2", "GF"),
        ("Ukraine", "UP", "UA"),
        ("Cambodia", "KH", "KH"),  # a tag the table lacks: the country's name decides
    ],
)
def test_state_department_tags_are_not_read_as_iso(country: str, tag: str, iso: str) -> None:
    [notice] = rss.parse(state_feed([(country, tag)]), source="state")
    assert notice.country == iso


@pytest.mark.parametrize(
    ("title", "iso"),
    [
        ("São Tomé and Príncipe", "ST"),
        ("Sao Tome and Principe", "ST"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d Ivoire", "CI"),
        ("Curaçao", "CW"),
        ("Réunion", "RE"),
        ("The Gambia", "GM"),
    ],
)
def test_country_names_resolve_with_or_without_diacritics(title: str, iso: str) -> None:
    """The FCDO index: one entry per country, titled with its name (Atom, constructed after its template)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<id>https://www.gov.uk/foreign-travel-advice</id><title>Foreign travel advice</title>"
        "<updated>2025-01-01T00:00:00Z</updated>"
        f"<entry><id>https://www.gov.uk/foreign-travel-advice/x#2025-01-01T00:00:00+00:00</id><title>{title}</title>"
        '<link rel="alternate" type="text/html" href="https://www.gov.uk/foreign-travel-advice/x"/>'
        '<updated>2025-01-01T00:00:00Z</updated><summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
        "<p>Latest update: summary</p></div></summary></entry></feed>"
    ).encode()
    [notice] = rss.parse(body, source="fcdo")
    assert notice.country == iso


def test_near_misses_resolve_to_no_country() -> None:
    [notice] = rss.parse(state_feed([("Atlantis", None)]), source="state")
    assert notice.country is None


def embassy_feed(items: str) -> bytes:
    """The US embassy WordPress RSS2 template (https://{cc}.usembassy.gov/category/alert/feed/)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Alert Archives - U.S. Embassy in Ukraine</title><link>https://ua.usembassy.gov</link>"
        f"<description>d</description>{items}</channel></rss>"
    ).encode()


def test_item_with_neither_title_nor_description_is_refused_alone_with_a_warning() -> None:
    body = embassy_feed(
        "<item><title>Security Alert: Air raid sirens</title><link>https://ua.usembassy.gov/a/</link>"
        "<guid>https://ua.usembassy.gov/?p=1</guid><description>Take shelter.</description></item>"
        "<item><title></title><link>https://ua.usembassy.gov/b/</link>"
        "<guid>https://ua.usembassy.gov/?p=2</guid><description>  </description></item>"
    )
    batch = rss.parse_feed(body, source="embassy")
    assert [n.title for n in batch.notices] == ["Security Alert: Air raid sirens"]
    [refused] = batch.skipped
    assert refused.warning and "neither title nor description" in refused.reason
    assert "?p=2" in refused.reason


def test_item_without_title_is_titled_by_its_description_never_a_hash_or_link() -> None:
    body = embassy_feed(
        "<item><link>https://ua.usembassy.gov/c/</link><guid>https://ua.usembassy.gov/?p=3</guid>"
        "<description>Embassy closed today due to the security situation.</description></item>"
    )
    [notice] = rss.parse(body, source="embassy")
    assert notice.title == "Embassy closed today due to the security situation."
    assert "sha256" not in notice.title and "http" not in notice.title
