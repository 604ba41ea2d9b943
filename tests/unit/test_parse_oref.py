"""Pikud HaOref: live alerts.json (incl. its "no alert" bodies) and both history formats."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertd.core.model import ActiveAlert, AlertKind, RegionLevel, Severity, Snapshot
from alertd.errors import ParseError
from alertd.sources import oref

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oref"
SRC = "oref-il"
ROCKETS = "ירי רקטות וטילים"
SHELTER_10 = "היכנסו למרחב המוגן ושהו בו 10 דקות"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def summary(alerts: tuple[ActiveAlert, ...]) -> list[tuple[str, AlertKind, str, datetime | None]]:
    return [(a.source_id, a.kind, a.region.code, a.started_at) for a in alerts]


def ended_areas(snapshot: Snapshot) -> dict[str, set[AlertKind]]:
    out: dict[str, set[AlertKind]] = {}
    for a in snapshot.ended:
        out.setdefault(a.region.code, set()).add(a.kind)
    return out


def test_kind_constant() -> None:
    assert oref.KIND == "oref"


@pytest.mark.parametrize("name", ["alerts_no_alert_bom_crlf.json", "alerts_no_alert_empty_body.json"])
@pytest.mark.parametrize("fn", [oref.parse, oref.parse_live])
def test_no_alert_bodies_are_an_empty_snapshot(fn: Callable[..., Snapshot], name: str) -> None:
    assert fn(load(name), source=SRC) == Snapshot(source=SRC)


@pytest.mark.parametrize(
    "body", [b"", b"\r\n", b"   \n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\r\n", "\r\n".encode("utf-16")]
)
def test_whitespace_bodies_mean_no_alert(body: bytes) -> None:
    assert oref.parse_live(body, source=SRC) == Snapshot(source=SRC)


def test_live_rockets_bom_crlf() -> None:
    snap = oref.parse(load("alerts_active_rockets_bom_crlf.json"), source=SRC)
    areas = ["אשקלון - דרום", "אזור תעשייה הדרומי אשקלון", "זיקים", "כרמיה", "מבקיעים"]
    assert summary(snap.alerts) == [
        (f"133601362940000000:{a}", AlertKind.MISSILES, f"oref:{a}", None) for a in areas
    ]
    assert snap.ended == () and snap.warnings == () and snap.source == SRC and snap.as_of is None
    first = snap.alerts[0]
    assert first.region.level is RegionLevel.CITY
    assert (first.region.name_uk, first.region.name_en, first.region.oblast, first.region.parent) == (
        "אשקלון - דרום",
        "",
        None,
        None,
    )
    assert first.severity is Severity.SEVERE
    assert first.details == f"{ROCKETS} — {SHELTER_10}"
    assert first.ended_at is None


def test_live_all_country() -> None:
    snap = oref.parse_live(load("alerts_active_all_country.json"), source=SRC)
    assert summary(snap.alerts) == [("1234:כל הארץ", AlertKind.MISSILES, "oref:כל הארץ", None)]
    assert snap.ended == ()


def test_live_stay_near_shelter_is_info() -> None:
    snap = oref.parse(load("alerts_active_cat10_stay_near_shelter_PARTLY_CONSTRUCTED.json"), source=SRC)
    areas = ["בית אלפא וחפציבה", "בית השיטה", "בית יוסף", "בית שאן"]
    assert summary(snap.alerts) == [
        (f"134177258620000000:{a}", AlertKind.INFO, f"oref:{a}", None) for a in areas
    ]
    assert all(a.severity is Severity.MODERATE for a in snap.alerts)
    assert snap.ended == ()


def test_live_event_ended_goes_to_ended() -> None:
    snap = oref.parse(load("alerts_active_cat10_event_ended_CONSTRUCTED.json"), source=SRC)
    assert snap.alerts == ()
    assert ended_areas(snap) == {
        "oref:בית שאן": set(oref.OREF_KINDS),
        "oref:בית יוסף": set(oref.OREF_KINDS),
    }
    assert all(a.ended_at is None and a.source_id.startswith("134177270300000000:") for a in snap.ended)


def test_utf16_with_bom_parses_the_same() -> None:
    raw = load("alerts_active_rockets_bom_crlf.json")
    text = raw.decode("utf-8-sig")
    for encoding in ("utf-16", "utf-16-be"):
        body = text.encode(encoding)
        if encoding == "utf-16-be":
            body = codecs.BOM_UTF16_BE + body
        assert oref.parse(body, source=SRC) == oref.parse(raw, source=SRC)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "1", "cat": "1", "title": "x", "data": ["a"',
        codecs.BOM_UTF8 + b"<html>blocked</html>",
        b"\xff\xfe\x00garbage\x80",  # broken UTF-16
        b"\x80\x81\x82",
        b"42",
        b'"text"',
        b"null",
        b'{"id": "1", "cat": "1", "title": "x"}',
        b'{"id": "1", "cat": "1", "title": "x", "data": []}',
        b'{"id": "1", "cat": "1", "title": "x", "data": "area"}',
        b'{"id": "1", "cat": "1", "title": "x", "data": [5]}',
        b'{"cat": "1", "title": "x", "data": ["a"]}',
        b'{"id": "1", "cat": "one", "title": "x", "data": ["a"]}',
    ],
)
def test_malformed_live_bodies_are_errors(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        oref.parse(body, source=SRC, where="alerts.json")
    assert (info.value.source, info.value.where) == (SRC, "alerts.json")


def test_live_drill_is_ignored_with_warning() -> None:
    body = json.dumps({"id": "9", "cat": "101", "title": "ירי רקטות וטילים - תרגיל", "data": ["א"]}).encode()
    snap = oref.parse_live(body, source=SRC)
    assert snap.alerts == () and snap.ended == ()
    assert len(snap.warnings) == 1 and "drill" in snap.warnings[0]


def test_live_unknown_category_is_still_an_alert() -> None:
    body = json.dumps({"id": "9", "cat": "55", "title": "משהו חדש", "data": ["א", "א"]}).encode()
    snap = oref.parse_live(body, source=SRC)
    assert summary(snap.alerts) == [("9:א", AlertKind.UNKNOWN, "oref:א", None)]  # duplicate area once
    assert snap.warnings and "cat=55" in snap.warnings[0]


@pytest.mark.parametrize(
    ("cat", "title", "kind"),
    [
        ("1", "", AlertKind.MISSILES),
        ("6", "", AlertKind.HOSTILE_AIRCRAFT),
        ("2", "חדירת כלי טיס עוין", AlertKind.HOSTILE_AIRCRAFT),
        ("3", "", AlertKind.EARTHQUAKE),
        ("4", "", AlertKind.NUCLEAR),
        ("5", "", AlertKind.TSUNAMI),
        ("7", "", AlertKind.HAZMAT),
        ("13", "חדירת מחבלים", AlertKind.INFILTRATION),
        ("10", "בדקות הקרובות צפויות להתקבל התרעות באזורך", AlertKind.INFO),
        ("10", "שהייה בסמיכות למרחב המוגן", AlertKind.INFO),
        ("14", "בדקות הקרובות צפויות להתקבל התרעות באזורך", AlertKind.INFO),
        ("99", "ירי רקטות וטילים", AlertKind.MISSILES),  # the title wins over an unknown number
    ],
)
def test_live_kind_table(cat: str, title: str, kind: AlertKind) -> None:
    body = json.dumps({"id": "1", "cat": cat, "title": title, "data": ["א"], "desc": ""}).encode()
    [alert] = oref.parse_live(body, source=SRC).alerts
    assert alert.kind is kind


def test_history_alert_started_converts_israel_time() -> None:
    snap = oref.parse(load("alertshistory_alert_started.json"), source=SRC)
    start = datetime(2023, 10, 7, 3, 30, tzinfo=UTC)  # 06:30 IDT (UTC+3)
    assert summary(snap.alerts) == [(f"{start.isoformat()}:בארי", AlertKind.MISSILES, "oref:בארי", start)]
    assert snap.alerts[0].details == ROCKETS
    assert snap.ended == ()


def test_history_two_alerts() -> None:
    snap = oref.parse_history(load("alertshistory_two_alerts.json"), source=SRC)
    t1 = datetime(2023, 10, 7, 3, 28, tzinfo=UTC)
    t2 = datetime(2023, 10, 7, 3, 30, tzinfo=UTC)
    assert summary(snap.alerts) == [
        (f"{t1.isoformat()}:נחל עוז", AlertKind.MISSILES, "oref:נחל עוז", t1),
        (f"{t2.isoformat()}:בארי", AlertKind.MISSILES, "oref:בארי", t2),
    ]


def test_history_alert_ended_cat13() -> None:
    snap = oref.parse(load("alertshistory_alert_ended_cat13.json"), source=SRC)
    end = datetime(2023, 10, 7, 5, 30, tzinfo=UTC)
    assert snap.alerts == ()
    assert ended_areas(snap) == {"oref:בארי": set(oref.OREF_KINDS)}
    assert {a.ended_at for a in snap.ended} == {end}


def test_history_leave_shelter_cat13() -> None:
    snap = oref.parse(load("alertshistory_leave_shelter_cat13.json"), source=SRC)
    assert snap.alerts == ()
    assert ended_areas(snap) == {"oref:תל אביב - מרכז העיר": set(oref.OREF_KINDS)}
    assert {a.ended_at for a in snap.ended} == {datetime(2025, 4, 26, 0, 30, tzinfo=UTC)}  # 03:30 IDT


def test_history_start_then_end_then_start_again() -> None:
    records = (
        json.loads(load("alertshistory_alert_started.json"))
        + json.loads(load("alertshistory_alert_ended_cat13.json"))
        + [{"alertDate": "2023-10-07 09:00:00", "title": ROCKETS, "data": "בארי", "category": 1}]
    )
    snap = oref.parse_history(json.dumps(records[::-1]).encode(), source=SRC)  # order does not matter
    assert summary(snap.alerts) == [
        (
            "2023-10-07T06:00:00+00:00:בארי",
            AlertKind.MISSILES,
            "oref:בארי",
            datetime(2023, 10, 7, 6, tzinfo=UTC),
        )
    ]
    assert snap.ended == ()
    # and without the last salvo the area is over
    snap = oref.parse_history(json.dumps(records[:2]).encode(), source=SRC)
    assert snap.alerts == () and set(ended_areas(snap)) == {"oref:בארי"}


def test_extended_history_english() -> None:
    raw = json.loads(load("extended_history_getalarmshistory_en.json"))
    snap = oref.parse(load("extended_history_getalarmshistory_en.json"), source=SRC)
    kinds = {1: AlertKind.MISSILES, 2: AlertKind.HOSTILE_AIRCRAFT}
    expected: dict[tuple[str, AlertKind], tuple[datetime, int]] = {}
    for r in raw:
        key = (f"oref:{r['data'].strip()}", kinds[r["category"]])
        when = datetime.fromisoformat(r["alertDate"]).replace(tzinfo=UTC) - timedelta(hours=3)  # IDT
        if key not in expected or when < expected[key][0]:
            expected[key] = (when, r["rid"])
    assert len(raw) == 47
    assert {
        (a.region.code, a.kind): (a.started_at, int(a.source_id.split(":")[0])) for a in snap.alerts
    } == expected
    assert len(snap.alerts) == 31
    shamir = next(a for a in snap.alerts if a.region.code == "oref:Shamir")
    assert (shamir.kind, shamir.region.name_en, shamir.details) == (
        AlertKind.HOSTILE_AIRCRAFT,
        "Shamir",
        "Hostile aircraft intrusion",
    )
    kerem = next(a for a in snap.alerts if a.region.code == "oref:Kerem Shalom")
    assert (kerem.source_id, kerem.kind, kerem.started_at) == (
        "30713:Kerem Shalom",
        AlertKind.MISSILES,
        datetime(2024, 5, 11, 12, 0, tzinfo=UTC),
    )
    assert snap.ended == () and snap.warnings == ()


def test_extended_history_prealert_cat14_is_info() -> None:
    snap = oref.parse(load("extended_history_prealert_cat14_he.json"), source=SRC)
    start = datetime(2026, 3, 14, 0, 30, tzinfo=UTC)  # 02:30 IST (UTC+2, before DST)
    assert summary(snap.alerts) == [("479300:כפר סבא", AlertKind.INFO, "oref:כפר סבא", start)]
    assert snap.alerts[0].severity is Severity.MODERATE
    assert snap.ended == ()


@pytest.mark.parametrize(
    ("category", "title", "kind"),
    [
        (2, "", AlertKind.HOSTILE_AIRCRAFT),
        (9, "", AlertKind.NUCLEAR),
        (10, "", AlertKind.INFILTRATION),
        (11, "", AlertKind.TSUNAMI),
        (12, "", AlertKind.HAZMAT),
        (14, "", AlertKind.INFO),
    ],
)
def test_history_category_table(category: int, title: str, kind: AlertKind) -> None:
    body = json.dumps(
        [{"alertDate": "2024-01-01 12:00:00", "title": title, "data": "א", "category": category}]
    )
    [alert] = oref.parse_history(body.encode(), source=SRC).alerts
    assert alert.kind is kind
    assert alert.started_at == datetime(2024, 1, 1, 10, tzinfo=UTC)  # IST (UTC+2) in winter


def test_history_drill_is_ignored() -> None:
    body = json.dumps([{"alertDate": "2024-01-01 12:00:00", "title": "", "data": "א", "category": 15}])
    snap = oref.parse_history(body.encode(), source=SRC)
    assert snap.alerts == () and snap.ended == () and snap.warnings


def test_empty_history_list_is_empty_but_empty_history_body_is_an_error() -> None:
    assert oref.parse(b"[]", source=SRC) == Snapshot(source=SRC)
    with pytest.raises(ParseError):
        oref.parse_history(b"", source=SRC)
    with pytest.raises(ParseError):
        oref.parse_history(b'{"id": "1"}', source=SRC)


@pytest.mark.parametrize(
    "records",
    [
        [{"title": ROCKETS, "data": "א", "category": 1}],
        [{"alertDate": "yesterday", "title": ROCKETS, "data": "א", "category": 1}],
        [{"alertDate": "2024-01-01 12:00:00", "title": ROCKETS, "data": ["א"], "category": 1}],
        [{"alertDate": "2024-01-01 12:00:00", "title": ROCKETS, "data": "", "category": 1}],
        [{"alertDate": "2024-01-01 12:00:00", "title": ROCKETS, "data": "א", "category": "x"}],
        ["not an object"],
    ],
)
def test_malformed_history_records_are_errors(records: list[object]) -> None:
    with pytest.raises(ParseError):
        oref.parse(json.dumps(records).encode(), source=SRC)
