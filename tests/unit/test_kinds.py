"""The one kinds table and the one language table: complete, and read the same way everywhere."""

from __future__ import annotations

import pytest

from alertd.core.kinds import KINDS, OFFERED_KINDS, advice, is_over, kind_name
from alertd.core.languages import LANGUAGES, language_of
from alertd.core.model import AlertKind
from alertd.web.selfservice.i18n import kind_labels


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_words_in_every_language(kind: AlertKind) -> None:
    words = KINDS[kind]
    for language in LANGUAGES:
        assert words.start[language] and words.end[language]
        assert words.start[language] != words.end[language]


def test_residents_pick_from_the_dangerous_regional_kinds_in_page_order() -> None:
    assert OFFERED_KINDS == (
        AlertKind.AIR_RAID,
        AlertKind.ARTILLERY,
        AlertKind.URBAN_FIGHTS,
        AlertKind.MISSILES,
        AlertKind.DRONES,
        AlertKind.CHEMICAL,
        AlertKind.NUCLEAR,
    )
    assert all(advice(kind, "uk") and advice(kind, "en") for kind in OFFERED_KINDS)


def test_self_service_labels_are_the_names_messages_use() -> None:
    labels = kind_labels("uk")
    assert list(labels) == [str(k) for k in OFFERED_KINDS]
    assert labels["air_raid"] == "Повітряна тривога" == kind_name(AlertKind.AIR_RAID, "uk")
    assert kind_labels("en")["drones"] == "Attack drone threat"


def test_is_over_agrees_with_the_gender_of_the_name() -> None:
    assert is_over(AlertKind.AIR_RAID, "uk") == "вже завершилась"  # тривога
    assert is_over(AlertKind.EARTHQUAKE, "uk") == "вже завершилося"  # попередження
    assert is_over(AlertKind.EARTHQUAKE, "en") == "now over"


def test_unknown_values_and_languages_fall_back_instead_of_failing() -> None:
    assert kind_name("no_such_kind", "uk") == "Тривога"
    assert kind_name(AlertKind.AIR_RAID, "uk-UA", end=True) == "Відбій тривоги"
    assert kind_name(AlertKind.AIR_RAID, "de") == "Air raid alert"
    assert language_of("UK") == "uk" and language_of("en-GB") == "en" and language_of("") == "en"


#: CAP 1.2's own enumerations (OASIS CAP-v1.2 §3.2.2); the XSD in tests/support checks whole messages.
CAP_CATEGORIES = {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport"}
CAP_CATEGORIES |= {"Infra", "CBRNE", "Other"}


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_a_cap_class_in_the_same_row(kind: AlertKind) -> None:
    """A new kind is one row: its CAP classification lives beside its words (alertd.core.cap_out
    reads it there), in CAP's own vocabulary."""
    cap = KINDS[kind].cap
    assert cap.category in CAP_CATEGORIES
    assert cap.urgency in {"Immediate", "Expected", "Future", "Past", "Unknown"}
    assert cap.severity in {"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
    assert cap.certainty in {"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
    assert cap.response in {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "None"}


def test_an_air_raid_is_an_extreme_likely_security_threat_to_shelter_from() -> None:
    cap = KINDS[AlertKind.AIR_RAID].cap
    assert (cap.category, cap.urgency, cap.severity, cap.certainty, cap.response) == (
        "Security",
        "Immediate",
        "Extreme",
        "Likely",
        "Shelter",
    )


def test_the_urgent_kinds_are_those_that_give_seconds_to_act_and_their_starts_go_first() -> None:
    from datetime import UTC, datetime

    from alertd.core.model import AlertEvent, EventStatus
    from alertd.core.priority import level_of

    urgent = {kind for kind, words in KINDS.items() if words.urgent}
    assert urgent == {AlertKind.AIR_RAID, AlertKind.MISSILES, AlertKind.DRONES}
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    for kind in AlertKind:
        start = AlertEvent(id=f"s-{kind}", source="t", kind=kind, status=EventStatus.STARTED, observed_at=t0)
        assert level_of(start) == (0 if kind in urgent else 1), kind
