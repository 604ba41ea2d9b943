"""alerts.in.ua parser: every fixture meant to parse yields exactly the alerts it holds,
and every payload that cannot be trusted is a ParseError naming the source (never an
empty snapshot, which would read as "all clear")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertd.core.model import AlertKind, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import ParseError
from alertd.sources import alerts_in_ua as aiu

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts_in_ua"
SOURCE = "alerts-in-ua"


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rows(
    snapshot_part: tuple[Any, ...],
) -> list[tuple[str, AlertKind, str, datetime | None, datetime | None]]:
    """What a tracker acts on, in a form an assertion can spell out."""
    return [(a.source_id, a.kind, a.region.code, a.started_at, a.ended_at) for a in snapshot_part]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures that parse


def test_active_two_alerts(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        fixture("active_two_alerts_ralertsinua_test.json"), source=SOURCE, registry=registry
    )
    assert snap.source == SOURCE
    assert snap.as_of == utc(2024, 5, 6, 10, 2, 45)
    # location_oblast_uid 351 is bogus (SOURCES.md), but location_uid "351" (Nikopol hromada)
    # is what places the alert, and it is known.
    assert rows(snap.alerts) == [
        ("8757", AlertKind.AIR_RAID, "UA-09", utc(2022, 4, 4, 16, 45, 39), None),
        ("73992", AlertKind.ARTILLERY, "ua:351", utc(2024, 5, 5, 15, 48, 31), None),
    ]
    assert snap.ended == ()
    assert snap.warnings == ()
    assert snap.alerts[1].region.oblast == "UA-12"


def test_active_unverified_alert_level_threats_parses(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        fixture("active_with_alert_level_threats_UNVERIFIED_CONSTRUCTED.json"),
        source=SOURCE,
        registry=registry,
    )
    assert rows(snap.alerts) == [
        ("910455", AlertKind.AIR_RAID, "ua:101", datetime(2026, 10, 4, 22, 31, 56, 261000, tzinfo=UTC), None)
    ]
    assert snap.as_of == utc(2026, 10, 4, 22, 32, 1)
    assert snap.alerts[0].region.oblast == "UA-51"


def test_no_alerts_is_genuine_all_clear(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(fixture("no_alerts_ralertsinua_mock.json"), source=SOURCE, registry=registry)
    assert snap == Snapshot(source=SOURCE, as_of=utc(2024, 5, 6, 10, 2, 45))


def test_history_constructed_finished_goes_to_ended(registry: RegionRegistry) -> None:
    snap = aiu.parse_history(
        fixture("history_month_ago_one_ended_CONSTRUCTED.json"), source=SOURCE, registry=registry
    )
    assert rows(snap.ended) == [
        ("771201", AlertKind.AIR_RAID, "UA-30", utc(2024, 5, 5, 23, 41, 7), utc(2024, 5, 6, 1, 2, 55))
    ]
    assert rows(snap.alerts) == [("771388", AlertKind.AIR_RAID, "UA-30", utc(2024, 5, 6, 9, 15, 20), None)]
    assert snap.as_of == utc(2024, 5, 6, 10, 2, 45)


def test_history_php_fixture_int_uid_iso_meta(registry: RegionRegistry) -> None:
    snap = aiu.parse_history(
        fixture("php_fixture_history_one_finished.json"), source=SOURCE, registry=registry
    )
    assert rows(snap.ended) == [
        ("12340", AlertKind.AIR_RAID, "UA-63", utc(2023, 4, 14, 10, 0), utc(2023, 4, 14, 11, 30))
    ]
    assert rows(snap.alerts) == [("12341", AlertKind.AIR_RAID, "UA-63", utc(2023, 4, 15, 8, 30), None)]
    assert snap.as_of == utc(2023, 4, 15, 8, 40)


def test_iot_by_oblast(registry: RegionRegistry) -> None:
    # "ANNAANNANNNPANANANNNNAANNNN": A at official indices 0,3,4,7,12,14,16,21,22; P at 11 (Kirovohrad).
    snap = aiu.parse_iot_statuses(
        fixture("iot_active_air_raid_alerts_by_oblast.json"),
        source=SOURCE,
        registry=registry,
        headers={"Last-Modified": "Tue, 14 May 2024 18:18:18 GMT"},
    )
    assert rows(snap.alerts) == [
        (f"iot:{uid}", AlertKind.AIR_RAID, code, None, None)
        for uid, code in [
            (29, "UA-43"),
            (9, "UA-12"),
            (28, "UA-14"),
            (12, "UA-23"),
            (16, "UA-09"),
            (17, "UA-48"),
            (19, "UA-53"),
            (22, "UA-63"),
            (23, "UA-65"),
        ]
    ]
    assert "UA-35" not in {a.region.code for a in snap.alerts}  # partial is not oblast-wide
    assert snap.as_of == utc(2024, 5, 14, 18, 18, 18)
    assert snap.warnings == ()


def test_iot_order_matches_official_table() -> None:
    table = json.loads(fixture("oblast_uids_and_iot_order.json"))["oblasts"]
    assert tuple(o["uid"] for o in sorted(table, key=lambda o: o["iot_index"])) == aiu.IOT_OBLAST_ORDER


def test_iot_all_uids(registry: RegionRegistry) -> None:
    snap = aiu.parse_iot_all_uids(
        fixture("iot_active_air_raid_alerts_all_uids_CONSTRUCTED.json"), source=SOURCE, registry=registry
    )
    assert rows(snap.alerts) == [
        ("iot:16", AlertKind.AIR_RAID, "UA-09", None, None),
        ("iot:29", AlertKind.AIR_RAID, "UA-43", None, None),
        ("iot:31", AlertKind.AIR_RAID, "UA-30", None, None),
    ]
    assert snap.as_of is None


def test_iot_single_uid(registry: RegionRegistry) -> None:
    snap = aiu.parse_iot_uid(
        fixture("iot_active_air_raid_alerts_uid16.json"), source=SOURCE, registry=registry, uid=16
    )
    assert rows(snap.alerts) == [("iot:16", AlertKind.AIR_RAID, "UA-09", None, None)]
    for letter in ("N", "P"):
        snap = aiu.parse_iot_uid(f'"{letter}"'.encode(), source=SOURCE, registry=registry, uid="16")
        assert snap.alerts == ()


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("active_two_alerts_ralertsinua_test.json", aiu.parse_active),
        ("history_month_ago_one_ended_CONSTRUCTED.json", aiu.parse_history),
        ("iot_active_air_raid_alerts_by_oblast.json", aiu.parse_iot_statuses),
        ("iot_active_air_raid_alerts_all_uids_CONSTRUCTED.json", aiu.parse_iot_all_uids),
        ("no_alerts_ralertsinua_mock.json", aiu.parse_active),
    ],
)
def test_parse_dispatches_to_the_right_endpoint(registry: RegionRegistry, name: str, func: Any) -> None:
    body = fixture(name)
    assert aiu.parse(body, source=SOURCE, registry=registry) == func(body, source=SOURCE, registry=registry)


def test_parse_refuses_single_uid_without_uid(registry: RegionRegistry) -> None:
    with pytest.raises(ParseError, match="parse_iot_uid"):
        aiu.parse(fixture("iot_active_air_raid_alerts_uid16.json"), source=SOURCE, registry=registry)


def test_module_constants() -> None:
    assert aiu.KIND == "alerts_in_ua"
    assert aiu.DEFAULT_URL.startswith("https://api.alerts.in.ua/")


# --------------------------------------------------------------------------- tolerated variations


def base_alert(**changes: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "id": 1,
        "location_title": "м. Київ",
        "location_type": "city",
        "started_at": "2024-05-06T09:15:20.000Z",
        "finished_at": None,
        "alert_type": "air_raid",
        "location_uid": "31",
        "location_oblast_uid": 31,
    }
    alert.update(changes)
    return {k: v for k, v in alert.items() if v is not ...}


def body_with(*alerts: dict[str, Any], meta: Any = None) -> bytes:
    payload = {
        "alerts": list(alerts),
        "meta": meta or {"last_updated_at": "2024-05-06T10:00:00Z", "type": "full"},
    }
    return json.dumps(payload, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("alert_type", "kind"),
    [
        ("air_raid", AlertKind.AIR_RAID),
        ("artillery_shelling", AlertKind.ARTILLERY),
        ("urban_fights", AlertKind.URBAN_FIGHTS),
        ("chemical", AlertKind.CHEMICAL),
        ("nuclear", AlertKind.NUCLEAR),
    ],
)
def test_all_alert_types(registry: RegionRegistry, alert_type: str, kind: AlertKind) -> None:
    snap = aiu.parse_active(body_with(base_alert(alert_type=alert_type)), source=SOURCE, registry=registry)
    assert [a.kind for a in snap.alerts] == [kind]
    assert snap.warnings == ()


def test_unknown_alert_type_kept_with_warning(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(body_with(base_alert(alert_type="drones")), source=SOURCE, registry=registry)
    assert [a.kind for a in snap.alerts] == [AlertKind.UNKNOWN]
    assert any("drones" in w for w in snap.warnings)


def test_unknown_uid_gets_source_code_and_warning(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        body_with(base_alert(location_uid="999999", location_title="Nowhere", location_type="hromada")),
        source=SOURCE,
        registry=registry,
    )
    assert [a.region.code for a in snap.alerts] == ["alerts_in_ua:999999"]
    assert len(snap.warnings) == 1


def test_extra_fields_ignored_and_int_uid(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        body_with(base_alert(location_uid=31, brand_new_field={"x": [1]})), source=SOURCE, registry=registry
    )
    assert [a.region.code for a in snap.alerts] == ["UA-30"]


def test_started_at_with_offset_is_converted_to_utc(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        body_with(base_alert(started_at="2024-05-06T12:15:20+03:00")), source=SOURCE, registry=registry
    )
    assert snap.alerts[0].started_at == utc(2024, 5, 6, 9, 15, 20)


# --------------------------------------------------------------------------- hostile inputs


def assert_refused(body: bytes, registry: RegionRegistry, match: str, func: Any = aiu.parse) -> ParseError:
    with pytest.raises(ParseError, match=match) as info:
        func(body, source=SOURCE, registry=registry, where="https://api.alerts.in.ua/test")
    assert SOURCE in str(info.value)
    assert info.value.source == SOURCE
    return info.value


def test_error_response_quotes_upstream_message(registry: RegionRegistry) -> None:
    body = fixture("error_response_docs.json")
    try:
        json.loads(body)
    except json.JSONDecodeError:  # the docs' example may be malformed JSON itself
        assert_refused(body, registry, "malformed JSON")
    else:
        assert_refused(body, registry, "Error occured")
    assert_refused(body, registry, "Error occured|malformed JSON", aiu.parse_active)
    assert_refused(b'{"error": "API token required"}', registry, "API token required")


def test_docs_error_example_without_comma_is_malformed(registry: RegionRegistry) -> None:
    assert_refused(b'{\n  "message": "Error occured"\n  "code": 401\n}', registry, "malformed JSON")


def test_truncated_json(registry: RegionRegistry) -> None:
    text = fixture("active_two_alerts_ralertsinua_test.json").decode("utf-8")
    assert_refused(text[: len(text) // 2].encode("utf-8"), registry, "malformed JSON")
    assert_refused(text[:-3].encode("utf-8"), registry, "malformed JSON")


def test_fifty_megabyte_body(registry: RegionRegistry) -> None:
    filler = b'{"alerts": [], "meta": {"last_updated_at": "2024-05-06T10:00:00Z"}, "pad": "'
    body = filler + b"x" * (50 * 1024 * 1024) + b'"}'
    assert_refused(body, registry, "exceeds")


def test_cp1251_body(registry: RegionRegistry) -> None:
    text = fixture("active_two_alerts_ralertsinua_test.json").decode("utf-8")
    assert_refused(text.encode("cp1251"), registry, "not UTF-8")


def test_html_error_page(registry: RegionRegistry) -> None:
    body = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    assert_refused(body, registry, "HTML")
    assert_refused(b"  <!DOCTYPE html><html></html>", registry, "HTML", aiu.parse_iot_statuses)


@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_empty_body(registry: RegionRegistry, body: bytes) -> None:
    assert_refused(body, registry, "empty body")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (body_with(base_alert(location_uid=[31])), r"alerts\[0\]\.location_uid"),
        (body_with(base_alert(location_uid="kyiv")), r"alerts\[0\]\.location_uid"),
        (body_with(base_alert(), base_alert(alert_type=5)), r"alerts\[1\]\.alert_type"),
        (body_with(base_alert(started_at=1714986920)), r"alerts\[0\]\.started_at"),
        (body_with(base_alert(started_at="yesterday")), r"alerts\[0\]\.started_at"),
        (body_with(base_alert(finished_at="soon")), r"alerts\[0\]\.finished_at"),
        (body_with(base_alert(location_title=["x"])), r"alerts\[0\]\.location_title"),
        (body_with(base_alert(location_type=3)), r"alerts\[0\]\.location_type"),
        (body_with(base_alert(location_oblast_uid={"uid": 31})), r"alerts\[0\]\.location_oblast_uid"),
        (body_with(base_alert(id=[1])), r"alerts\[0\]\.id"),
        (body_with(base_alert(location_uid=...)), r"alerts\[0\]\.location_uid' is missing"),
        (body_with(base_alert(alert_type=...)), r"alerts\[0\]\.alert_type' is missing"),
        (body_with(base_alert(started_at=...)), r"alerts\[0\]\.started_at' is missing"),
        (body_with("not an alert"), r"alerts\[0\]"),  # type: ignore[arg-type]
        (
            b'{"alerts": {"0": {}}, "meta": {"last_updated_at": "2024-05-06T10:00:00Z"}}',
            "'alerts' should be list",
        ),
        (b'{"meta": {"last_updated_at": "2024-05-06T10:00:00Z"}}', "'alerts' is missing"),
        (b'{"alerts": [], "meta": []}', "'meta' should be dict"),
        (b'{"alerts": [], "meta": {"last_updated_at": "garbage"}}', "meta.last_updated_at"),
        (b'{"alerts": [], "meta": {"last_updated_at": "2024/05/06 10:02:45 +0000", "type": "diff"}}', "full"),
        (b'{"alerts": [], "meta": []}', "'meta' should be dict"),
        (b"[]", "top level"),
        (b"42", "top level"),
        (b"null", "top level"),
    ],
)
def test_wrong_shapes_and_types(registry: RegionRegistry, body: bytes, match: str) -> None:
    assert_refused(body, registry, match)


@pytest.mark.parametrize(
    ("body", "func", "match"),
    [
        (b'"ANNN"', aiu.parse_iot_statuses, "4 letters, expected 27"),
        (b'"' + b"N" * 26 + b'X"', aiu.parse_iot_statuses, "'X' at index 26"),
        (b'"' + b"N" * 26 + b' "', aiu.parse_iot_statuses, "at index 26"),
        (b'"' + b"n" * 27 + b'"', aiu.parse_iot_statuses, "index 0"),
        (b'["A"]', aiu.parse_iot_statuses, "JSON string"),
        (b'"' + b"N" * 20 + b'"', aiu.parse_iot_all_uids, "too short"),
        (b'"' + b"N" * 40 + b'Z"', aiu.parse_iot_all_uids, "'Z' at uid 40"),
        (b'"' + b"N" * 29 + b'"', aiu.parse, "too short"),
    ],
)
def test_iot_strings_refused(registry: RegionRegistry, body: bytes, func: Any, match: str) -> None:
    assert_refused(body, registry, match, func)


@pytest.mark.parametrize("body", [b'"X"', b'"AN"', b'""', b"1"])
def test_iot_single_uid_refused(registry: RegionRegistry, body: bytes) -> None:
    with pytest.raises(ParseError, match=SOURCE):
        aiu.parse_iot_uid(body, source=SOURCE, registry=registry, uid=16)


def test_alert_list_without_meta_is_still_a_complete_list(registry: RegionRegistry) -> None:
    """The API always sends meta; a list without it is still what is active (no as_of)."""
    snap = aiu.parse(b'{"alerts": []}', source="aiu", registry=registry)
    assert snap.alerts == () and snap.as_of is None
    snap = aiu.parse(b'{"alerts": [], "meta": {}}', source="aiu", registry=registry)
    assert snap.alerts == () and snap.as_of is None


def _with(index: int, **fields: Any) -> bytes:
    data = json.loads(fixture("active_two_alerts_ralertsinua_test.json"))
    data["alerts"][index].update(fields)
    return json.dumps(data, ensure_ascii=False).encode()


def test_uid_and_title_that_disagree_warn_and_the_uid_places_it(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(_with(0, location_title="Харківська область"), source="aiu", registry=registry)
    assert snap.alerts[0].region.code == "UA-09"  # uid 16 is Luhansk oblast, whatever the title says
    [warning] = snap.warnings
    assert "location_uid 16" in warning and "Харківська область" in warning and "placed by uid" in warning


def test_uid_and_type_that_disagree_warn(registry: RegionRegistry) -> None:
    snap = aiu.parse_active(
        _with(1, location_type="oblast", location_title="Нікопольська територіальна громада"),
        source="aiu",
        registry=registry,
    )
    assert any("location_type says oblast" in w for w in snap.warnings)


def test_agreeing_uid_and_title_do_not_warn_even_abbreviated(registry: RegionRegistry) -> None:
    # uid 351's registry name is "м. Нікополь та Нікопольська територіальна громада"
    assert (
        aiu.parse_active(
            fixture("active_two_alerts_ralertsinua_test.json"), source="aiu", registry=registry
        ).warnings
        == ()
    )
