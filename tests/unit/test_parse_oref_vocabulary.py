"""Oref's whole vocabulary: every published category, and the wording that starts, updates and ends.

Live bodies follow the documented alerts.json shape ``{"id", "cat", "title", "data", "desc"}``;
history records the AlertsHistory/GetAlarmsHistory shape. Titles are the Home Front Command's.
"""

from __future__ import annotations

import json

import pytest

from alertd.core.model import AlertKind, Snapshot
from alertd.sources import oref
from alertd.sources.oref import HISTORY_CATEGORIES, Phase

SRC = "oref-il"
AREA = "כפר סבא"
ROCKETS = "ירי רקטות וטילים"
END_OF_STAY_NEAR = "סיום שהייה בסמיכות למרחב המוגן"
LEAVE_BUT_STAY_NEAR = "ניתן לצאת מהמרחב המוגן אך יש להישאר בקרבתו"
STAY_NEAR = "יש לשהות בסמיכות למרחב המוגן"


def live(title: str, cat: str = "10", desc: str = "") -> Snapshot:
    body = {"id": "134177270300000000", "cat": cat, "title": title, "data": [AREA], "desc": desc}
    return oref.parse_live(json.dumps(body, ensure_ascii=False).encode(), source=SRC)


def history(*records: tuple[str, int, str]) -> Snapshot:
    body = [
        {"alertDate": when, "category": cat, "title": title, "data": AREA} for when, cat, title in records
    ]
    return oref.parse_history(json.dumps(body, ensure_ascii=False).encode(), source=SRC)


def test_the_category_table_is_the_whole_published_list() -> None:
    assert sorted(HISTORY_CATEGORIES) == list(range(1, 29))
    names = [HISTORY_CATEGORIES[i][0] for i in range(1, 29)]
    assert names[:4] == ["missilealert", "uav", "nonconventional", "warning"]
    assert all(name.endswith("drill") or "drill" in name for name in names[14:])


@pytest.mark.parametrize("category", sorted(HISTORY_CATEGORIES))
def test_every_history_category_means_what_the_list_says(category: int) -> None:
    name, phase, kind = HISTORY_CATEGORIES[category]
    snap = history(("2024-05-13 20:00:00", category, ""))
    if phase is Phase.ALERT:
        [alert] = snap.alerts
        assert alert.kind is kind and kind is not AlertKind.UNKNOWN, name
    elif phase is Phase.END:
        assert snap.alerts == () and {a.region.code for a in snap.ended} == {f"oref:{AREA}"}
    else:  # drills and memorial sirens: nothing for residents, ever
        assert phase in (Phase.DRILL, Phase.NOT_A_THREAT)
        assert snap.alerts == () and snap.ended == () and snap.warnings, name


def test_memorial_day_sirens_never_alert() -> None:
    assert history(("2024-05-13 20:00:00", 5, "")).alerts == ()
    assert history(("2024-05-14 11:00:00", 6, "")).alerts == ()
    snap = live("צפירת זיכרון - יום הזיכרון לחללי מערכות ישראל", cat="1")
    assert snap.alerts == () and snap.ended == () and "not a threat" in snap.warnings[0]


@pytest.mark.parametrize(
    ("title", "kind"),
    [("ירי בלתי קונבנציונלי", AlertKind.NONCONVENTIONAL), ("התרעה כללית", AlertKind.GENERAL_WARNING)],
)
def test_non_conventional_missile_and_general_warning_are_real_threats(title: str, kind: AlertKind) -> None:
    [alert] = live(title, cat="2").alerts
    assert alert.kind is kind and not live(title, cat="2").warnings


def test_end_of_stay_near_the_shelter_is_an_end_not_a_pre_alert() -> None:
    snap = live(END_OF_STAY_NEAR)
    assert snap.alerts == ()
    assert {a.kind for a in snap.ended} == set(oref.OREF_KINDS)


def test_leave_the_shelter_but_stay_near_is_an_update_the_alert_goes_on() -> None:
    snap = live(LEAVE_BUT_STAY_NEAR)
    assert snap.alerts == () and snap.ended == () and snap.warnings == ()
    # in a history: the rockets alert stays active through the update, the end ends it
    ongoing = history(("2024-05-13 20:00:00", 1, ROCKETS), ("2024-05-13 20:10:00", 13, LEAVE_BUT_STAY_NEAR))
    assert [a.kind for a in ongoing.alerts] == [AlertKind.MISSILES] and ongoing.ended == ()
    over = history(
        ("2024-05-13 20:00:00", 1, ROCKETS),
        ("2024-05-13 20:10:00", 13, LEAVE_BUT_STAY_NEAR),
        ("2024-05-13 20:20:00", 13, "האירוע הסתיים"),
    )
    assert over.alerts == () and over.ended


def test_stay_near_the_shelter_alone_is_still_a_pre_alert() -> None:
    [alert] = live(STAY_NEAR).alerts
    assert alert.kind is AlertKind.INFO


def test_unknown_category_with_empty_title_is_for_operators_only() -> None:
    snap = live("", cat="77")
    assert snap.alerts == () and snap.ended == ()
    assert len(snap.warnings) == 1 and snap.warnings[0].startswith("operator warning")
    # with a title it is still announced, as unknown, with a warning
    [alert] = live("משהו חדש", cat="77").alerts
    assert alert.kind is AlertKind.UNKNOWN


@pytest.mark.parametrize(
    ("title", "phase"),
    [
        ("The event has ended", Phase.END),
        ("End of the stay near the protected space", Phase.END),
        ("You may leave the protected space but stay near it", Phase.UPDATE),
        ("Alerts are expected in your area in the next few minutes", Phase.ALERT),
        ("Non-conventional missile fire", Phase.ALERT),
    ],
)
def test_english_wording_of_the_extended_history(title: str, phase: Phase) -> None:
    assert oref.classify(title, None, history=True)[0] is phase
