"""The RSS/Atom advisory parser against every stored feed, field by field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alertd.core.model import AlertKind, Severity
from alertd.errors import ParseError
from alertd.sources import rss

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TAS = "https://travel.state.gov/content/travel/en/traveladvisories/traveladvisories/"


def load(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


def test_kind_constant() -> None:
    assert rss.KIND == "rss"


def test_state_department_tastws() -> None:
    notices = rss.parse(load("us_state_dept/tastws_three_items_trimmed.xml"), source="us-state-dept")
    got = [
        (
            n.id,
            n.title,
            n.url,
            n.published_at,
            n.updated_at,
            n.level,
            n.severity,
            n.fips,
            n.country,
            n.country_name,
        )
        for n in notices
    ]
    assert got == [
        (
            TAS + "maldives-travel-advisory.html",
            "Maldives - Level 2: Exercise Increased Caution",
            TAS + "maldives-travel-advisory.html",
            datetime(2025, 10, 7, tzinfo=UTC),
            datetime(2025, 10, 7, tzinfo=UTC),
            2,
            Severity.MODERATE,
            "MV",
            "MV",
            "Maldives",
        ),
        (
            TAS + "yemen-travel-advisory.html",
            "Yemen - Level 4: Do Not Travel",
            TAS + "yemen-travel-advisory.html",
            datetime(2025, 3, 31, tzinfo=UTC),
            datetime(2025, 3, 31, tzinfo=UTC),
            4,
            Severity.EXTREME,
            "YM",
            "YE",
            "Yemen",
        ),
        (
            TAS + "ukraine-travel-advisory.html",
            "Ukraine - Level 4: Do Not Travel",
            TAS + "ukraine-travel-advisory.html",
            datetime(2024, 11, 14, tzinfo=UTC),
            datetime(2024, 11, 14, tzinfo=UTC),
            4,
            Severity.EXTREME,
            "UP",
            "UA",
            "Ukraine",
        ),
    ]
    for n in notices:
        assert n.source == "us-state-dept"
        assert n.kind is AlertKind.ADVISORY
        assert n.msg_type is None
        assert 0 < len(n.summary) <= rss.SUMMARY_MAX
        assert "<" not in n.summary and "&nbsp;" not in n.summary and "&#8217;" not in n.summary
        assert "  " not in n.summary and "\n" not in n.summary
    assert notices[0].summary.startswith(
        "Reissued Language: There were no changes to the advisory level or risk indicators. "
        "Advisory summary was updated. Exercise increased caution in Maldives due to terrorism."
    )
    assert notices[2].summary.startswith(
        "Reissued with updates after periodic review. Do not travel to Ukraine"
    )
    assert notices[2].summary.endswith("…")


def test_us_embassy_two_items() -> None:
    notices = rss.parse(load("us_embassy/alert_feed_two_items_CONSTRUCTED.xml"), source="us-embassy-kyiv")
    assert [(n.id, n.title, n.url, n.published_at, n.country, n.country_name) for n in notices] == [
        (
            "https://ua.usembassy.gov/?p=45211",
            "Security Alert: U.S. Embassy Kyiv, Ukraine – May 6, 2024",
            "https://ua.usembassy.gov/security-alert-u-s-embassy-kyiv-ukraine-may-6-2024/",
            datetime(2024, 5, 6, 10, 12, 28, tzinfo=UTC),
            "UA",
            "Ukraine",
        ),
        (
            "https://ua.usembassy.gov/?p=45007",
            "Alert: Air Raid Alerts – Kyiv (April 27, 2024)",
            "https://ua.usembassy.gov/alert-air-raid-alerts-kyiv-april-27-2024/",
            datetime(2024, 4, 27, 6, 3, 11, tzinfo=UTC),
            "UA",
            "Ukraine",
        ),
    ]
    # the full content:encoded wins over the truncated description, as plain text
    assert notices[0].summary == (
        "Location: Ukraine, countrywide Event: The U.S. Embassy has received information of a potentially "
        "significant air attack. Be prepared to take shelter immediately if an air alert is announced. "
        "Actions to Take: Identify shelter locations in advance. Follow local official air alert notifications."
    )
    assert notices[1].summary == "Location: Kyiv Event: Air raid sirens have sounded repeatedly overnight."
    for n in notices:
        assert n.source == "us-embassy-kyiv"
        assert n.updated_at == n.published_at
        assert n.level is None and n.fips is None
        assert n.severity is Severity.UNKNOWN
        assert n.kind is AlertKind.ADVISORY


def test_us_embassy_no_items_is_a_genuine_empty_list() -> None:
    assert rss.parse(load("us_embassy/alert_feed_no_items_CONSTRUCTED.xml"), source="us-embassy-kyiv") == []


def test_fcdo_atom_index() -> None:
    notices = rss.parse(load("uk_fcdo/atom_index_two_entries_CONSTRUCTED.xml"), source="uk-fcdo")
    assert [(n.id, n.title, n.url, n.published_at, n.updated_at, n.country, n.summary) for n in notices] == [
        (
            "https://www.gov.uk/foreign-travel-advice/ukraine#2024-05-06T09:41:12+01:00",
            "Ukraine",
            "https://www.gov.uk/foreign-travel-advice/ukraine",
            datetime(2024, 5, 6, 8, 41, 12, tzinfo=UTC),
            datetime(2024, 5, 6, 8, 41, 12, tzinfo=UTC),
            "UA",
            "Latest update: Safety and security – information on air raid alerts in Kyiv",
        ),
        (
            "https://www.gov.uk/foreign-travel-advice/israel#2024-05-05T17:02:23+01:00",
            "Israel",
            "https://www.gov.uk/foreign-travel-advice/israel",
            datetime(2024, 5, 5, 16, 2, 23, tzinfo=UTC),
            datetime(2024, 5, 5, 16, 2, 23, tzinfo=UTC),
            "IL",
            "Latest update: Warnings and insurance – updated information on areas where FCDO advises against travel",
        ),
    ]
    assert all(n.language == "en-US" and n.level is None for n in notices)


def test_meteoalarm_atom_read_as_plain_atom() -> None:
    notices = rss.parse(load("cap/meteoalarm_legacy_atom_uk_two_entries.xml"), source="meteoalarm-uk")
    base = "https://feeds.meteoalarm.org/api/v1/warnings/feeds-united-kingdom/"
    q = "?index_info=0&index_area=0&index_polygon=0"
    assert [(n.id, n.published_at, n.updated_at) for n in notices] == [
        (
            base + "3ec5a08b-995f-45fc-88eb-d364b1613e41" + q,
            datetime(2025, 1, 24, 18, 1, 26, tzinfo=UTC),
            datetime(2025, 1, 24, 18, 1, 26, tzinfo=UTC),
        ),
        (
            base + "05f2a1ec-58ec-4b6e-b05b-21ddac714680" + q,
            datetime(2025, 1, 23, 10, 42, 5, tzinfo=UTC),
            datetime(2025, 1, 23, 10, 42, 5, tzinfo=UTC),
        ),
    ]
    assert notices[0].title.startswith(
        "Yellow Wind Warning issued for United Kingdom - Central, Tayside & Fife"
    )
    assert notices[1].url == "https://meteoalarm.org?polygon=05f2a1ec-58ec-4b6e-b05b-21ddac714680,0,0,0"
    assert all(n.country is None for n in notices)


def _rss(items: str, link: str = "https://example.org/") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>{link}</link><description>d</description>{items}</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("pub", "expected"),
    [
        ("Wed, 08 Oct 2025", datetime(2025, 10, 8, tzinfo=UTC)),
        ("2025-10-08", datetime(2025, 10, 8, tzinfo=UTC)),
        ("Wed, 08 Oct 2025 17:36:06 GMT", datetime(2025, 10, 8, 17, 36, 6, tzinfo=UTC)),
        ("Wed, 08 Oct 2025 19:36:06 +0200", datetime(2025, 10, 8, 17, 36, 6, tzinfo=UTC)),
        ("not a date", None),
    ],
)
def test_pubdate_forms(pub: str, expected: datetime | None) -> None:
    [n] = rss.parse(_rss(f"<item><title>A</title><guid>g1</guid><pubDate>{pub}</pubDate></item>"), source="s")
    assert n.published_at == expected


def test_id_falls_back_to_link_then_hash() -> None:
    notices = rss.parse(
        _rss(
            "<item><title>With link</title><link>https://example.org/a</link></item>"
            "<item><title>Bare</title><description>x</description></item>"
        ),
        source="s",
    )
    assert notices[0].id == "https://example.org/a"
    assert notices[1].id.startswith("sha256:") and len(notices[1].id) == len("sha256:") + 32
    again = rss.parse(_rss("<item><title>Bare</title><description>other</description></item>"), source="s")
    assert again[0].id == notices[1].id  # same title and link → same id


@pytest.mark.parametrize(
    ("link", "country"),
    [
        ("https://uk.usembassy.gov/category/alert/", "GB"),
        ("https://il.usembassy.gov/category/alert/", "IL"),
        ("https://ua.usembassy.gov.evil.example/category/alert/", None),
        ("https://example.org/", None),
    ],
)
def test_embassy_country_only_from_matching_host(link: str, country: str | None) -> None:
    [n] = rss.parse(_rss("<item><title>Alert: demonstrations</title><guid>g</guid></item>", link), source="s")
    assert n.country == country


def test_state_department_title_without_country_tag_uses_name() -> None:
    [n] = rss.parse(
        _rss("<item><title>Poland - Level 1: Exercise Normal Precautions</title></item>"), source="s"
    )
    assert (n.level, n.severity, n.country, n.country_name, n.fips) == (
        1,
        Severity.MINOR,
        "PL",
        "Poland",
        None,
    )


def test_summary_is_clipped() -> None:
    long = "<p>" + "word " * 2000 + "</p>"
    [n] = rss.parse(
        _rss(f"<item><title>T</title><guid>g</guid><description><![CDATA[{long}]]></description></item>"),
        source="s",
    )
    assert len(n.summary) <= rss.SUMMARY_MAX and n.summary.endswith("…")


@pytest.mark.parametrize(
    "body",
    [
        b'{"alerts": []}',
        b"<?xml version='1.0'?><html><body><p>Service unavailable</p></body></html>",
        b"<?xml version='1.0'?><alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'/>",
    ],
)
def test_not_a_feed_is_an_error(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        rss.parse(body, source="us-embassy-kyiv", where="https://ua.usembassy.gov/category/alert/feed/")
    assert info.value.source == "us-embassy-kyiv"
    assert info.value.where == "https://ua.usembassy.gov/category/alert/feed/"
