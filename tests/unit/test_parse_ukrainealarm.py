"""ukrainealarm parser: every fixture meant to parse yields exactly the alerts it holds,
and every payload that cannot be trusted is a ParseError naming the source (never an
empty snapshot, which would read as "all clear")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertd.core.model import AlertKind, RegionLevel, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import ParseError
from alertd.sources import ukrainealarm as ua

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ukrainealarm"
SOURCE = "ukrainealarm"


@pytest.fixture(scope="module")
def registry() -> RegionRegistry:
    return RegionRegistry.load()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rows(part: tuple[Any, ...]) -> list[tuple[str, AlertKind, str, datetime | None, datetime | None]]:
    return [(a.source_id, a.kind, a.region.code, a.started_at, a.ended_at) for a in part]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures that parse


def test_empty_list_is_genuine_all_clear(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(fixture("alerts_empty_CONSTRUCTED.json"), source=SOURCE, registry=registry)
    assert snap == Snapshot(source=SOURCE)


def test_one_state_air_jaam(registry: RegionRegistry) -> None:
    # regionId "1" is no ukrainealarm state (the test author's mock): kept under its own code, with a warning.
    snap = ua.parse_alerts(fixture("alerts_one_state_air_jaam_test.json"), source=SOURCE, registry=registry)
    assert rows(snap.alerts) == [
        ("1:AIR", AlertKind.AIR_RAID, "ukrainealarm:1", utc(2022, 4, 4, 16, 45), None)
    ]
    assert len(snap.warnings) == 1
    assert snap.ended == ()


def test_two_regions(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(
        fixture("alerts_two_regions_CONSTRUCTED.json"),
        source=SOURCE,
        registry=registry,
        headers={"last-modified": "Mon, 06 May 2024 09:21:41 GMT"},
    )
    assert rows(snap.alerts) == [
        ("31:AIR", AlertKind.AIR_RAID, "UA-30", utc(2024, 5, 6, 9, 15, 20), None),
        ("761:AIR", AlertKind.AIR_RAID, "ua:761", utc(2024, 5, 6, 9, 20, 2), None),
        ("761:ARTILLERY", AlertKind.ARTILLERY, "ua:761", utc(2024, 5, 6, 9, 21, 40), None),
    ]
    assert snap.alerts[1].region.oblast == "UA-35"
    assert snap.as_of == utc(2024, 5, 6, 9, 21, 41)
    assert snap.warnings == ()


def test_region31_cleared(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(
        fixture("alerts_region31_cleared_CONSTRUCTED.json"), source=SOURCE, registry=registry
    )
    assert snap.alerts == () and snap.ended == () and snap.warnings == ()


def test_alert_levels_unverified_parses(registry: RegionRegistry) -> None:
    # District "152" is not in the registry's (trimmed) ukrainealarm table: it keeps its own
    # code, the level the payload states, and a warning for the operator.
    snap = ua.parse_alerts(
        fixture("alerts_region_with_alert_levels_UNVERIFIED_CONSTRUCTED.json"),
        source=SOURCE,
        registry=registry,
    )
    assert rows(snap.alerts) == [
        (
            "152:AIR",
            AlertKind.AIR_RAID,
            "ua:152",  # matched by name onto the alerts.in.ua raion with the same id
            datetime(2026, 9, 8, 11, 38, 2, 100000, tzinfo=UTC),
            None,
        )
    ]
    assert snap.alerts[0].region.level == RegionLevel.RAION
    assert snap.alerts[0].region.oblast == "UA-71"
    assert snap.warnings == ()


def test_status(registry: RegionRegistry) -> None:
    assert ua.parse_status(fixture("alerts_status_CONSTRUCTED.json"), source=SOURCE) == 1784533


def test_regions_flattened() -> None:
    assert ua.parse_regions(fixture("regions_excerpt_trimmed_jaam_uaapi.json"), source=SOURCE) == [
        ("31", "м. Київ", "State", None),
        ("15", "Кіровоградська область", "State", None),
        ("81", "Кропивницький район", "District", "15"),
        ("761", "м. Кропивницький та Кропивницька територіальна громада", "Community", "81"),
        ("751", "Аджамська територіальна громада", "Community", "81"),
        ("752", "Бобринецька територіальна громада", "Community", "81"),
        ("80", "Олександрійський район", "District", "15"),
        ("780", "м. Олександрія та Олександрійська територіальна громада", "Community", "80"),
        ("1293", "м. Харків та Харківська територіальна громада", "State", None),
    ]


def test_webhook_event_region_scoped(registry: RegionRegistry) -> None:
    region, snap = ua.parse_webhook(
        fixture("webhook_event_alert_ended_CONSTRUCTED.json"), source=SOURCE, registry=registry
    )
    assert region.code == "UA-35"
    assert snap.alerts == () and snap.ended == ()
    assert snap.as_of == utc(2024, 5, 6, 10, 5, 11)


def test_region_history(registry: RegionRegistry) -> None:
    snap = ua.parse_region_history(
        fixture("region_history_CONSTRUCTED.json"), source=SOURCE, registry=registry
    )
    assert rows(snap.ended) == [
        (
            "31:AIR:2024-05-05T23:41:07+00:00",
            AlertKind.AIR_RAID,
            "UA-30",
            utc(2024, 5, 5, 23, 41, 7),
            utc(2024, 5, 6, 1, 2, 55),
        )
    ]
    assert rows(snap.alerts) == [
        ("31:AIR:2024-05-06T09:15:20+00:00", AlertKind.AIR_RAID, "UA-30", utc(2024, 5, 6, 9, 15, 20), None)
    ]
    assert ua.parse(fixture("region_history_CONSTRUCTED.json"), source=SOURCE, registry=registry) == snap


@pytest.mark.parametrize("duration", ["01:21:48", 49080000000, {"ticks": 49080000000, "hours": 1}])
def test_region_history_duration_shapes_ignored(registry: RegionRegistry, duration: Any) -> None:
    data = json.loads(fixture("region_history_CONSTRUCTED.json"))
    data[0]["alarms"][0]["duration"] = duration
    snap = ua.parse_region_history(json.dumps(data).encode(), source=SOURCE, registry=registry)
    assert len(snap.ended) == 1


@pytest.mark.parametrize(
    "name",
    [
        "alerts_empty_CONSTRUCTED.json",
        "alerts_one_state_air_jaam_test.json",
        "alerts_two_regions_CONSTRUCTED.json",
        "alerts_region31_cleared_CONSTRUCTED.json",
        "alerts_region_with_alert_levels_UNVERIFIED_CONSTRUCTED.json",
    ],
)
def test_parse_is_parse_alerts_for_lists(registry: RegionRegistry, name: str) -> None:
    body = fixture(name)
    assert ua.parse(body, source=SOURCE, registry=registry) == ua.parse_alerts(
        body, source=SOURCE, registry=registry
    )


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("alerts_status_CONSTRUCTED.json", "parse_status"),
        ("regions_excerpt_trimmed_jaam_uaapi.json", "parse_regions"),
        ("webhook_event_alert_ended_CONSTRUCTED.json", "parse_webhook"),
        ("webhook_subscribe_request_body.json", "expected a JSON list"),
    ],
)
def test_parse_refuses_non_snapshot_payloads(registry: RegionRegistry, name: str, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        ua.parse(fixture(name), source=SOURCE, registry=registry)


def test_module_constants() -> None:
    assert ua.KIND == "ukrainealarm"
    assert ua.DEFAULT_URL == "https://api.ukrainealarm.com/api/v3/alerts"


# --------------------------------------------------------------------------- tolerated variations


def region(alerts: Any, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "regionId": "31",
        "regionType": "State",
        "regionName": "м. Київ",
        "regionEngName": "Kyiv",
        "lastUpdate": "2024-05-06T09:15:20Z",
        "activeAlerts": alerts,
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not ...}


def alert(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "regionId": "31",
        "regionType": "State",
        "type": "AIR",
        "lastUpdate": "2024-05-06T09:15:20Z",
    }
    item.update(changes)
    return {k: v for k, v in item.items() if v is not ...}


def body(*entries: Any) -> bytes:
    return json.dumps(list(entries), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("AIR", AlertKind.AIR_RAID),
        ("ARTILLERY", AlertKind.ARTILLERY),
        ("URBAN_FIGHTS", AlertKind.URBAN_FIGHTS),
        ("CHEMICAL", AlertKind.CHEMICAL),
        ("NUCLEAR", AlertKind.NUCLEAR),
        ("INFO", AlertKind.INFO),
        ("UNKNOWN", AlertKind.UNKNOWN),
    ],
)
def test_all_alert_types(registry: RegionRegistry, type_name: str, kind: AlertKind) -> None:
    snap = ua.parse_alerts(body(region([alert(type=type_name)])), source=SOURCE, registry=registry)
    assert [(a.kind, a.source_id) for a in snap.alerts] == [(kind, f"31:{type_name}")]
    assert snap.warnings == ()


def test_new_alert_type_kept_as_unknown_with_warning(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(body(region([alert(type="DRONES")])), source=SOURCE, registry=registry)
    assert [a.kind for a in snap.alerts] == [AlertKind.UNKNOWN]
    assert any("DRONES" in w for w in snap.warnings)


def test_created_at_preferred_and_naive_time_is_utc(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(
        body(region([alert(createdAt="2024-05-06T09:10:00", lastUpdate="2024-05-06T09:15:20Z")])),
        source=SOURCE,
        registry=registry,
    )
    assert snap.alerts[0].started_at == utc(2024, 5, 6, 9, 10)


def test_alert_placed_by_its_own_region_and_deduplicated(registry: RegionRegistry) -> None:
    kropyvnytskyi = alert(regionId="761", regionType="Community")
    snap = ua.parse_alerts(
        body(
            region([kropyvnytskyi], regionId="15", regionName="Кіровоградська область"),
            region([kropyvnytskyi], regionId="761", regionType="Community", regionName="Кропивницька"),
        ),
        source=SOURCE,
        registry=registry,
    )
    assert rows(snap.alerts) == [("761:AIR", AlertKind.AIR_RAID, "ua:761", utc(2024, 5, 6, 9, 15, 20), None)]


def test_null_active_alerts_and_extra_fields(registry: RegionRegistry) -> None:
    snap = ua.parse_alerts(
        body(region(None, somethingNew=[1, 2]), region([alert(extra={"a": 1})], regionType="Null")),
        source=SOURCE,
        registry=registry,
    )
    assert [a.region.code for a in snap.alerts] == ["UA-30"]


# --------------------------------------------------------------------------- hostile inputs


def refused(data: bytes, registry: RegionRegistry, match: str) -> None:
    with pytest.raises(ParseError, match=match) as info:
        ua.parse(data, source=SOURCE, registry=registry, where="https://api.ukrainealarm.com/api/v3/alerts")
    assert SOURCE in str(info.value)
    assert info.value.source == SOURCE


def test_truncated_json(registry: RegionRegistry) -> None:
    text = fixture("alerts_two_regions_CONSTRUCTED.json").decode("utf-8")
    refused(text[: len(text) // 2].encode("utf-8"), registry, "malformed JSON")
    # cut inside a multi-byte character: refused as well, whatever the reason given
    refused(fixture("alerts_two_regions_CONSTRUCTED.json")[:-5][:480], registry, "UTF-8|malformed JSON")


def test_fifty_megabyte_body(registry: RegionRegistry) -> None:
    refused(b'["' + b"x" * (50 * 1024 * 1024) + b'"]', registry, "exceeds")


def test_cp1251_body(registry: RegionRegistry) -> None:
    text = fixture("alerts_two_regions_CONSTRUCTED.json").decode("utf-8")
    refused(text.encode("cp1251"), registry, "not UTF-8")


def test_html_error_page(registry: RegionRegistry) -> None:
    refused(b"<html><body><h1>503 Service Unavailable</h1></body></html>", registry, "HTML")


@pytest.mark.parametrize("data", [b"", b"\r\n"])
def test_empty_body(registry: RegionRegistry, data: bytes) -> None:
    refused(data, registry, "empty body")


def test_error_object(registry: RegionRegistry) -> None:
    refused(b'{"message": "Authorization has been denied for this request."}', registry, "Authorization")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (body(region("AIR")), r"\[0\]\.activeAlerts' should be list"),
        (body(region({"type": "AIR"})), r"\[0\]\.activeAlerts' should be list"),
        (body(region(...)), r"\[0\]\.activeAlerts' is missing"),
        (body(region([alert()], regionId=...)), r"\[0\]\.regionId' is missing"),
        (body(region([alert()], regionId=["31"])), r"\[0\]\.regionId"),
        (body(region([alert()], regionName=31)), r"\[0\]\.regionName"),
        (body(region([alert()], regionType=1)), r"\[0\]\.regionType"),
        (body(region([alert()], lastUpdate="now")), r"\[0\]\.lastUpdate"),
        (body(region([alert(type=...)])), r"activeAlerts\[0\]\.type' is missing"),
        (body(region([alert(type=["AIR"])])), r"activeAlerts\[0\]\.type"),
        (body(region([alert(lastUpdate="garbage")])), r"activeAlerts\[0\]\.lastUpdate"),
        (body(region([alert(regionId={"id": 1})])), r"activeAlerts\[0\]\.regionId"),
        (body(region(["AIR"])), r"activeAlerts\[0\]"),
        (body("31"), r"\[0\]"),
        (b'{"regions": []}', "expected a JSON list"),
        (b"42", "expected a JSON list"),
        (b"null", "expected a JSON list"),
    ],
)
def test_wrong_shapes_and_types(registry: RegionRegistry, data: bytes, match: str) -> None:
    refused(data, registry, match)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"lastActionIndex": "1784533"}', "should be int"),
        (b'{"lastActionIndex": 1.5}', "should be int"),
        (b'{"lastActionIndex": true}', "should be int"),
        (b'{"lastActionIndex": -1}', "negative"),
        (b"{}", "missing"),
        (b"[]", "should be dict"),
        (b"<html></html>", "HTML"),
        (b"", "empty body"),
    ],
)
def test_status_refused(data: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match) as info:
        ua.parse_status(data, source=SOURCE)
    assert SOURCE in str(info.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"states": {"31": {}}}', "'states' should be list"),
        (b'{"states": [{"regionName": "x"}]}', r"states\[0\]\.regionId' is missing"),
        (b'{"states": [{"regionId": "1", "regionChildIds": "2"}]}', r"regionChildIds' should be list"),
        (b"[]", "should be dict"),
        (b"{}", "'states' is missing"),
    ],
)
def test_regions_refused(data: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        ua.parse_regions(data, source=SOURCE)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"isContinue": False, "endDate": "0001-01-01T00:00:00"}, "endDate' is missing"),
        ({"isContinue": "no"}, "isContinue"),
        ({"startDate": None}, "startDate"),
        ({"alertType": 3}, "alertType"),
    ],
)
def test_region_history_refused(registry: RegionRegistry, change: dict[str, Any], match: str) -> None:
    data = json.loads(fixture("region_history_CONSTRUCTED.json"))
    data[0]["alarms"][1].update(change)
    with pytest.raises(ParseError, match=match):
        ua.parse_region_history(json.dumps(data).encode(), source=SOURCE, registry=registry)


# --------------------------------------------------------------------------- lenient where the spec is


def test_optional_times_fall_back_instead_of_refusing(registry: RegionRegistry) -> None:
    """``lastUpdate`` is optional in the OpenAPI spec: no alert time → the region's, no region time → None."""
    with_region_time = ua.parse_alerts(
        body(region([alert(lastUpdate=...)], lastUpdate="2024-05-06T09:00:00Z")),
        source=SOURCE,
        registry=registry,
    )
    assert [a.started_at for a in with_region_time.alerts] == [utc(2024, 5, 6, 9, 0)]
    without_any = ua.parse_alerts(
        body(region([alert(lastUpdate=...)], lastUpdate=...)), source=SOURCE, registry=registry
    )
    [alert_] = without_any.alerts
    assert alert_.started_at is None and alert_.kind is AlertKind.AIR_RAID  # poll time, not a refusal


def test_a_malformed_entry_fails_the_poll_and_the_error_names_it(registry: RegionRegistry) -> None:
    good = region([alert()], regionId="31", regionName="м. Київ")
    bad = region([alert(type=["AIR"])], regionId="14", regionName="Київська область")
    with pytest.raises(ParseError) as info:
        ua.parse_alerts(body(good, bad), source=SOURCE, registry=registry)
    assert "entry [1] (regionId '14', Київська область) is malformed" in info.value.reason
    assert "activeAlerts[0].type" in info.value.reason
