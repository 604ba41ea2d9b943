"""The CAP parser: the OASIS examples, a Cancel, MeteoAlarm's Atom index, and CAP's required fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alertd.core.model import AlertKind, Notice, Severity
from alertd.errors import ParseError
from alertd.sources import cap
from alertd.sources.spec import ItemBatch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
AREA2 = (
    "EXTREME NORTH CENTRAL TUOLUMNE COUNTY IN CALIFORNIA, EXTREME NORTHEASTERN CALAVERAS COUNTY "
    "IN CALIFORNIA, SOUTHWESTERN ALPINE COUNTY IN CALIFORNIA"
)


def parse_fixture(name: str) -> list[Notice]:
    return cap.parse((FIXTURES / name).read_bytes(), source="cap-test")


def test_kind_constant() -> None:
    assert cap.KIND == "cap"


def test_example1_homeland_security() -> None:
    [n] = parse_fixture("oasis_cap12_example1_hsas_security.xml")
    sent = datetime(2003, 4, 2, 19, 39, 1, tzinfo=UTC)
    assert n == Notice(
        source="cap-test",
        id="43b080713727",
        title="Homeland Security Sets Code ORANGE",
        summary=(
            "The Department of Homeland Security has elevated the Homeland Security Advisory System threat "
            "level to ORANGE / High in response to intelligence which may indicate a heightened threat of "
            "terrorism.\n\nA High Condition is declared when there is a high risk of terrorist attacks. In "
            "addition to the Protective Measures taken in the previous Threat Conditions, Federal departments "
            "and agencies should consider agency-specific Protective Measures in accordance with their "
            "existing plans."
        ),
        url="http://www.dhs.gov/dhspublic/display?theme=29",
        published_at=sent,
        updated_at=sent,
        kind=AlertKind.ADVISORY,
        severity=Severity.SEVERE,
        urgency="Immediate",
        certainty="Likely",
        msg_type="Alert",
        references=(),
        language="en-US",
        areas=("U.S. nationwide and interests worldwide",),
        geocodes=(),
    )


def test_example2_thunderstorm() -> None:
    [n] = parse_fixture("oasis_cap12_example2_nws_thunderstorm_polygon.xml")
    sent = datetime(2003, 6, 17, 21, 57, tzinfo=UTC)
    assert (n.id, n.title, n.msg_type, n.severity, n.urgency, n.certainty, n.url) == (
        "KSTO1055887203",
        "SEVERE THUNDERSTORM WARNING",
        "Alert",
        Severity.SEVERE,
        "Immediate",
        "Observed",
        None,
    )
    assert (n.published_at, n.updated_at, n.kind, n.references) == (sent, sent, AlertKind.ADVISORY, ())
    assert n.areas == (AREA2,)
    assert n.geocodes == (("SAME", "006109"), ("SAME", "006009"), ("SAME", "006003"))
    assert n.summary == (
        "AT 254 PM PDT...NATIONAL WEATHER SERVICE DOPPLER RADAR INDICATED A SEVERE THUNDERSTORM OVER SOUTH "
        "CENTRAL ALPINE COUNTY...OR ABOUT 18 MILES SOUTHEAST OF KIRKWOOD...MOVING SOUTHWEST AT 5 MPH. "
        "HAIL...INTENSE RAIN AND STRONG DAMAGING WINDS ARE LIKELY WITH THIS STORM.\n\n"
        "TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES."
    )


def test_example3_earthquake_update() -> None:
    [n] = parse_fixture("oasis_cap12_example3_earthquake_update.xml")
    sent = datetime(2003, 6, 12, 3, 56, tzinfo=UTC)
    assert (n.id, n.title, n.msg_type, n.kind, n.severity, n.url, n.published_at) == (
        "TRI13970876.2",
        "EQ 3.4 Imperial County CA",
        "Update",
        AlertKind.EARTHQUAKE,
        Severity.MINOR,
        "http://www.trinet.org/scsn/scsn.html",
        sent,
    )
    assert n.references == ("trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00",)
    assert n.areas == (
        "1 mi. WSW of Brawley, CA; 11 mi. N of El Centro, CA; 30 mi. E of OCOTILLO (quarry); "
        "1 mi. N of the Imperial Fault",
    )
    assert n.geocodes == ()


def test_cancel_references_example2() -> None:
    [n] = parse_fixture("cap12_cancel_of_example2_CONSTRUCTED.xml")
    sent = datetime(2003, 6, 17, 22, 31, tzinfo=UTC)
    assert (n.id, n.title, n.msg_type, n.severity, n.urgency, n.certainty, n.summary) == (
        "KSTO1055887299",
        "SEVERE THUNDERSTORM WARNING CANCELLED",
        "Cancel",
        Severity.MINOR,
        "Past",
        "Observed",
        "",
    )
    assert (n.published_at, n.updated_at) == (sent, sent)
    assert n.references == ("KSTO@NWS.NOAA.GOV,KSTO1055887203,2003-06-17T14:57:00-07:00",)
    [original] = parse_fixture("oasis_cap12_example2_nws_thunderstorm_polygon.xml")
    assert n.references[0].split(",")[1] == original.id
    assert n.areas == (AREA2,)
    assert n.geocodes == (("SAME", "006109"),)


def feed(name: str) -> ItemBatch:
    return cap.parse_feed((FIXTURES / name).read_bytes(), source="cap-test", where=name)


def test_meteoalarm_atom_index_is_thin_each_entry_links_to_its_message() -> None:
    """MeteoAlarm's entries carry summary fields and a typed link to the full message: fetched, not trusted."""
    batch = feed("meteoalarm_legacy_atom_uk_two_entries.xml")
    base = "https://feeds.meteoalarm.org/api/v1/warnings/feeds-united-kingdom/"
    assert batch.notices == () and batch.skipped == ()
    assert [(link.url, link.key) for link in batch.links] == [
        (
            base + "3ec5a08b-995f-45fc-88eb-d364b1613e41",
            "2.49.0.0.826.0.GB_250124180126_cecc0a37.v6.0.W|2025-01-24T18:01:26+00:00",
        ),
        (
            base + "05f2a1ec-58ec-4b6e-b05b-21ddac714680",
            "2.49.0.0.826.0.GB_250123104205_72085267.v1.0.W|2025-01-23T10:42:05+00:00",
        ),
    ]
    assert batch.links[0].entry == "Atom entry 0 (2.49.0.0.826.0.GB_250124180126_cecc0a37.v6.0.W)"
    with pytest.raises(ParseError, match="links to 2 CAP message"):
        cap.parse((FIXTURES / "meteoalarm_legacy_atom_uk_two_entries.xml").read_bytes(), source="s")


