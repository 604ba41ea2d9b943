"""CAP 1.2 out (alertd.core.cap_out): each message valid against the OASIS schema, following the alert's life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
from support.cap_schema import assert_valid_cap

from alertd.core.cap_out import (
    CAP12,
    CapProfile,
    feed_events,
    identifier,
    render_index,
    render_message,
    start_event_of,
    start_id,
)
from alertd.core.kinds import kind_words
from alertd.core.model import ActiveAlert, AlertKind, EventStatus, Notice, Region, RegionLevel, Snapshot
from alertd.core.tracker import TrackerPolicy, TrackerState, apply_snapshot, diff_notices

T0 = datetime(2026, 11, 25, 12, 0, 7, 123456, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="м. Київ", name_en="Kyiv city", oblast="UA-30")
HROMADA = Region(
    code="ukrainealarm:1293",
    level=RegionLevel.HROMADA,
    name_uk="Бучанська територіальна громада",
    name_en="Bucha hromada",
    parent="UA-32",
    oblast="UA-32",
)
PROFILE = CapProfile(sender="alerts@ngo.example.org", base_url="https://alertd.example.org/")
POLICY = TrackerPolicy(announce_existing=False, end_confirmations=2, suspicious_drop=0)
NS = {"cap": CAP12}


def place_ids(code: str) -> list[tuple[str, str]]:
    return {"UA-30": [("alerts_in_ua", "31"), ("ukrainealarm", "31")]}.get(code, [])


def life(region: Region, kind: AlertKind):
    """Baseline, start, update, end — the events the tracker really emits for one alert."""
    state = TrackerState()
    events = []
    snaps = [
        Snapshot(source="ua"),
        Snapshot(source="ua", alerts=(ActiveAlert(source_id="x", kind=kind, region=region, started_at=T0),)),
        Snapshot(
            source="ua",
            alerts=(ActiveAlert(source_id="x", kind=kind, region=region, started_at=T0, details="more"),),
        ),
        Snapshot(source="ua"),
        Snapshot(source="ua"),
    ]
    for i, snap in enumerate(snaps):
        step = apply_snapshot(state, snap, T0 + timedelta(seconds=30 * i + 1), POLICY)
        state = step.state
        events += step.events
    assert [e.status for e in events] == [EventStatus.STARTED, EventStatus.UPDATED, EventStatus.ENDED]
    return events


def render(event, profile, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    """render_message, and every message a test here produces is checked against the CAP 1.2 schema."""
    body = render_message(event, profile, **kwargs)
    assert_valid_cap(body)
    return body


def parse(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def text(root: ET.Element, path: str) -> list[str]:
    return [el.text or "" for el in root.findall(path, NS)]


@pytest.mark.parametrize("kind", [k for k in AlertKind if k not in (AlertKind.ADVISORY,)])
def test_every_kind_start_update_end_is_valid_cap_and_follows_the_life(kind: AlertKind) -> None:
    start, update, end = life(KYIV, kind)
    bodies = {e.status: render(e, PROFILE, start=start, place_ids=place_ids) for e in (start, update, end)}
    for body in bodies.values():
        assert_valid_cap(body)
    msgs = {status: parse(body) for status, body in bodies.items()}
    s, u, n = msgs[EventStatus.STARTED], msgs[EventStatus.UPDATED], msgs[EventStatus.ENDED]
    assert text(s, "cap:msgType") == ["Alert"] and text(s, "cap:status") == ["Actual"]
    assert text(s, "cap:scope") == ["Public"]
    assert text(s, "cap:references") == []
    assert text(u, "cap:msgType") == ["Update"]
    assert text(n, "cap:msgType") == ["Update"]
    # an end is an all-clear of a real threat, linked to its start
    assert text(n, "cap:info/cap:responseType") == ["AllClear", "AllClear"]
    assert text(n, "cap:info/cap:urgency") == ["Past", "Past"]
    ref = f"alerts@ngo.example.org,{identifier(start)},2026-11-25T12:00:38+00:00"
    assert text(n, "cap:references") == [ref] and text(u, "cap:references") == [ref]
    # one info per language, classified per kind
    assert text(s, "cap:info/cap:language") == ["uk", "en"]
    row = kind_words(kind).cap  # the kinds table's CAP class for this kind
    assert text(s, "cap:info/cap:urgency") == [row.urgency] * 2
    assert text(s, "cap:info/cap:severity") == [row.severity] * 2
    assert text(s, "cap:info/cap:certainty") == [row.certainty] * 2
    assert text(s, "cap:info/cap:onset") == ["2026-11-25T12:00:07+00:00"] * 2
    assert text(n, "cap:info/cap:effective")[0] == "2026-11-25T12:01:38+00:00"  # first poll without it
    # the place: its name and its codes
    assert text(s, "cap:info/cap:area/cap:areaDesc") == ["м. Київ", "Kyiv city"]
    codes = list(
        zip(
            text(s, "cap:info[1]/cap:area/cap:geocode/cap:valueName"),
            text(s, "cap:info[1]/cap:area/cap:geocode/cap:value"),
            strict=True,
        )
    )
    assert ("ISO3166-2", "UA-30") in codes and ("ukrainealarm", "31") in codes


def test_identifiers_are_stable_and_a_hromada_is_not_given_its_oblasts_iso_code() -> None:
    start, _, end = life(HROMADA, AlertKind.AIR_RAID)
    again_start, _, again_end = life(HROMADA, AlertKind.AIR_RAID)  # "after a restart": same facts
    assert identifier(start) == identifier(again_start) and identifier(end) == identifier(again_end)
    assert render(end, PROFILE) == render(again_end, PROFILE)
    body = render(start, PROFILE)
    assert_valid_cap(body)
    names = text(parse(body), "cap:info[1]/cap:area/cap:geocode/cap:valueName")
    values = text(parse(body), "cap:info[1]/cap:area/cap:geocode/cap:value")
    assert "ISO3166-2" not in names  # naming UA-32 would put the whole oblast under alert
    assert ("ukrainealarm", "1293") in list(zip(names, values, strict=True))


def test_an_alert_recorded_at_first_poll_gets_a_rebuilt_start_the_end_references() -> None:
    state = TrackerState()
    a = ActiveAlert(source_id="x", kind=AlertKind.AIR_RAID, region=KYIV, started_at=T0)
    step = apply_snapshot(state, Snapshot(source="ua", alerts=(a,)), T0 + timedelta(minutes=5), POLICY)
    assert step.events == []  # baseline: recorded, not announced
    active = next(iter(step.state.active.values()))
    rebuilt = start_event_of(active)
    assert_valid_cap(render(rebuilt, PROFILE))
    state = step.state
    ends = []
    for i in (6, 7):
        step = apply_snapshot(state, Snapshot(source="ua"), T0 + timedelta(minutes=i), POLICY)
        state, ends = step.state, ends + step.events
    (end,) = ends
    assert start_id(end) == rebuilt.id
    ref = text(parse(render(end, PROFILE)), "cap:references")
    assert ref == [f"alerts@ngo.example.org,{identifier(rebuilt)},2026-11-25T12:00:07+00:00"]


def test_advisories_are_published_and_a_withdrawn_one_is_a_cancel() -> None:
    notice = Notice(
        source="fcdo",
        id="n1",
        title="Do not travel to the border areas",
        summary="FCDO advises against all travel.",
        url="https://www.gov.uk/foreign-travel-advice/ukraine",
        published_at=T0,
        country="UA",
        severity="Severe",
    )
    (issued,), _, _ = diff_notices("fcdo", [notice], {}, set(), baseline=False, now=T0, policy=POLICY)
    cancel = notice.model_copy(update={"msg_type": "Cancel", "title": "Withdrawn"})
    (cancelled,), _, _ = diff_notices(
        "fcdo", [cancel], {"n1": notice.content_hash()}, set(), baseline=False, now=T0, policy=POLICY
    )
    for event, expected in ((issued, "Alert"), (cancelled, "Cancel")):
        body = render(event, PROFILE)
        assert_valid_cap(body)
        root = parse(body)
        assert text(root, "cap:msgType") == [expected]
        assert text(root, "cap:info/cap:web") == ["https://www.gov.uk/foreign-travel-advice/ukraine"] * 2
        assert text(root, "cap:info/cap:area/cap:geocode/cap:value") == ["UA", "UA"]


def test_index_lists_active_and_recently_ended_alerts_with_links_to_each_message() -> None:
    old_start, _, old_end = life(HROMADA, AlertKind.ARTILLERY)
    start, update, end = life(KYIV, AlertKind.AIR_RAID)
    now = T0 + timedelta(hours=1)
    starts = {e.id: e for e in (old_start, start)}
    events = feed_events([start, update, end, old_start, old_end], starts, [], now)
    assert {e.id for e in events} == {e.id for e in (old_start, old_end, start, update, end)}
    # a day later the ended alerts are gone; an alert still active stays, with its start
    later = T0 + timedelta(hours=25)
    assert feed_events([start, update, end], starts, [], later) == []
    assert feed_events([], starts, [start.id], later) == [start]
    body = render_index(events, PROFILE, updated=now)
    atom = ET.fromstring(body)
    a = "{http://www.w3.org/2005/Atom}"
    links = [el.get("href") for el in atom.iter(f"{a}link") if el.get("rel") == "alternate"]
    assert f"https://alertd.example.org/cap/{identifier(end)}.xml" in links
    assert len(links) == 5
    titles = [el.text for el in atom.iter(f"{a}title")]
    assert "All clear — Kyiv city" in titles and "Air raid alert — Kyiv city" in titles
    stamps = [el.text for el in atom.findall(f"{a}entry/{a}updated")]
    assert stamps == sorted(stamps, reverse=True)  # newest first


@pytest.mark.parametrize("kind", list(AlertKind))
def test_the_cap_parser_reads_back_kind_place_start_and_end(kind: AlertKind) -> None:
    from alertd.sources import cap

    start, _, end = life(KYIV, kind)
    (s_uk, s_en) = cap.parse(render(start, PROFILE, place_ids=place_ids), source="peer")
    (e_uk, e_en) = cap.parse(render(end, PROFILE, start=start, place_ids=place_ids), source="peer")
    assert s_en.kind == kind and s_uk.kind == kind and e_en.kind == kind and e_uk.kind == kind
    assert s_en.msg_type == "Alert" and e_en.msg_type == "Update" and "AllClear" in e_en.response_types
    assert dict(s_en.geocodes)["alertd:region"] == "UA-30"
    assert s_en.onset == start.started_at.replace(microsecond=0)
    assert e_en.effective == end.ended_at.replace(microsecond=0)
    assert e_en.references == (f"alerts@ngo.example.org,{identifier(start)},2026-11-25T12:00:38+00:00",)
