"""The CAP parser: the OASIS examples, a Cancel, MeteoAlarm's Atom index, and CAP's required fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alertd.core.model import AlertKind, Notice, Severity
from alertd.errors import ParseError
from alertd.sources import cap

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


def test_meteoalarm_atom_index() -> None:
    notices = parse_fixture("meteoalarm_legacy_atom_uk_two_entries.xml")
    base = "https://feeds.meteoalarm.org/api/v1/warnings/feeds-united-kingdom/"
    got = [
        (n.id, n.url, n.msg_type, n.severity, n.urgency, n.certainty, n.published_at, n.updated_at, n.kind)
        for n in notices
    ]
    assert got == [
        (
            "2.49.0.0.826.0.GB_250124180126_cecc0a37.v6.0.W",
            base + "3ec5a08b-995f-45fc-88eb-d364b1613e41",
            "Update",
            Severity.MODERATE,
            "Immediate",
            "Possible",
            datetime(2025, 1, 24, 18, 1, 26, tzinfo=UTC),
            datetime(2025, 1, 24, 18, 1, 26, tzinfo=UTC),
            AlertKind.ADVISORY,
        ),
        (
            "2.49.0.0.826.0.GB_250123104205_72085267.v1.0.W",
            base + "05f2a1ec-58ec-4b6e-b05b-21ddac714680",
            "Alert",
            Severity.SEVERE,
            "Future",
            "Likely",
            datetime(2025, 1, 23, 10, 42, 5, tzinfo=UTC),
            datetime(2025, 1, 23, 10, 42, 5, tzinfo=UTC),
            AlertKind.ADVISORY,
        ),
    ]
    assert notices[1].title == (
        "Orange Wind Warning issued for United Kingdom - Central, Tayside & Fife | Grampian | "
        "Highlands & Eilean Siar | Orkney & Shetland | Strathclyde"
    )
    assert notices[1].areas == (
        "Central, Tayside & Fife",
        "Grampian",
        "Highlands & Eilean Siar",
        "Orkney & Shetland",
        "Strathclyde",
    )
    assert len(notices[0].areas) == 10 and "SW Scotland, Lothian Borders" in notices[0].areas
    assert notices[0].summary == (
        "Yellow wind warning. Effective 2025-01-24T10:40:36+00:00; expires 2025-01-25T23:59:59+00:00"
    )
    assert notices[1].summary == (
        "Amber wind warning. Effective 2025-01-24T10:42:05+00:00; expires 2025-01-26T06:00:00+00:00"
    )


def _alert(
    body: str = "",
    *,
    ns: str = cap.CAP12,
    identifier: str | None = "ID-1",
    sender: str | None = "s@example.org",
    sent: str | None = "2024-05-06T10:00:00+03:00",
    status: str | None = "Actual",
    msg_type: str | None = "Alert",
) -> bytes:
    parts = [
        f"<identifier>{identifier}</identifier>" if identifier is not None else "",
        f"<sender>{sender}</sender>" if sender is not None else "",
        f"<sent>{sent}</sent>" if sent is not None else "",
        f"<status>{status}</status>" if status is not None else "",
        f"<msgType>{msg_type}</msgType>" if msg_type is not None else "",
        "<scope>Public</scope>",
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
    ["identifier", "sender", "sent", "status", "msg_type"],
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


def test_atom_without_cap_fields_is_an_error_and_empty_index_is_empty() -> None:
    plain = (FIXTURES.parent / "uk_fcdo" / "atom_index_two_entries_CONSTRUCTED.xml").read_bytes()
    with pytest.raises(ParseError, match="cap:"):
        cap.parse(plain, source="s")
    empty = b'<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><title>t</title></feed>'
    assert cap.parse(empty, source="s") == []


def test_rss_is_not_cap() -> None:
    with pytest.raises(ParseError, match="neither a CAP alert nor an Atom feed"):
        cap.parse(
            (FIXTURES.parent / "us_embassy" / "alert_feed_no_items_CONSTRUCTED.xml").read_bytes(), source="s"
        )