def test_nws_cap_1_1_atom_index_links_by_entry_id_and_updated() -> None:
    """The US NWS index (CAP 1.1 summary fields, untyped link): the link is the message."""
    batch = feed("nws_atom_index_cap11_two_entries_trimmed.xml")
    prefix = "https://alerts.weather.gov/cap/wwacapget.php?x="
    assert [link.url.removeprefix(prefix).split(".")[1] for link in batch.links] == [
        "HighWindWarning",
        "HighSurfAdvisory",
    ]
    assert batch.links[0].key.endswith("|2018-08-15T14:52:00-08:00")  # no cap:sent: the entry's updated
    assert batch.notices == () and batch.skipped == ()


def test_thick_atom_index_reads_embedded_messages_and_refuses_entries_one_by_one() -> None:
    batch = feed("thick_atom_index_four_entries_CONSTRUCTED.xml")
    assert batch.links == ()
    assert [n.id for n in batch.notices] == ["43b080713727", "TRI13970876.2"]
    assert [n.msg_type for n in batch.notices] == ["Alert", "Update"]
    assert batch.notices[1].references == ("trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00",)
    restricted, noscope = batch.skipped
    # Restricted: read, not announced, logged once at info (warning False)
    assert not restricted.warning and "scope Restricted" in restricted.reason
    # no <scope>: that entry alone is refused, naming the element
    assert noscope.warning
    assert noscope.reason.startswith("Atom entry 3 (urn:example:cap-feed:TRI13970876.2-X) refused")
    assert "<scope>" in noscope.reason
    # the simple entry point gives the public notices of a thick index
    assert [n.id for n in parse_fixture("thick_atom_index_four_entries_CONSTRUCTED.xml")] == [
        "43b080713727",
        "TRI13970876.2",
    ]


def test_message_without_scope_is_refused_naming_scope() -> None:
    with pytest.raises(ParseError, match="<scope>"):
        parse_fixture("cap12_without_scope_CONSTRUCTED.xml")


@pytest.mark.parametrize("scope", ["Restricted", "Private"])
def test_restricted_and_private_messages_never_become_notices(scope: str) -> None:
    body = _alert(_info("Air raid")).replace(b"<scope>Public</scope>", f"<scope>{scope}</scope>".encode())
    batch = cap.parse_feed(body, source="s")
    assert batch.notices == ()
    [item] = batch.skipped
    assert (
        not item.warning and f"scope {scope}" in item.reason and item.key == "ID-1|2024-05-06T10:00:00+03:00"
    )


def test_unknown_scope_or_status_value_is_refused_naming_the_element() -> None:
    body = _alert(_info("x")).replace(b"<scope>Public</scope>", b"<scope>Everyone</scope>")
    with pytest.raises(ParseError, match="<scope> 'Everyone'"):
        cap.parse(body, source="s")
    with pytest.raises(ParseError, match="<status> 'Real'"):
        cap.parse(_alert(_info("x"), status="Real"), source="s")


def test_cap_1_1_message_reads_like_1_2() -> None:
    [n] = parse_fixture("cap11_nws_thunderstorm_CONSTRUCTED.xml")
    [m] = parse_fixture("oasis_cap12_example2_nws_thunderstorm_polygon.xml")
    assert n == m


def _rss_index(items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>CAP alerts</title>'
        f"<link>https://alerts.example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def test_rss_cap_index_links_to_messages_and_refuses_an_item_without_one() -> None:
    body = _rss_index(
        "<item><title>Flood warning</title><link>https://alerts.example.org/cap/1.xml</link>"
        "<guid isPermaLink='false'>urn:oid:2.49.0.1.1</guid><pubDate>Mon, 06 May 2024 07:00:00 GMT</pubDate></item>"
        "<item><title>Storm</title><enclosure url='https://alerts.example.org/m?id=2' type='application/cap+xml'"
        " length='1'/><guid>urn:oid:2.49.0.1.2</guid></item>"
        "<item><title>About us</title><link>https://alerts.example.org/about.html</link></item>"
    )
    batch = cap.parse_feed(body, source="s")
    assert [link.url for link in batch.links] == [
        "https://alerts.example.org/cap/1.xml",
        "https://alerts.example.org/m?id=2",
    ]
    assert batch.links[0].key == "urn:oid:2.49.0.1.1|Mon, 06 May 2024 07:00:00 GMT"
    [refused] = batch.skipped
    assert refused.warning and refused.reason == "RSS item 2: embeds no CAP message and links to none"


def test_index_summary_that_rules_an_entry_out_spares_the_fetch() -> None:
    meteo = (FIXTURES / "meteoalarm_legacy_atom_uk_two_entries.xml").read_bytes()
    body = meteo.replace(b"<cap:scope>Public</cap:scope>", b"<cap:scope>Restricted</cap:scope>", 1)
    batch = cap.parse_feed(body, source="s")
    assert len(batch.links) == 1
    [item] = batch.skipped
    assert not item.warning and "scope Restricted" in item.reason


def test_escaped_cap_message_in_entry_content_is_read() -> None:
    message = (FIXTURES / "oasis_cap12_example3_earthquake_update.xml").read_text().split("?>", 1)[1]
    escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><title>t</title>'
        f'<entry><id>e1</id><title>EQ</title><content type="text">{escaped}</content></entry></feed>'
    ).encode()
    [n] = cap.parse(body, source="s")
    assert n.id == "TRI13970876.2"


def _alert(
    body: str = "",
    *,
    ns: str = cap.CAP12,
    identifier: str | None = "ID-1",
    sender: str | None = "s@example.org",
    sent: str | None = "2024-05-06T10:00:00+03:00",
    status: str | None = "Actual",
    msg_type: str | None = "Alert",
    scope: str | None = "Public",
) -> bytes:
    parts = [
        f"<identifier>{identifier}</identifier>" if identifier is not None else "",
        f"<sender>{sender}</sender>" if sender is not None else "",
        f"<sent>{sent}</sent>" if sent is not None else "",
        f"<status>{status}</status>" if status is not None else "",
        f"<msgType>{msg_type}</msgType>" if msg_type is not None else "",
        f"<scope>{scope}</scope>" if scope is not None else "",
        body,
    ]
    return f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{ns}">{"".join(parts)}</alert>'.encode()


def _info(
    event: str, language: str | None = None, category: str = "Safety", headline: str | None = None
) -> str:
    lang = f"<language>{language}</language>" if language else ""
    head = f"<headline>{headline}</headline>" if headline else ""
    return (
        f"<info>{lang}<category>{category}</category><event>{event}</event><urgency>Immediate</urgency>"
        f"<severity>Extreme</severity><certainty>Observed</certainty>{head}"
        "<area><areaDesc>Kyiv</areaDesc></area></info>"
    )


@pytest.mark.parametrize(
    "missing",
    ["identifier", "sender", "sent", "status", "msg_type", "scope"],
)
def test_missing_required_element_is_named(missing: str) -> None:
    body = _alert(_info("Air raid"), **{missing: None})  # type: ignore[arg-type]
    element = "msgType" if missing == "msg_type" else missing
    with pytest.raises(ParseError, match=f"<{element}>") as info:
        cap.parse(body, source="cap-ua", where="feed.xml")
    assert (info.value.source, info.value.where) == ("cap-ua", "feed.xml")


def test_unknown_msg_type_and_naive_time_are_errors() -> None:
    with pytest.raises(ParseError, match="msgType"):
        cap.parse(_alert(_info("x"), msg_type="Panic"), source="s")
    with pytest.raises(ParseError, match="offset"):
        cap.parse(_alert(_info("x"), sent="2024-05-06T10:00:00"), source="s")
    with pytest.raises(ParseError, match="sent"):
        cap.parse(_alert(_info("x"), sent="yesterday"), source="s")


def test_multiple_infos_get_language_ids_and_kinds() -> None:
    body = _alert(
        _info("Air raid alert", "en-US", headline="Air raid")
        + _info("Повітряна тривога", "uk-UA", headline="Тривога")
    )
    notices = cap.parse(body, source="s")
    assert [(n.id, n.language, n.title) for n in notices] == [
        ("ID-1#en-US", "en-US", "Air raid"),
        ("ID-1#uk-UA", "uk-UA", "Тривога"),
    ]
    assert notices[0].kind is AlertKind.AIR_RAID
    assert notices[1].kind is AlertKind.ADVISORY  # no English keyword, Safety category
    assert notices[0].severity is Severity.EXTREME
    assert notices[0].published_at == datetime(2024, 5, 6, 7, tzinfo=UTC)


def test_duplicate_languages_fall_back_to_index() -> None:
    notices = cap.parse(_alert(_info("a") + _info("b")), source="s")
    assert [n.id for n in notices] == ["ID-1#0", "ID-1#1"]
    assert [n.title for n in notices] == ["a", "b"]  # event stands in for a missing headline


@pytest.mark.parametrize(
    ("event", "category", "kind"),
    [
        ("Tsunami Warning", "Geo", AlertKind.TSUNAMI),
        ("Earthquake", "Geo", AlertKind.EARTHQUAKE),
        ("Landslide", "Geo", AlertKind.ADVISORY),
        ("Chemical spill", "CBRNE", AlertKind.CHEMICAL),
        ("Gas leak", "CBRNE", AlertKind.HAZMAT),
        ("Radiological release", "CBRNE", AlertKind.NUCLEAR),
        ("Missile threat", "Security", AlertKind.MISSILES),
        ("Drone attack", "Security", AlertKind.DRONES),
        ("Threat level raised", "Security", AlertKind.ADVISORY),
        ("Flood", "Met", AlertKind.ADVISORY),
    ],
)
def test_kind_mapping(event: str, category: str, kind: AlertKind) -> None:
    [n] = cap.parse(_alert(_info(event, category=category)), source="s")
    assert n.kind is kind


def test_unknown_severity_maps_to_unknown() -> None:
    body = _alert(_info("x").replace("<severity>Extreme</severity>", "<severity>Catastrophic</severity>"))
    [n] = cap.parse(body, source="s")
    assert n.severity is Severity.UNKNOWN


def test_non_actual_status_and_ack_are_not_public_alerts() -> None:
    assert cap.parse(_alert(_info("Air raid"), status="Exercise"), source="s") == []
    assert cap.parse(_alert(_info("Air raid"), status="Test"), source="s") == []
    assert cap.parse(_alert("", msg_type="Ack"), source="s") == []


def test_cancel_without_info_still_yields_a_notice() -> None:
    body = _alert(
        "<references>s@example.org,ID-0,2024-05-06T09:00:00+03:00</references><note>Issued in error</note>",
        msg_type="Cancel",
    )
    [n] = cap.parse(body, source="s")
    assert (n.id, n.msg_type, n.title, n.references) == (
        "ID-1",
        "Cancel",
        "Issued in error",
        ("s@example.org,ID-0,2024-05-06T09:00:00+03:00",),
    )


def test_cap_1_1_is_accepted_other_namespaces_are_not() -> None:
    [n] = cap.parse(_alert(_info("Earthquake"), ns=cap.CAP11), source="s")
    assert n.kind is AlertKind.EARTHQUAKE
    with pytest.raises(ParseError, match="namespace"):
        cap.parse(_alert(_info("x"), ns="http://www.incident.com/cap/1.0"), source="s")


def test_atom_without_cap_messages_is_an_error_and_empty_index_is_empty() -> None:
    plain = (FIXTURES.parent / "uk_fcdo" / "atom_index_two_entries_CONSTRUCTED.xml").read_bytes()
    with pytest.raises(ParseError, match="is this a CAP index"):
        cap.parse(plain, source="s")
    empty = b'<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><title>t</title></feed>'
    assert cap.parse(empty, source="s") == []


def test_an_advisory_rss_feed_is_not_a_cap_index() -> None:
    with pytest.raises(ParseError, match="no RSS item embeds or links to a CAP message"):
        cap.parse(
            (FIXTURES.parent / "us_embassy" / "alert_feed_two_items_CONSTRUCTED.xml").read_bytes(), source="s"
        )
    with pytest.raises(ParseError, match="neither a CAP alert nor an Atom/RSS index"):
        cap.parse(b"<html><body>502</body></html>", source="s")
