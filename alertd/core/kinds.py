"""Every alert kind in one table: names, advice, gender, who may pick it, urgency, its CAP class.

Rendering (message titles, advice, "is over"), the self-service page (the kinds a resident may
pick and their labels), operator notices, delivery priority and the CAP feed all read :data:`KINDS`. A new alert kind is one :class:`~alertd.core.model.AlertKind` member plus one row
here; a test checks every kind has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alertd.core.languages import Language, language_of
from alertd.core.model import AlertKind

__all__ = ["KINDS", "OFFERED_KINDS", "KindCap", "KindWords", "advice", "is_over", "kind_name", "kind_words"]

#: The Ukrainian noun a kind's name agrees with: тривога/загроза/небезпека (feminine) or
#: попередження/повідомлення (neuter). It decides the form of "is over" in a combined notice.
Gender = Literal["feminine", "neuter"]

_IS_OVER: dict[Gender, str] = {"feminine": "вже завершилась", "neuter": "вже завершилося"}
_IS_OVER_EN = "now over"


@dataclass(frozen=True)
class KindCap:
    """The CAP 1.2 classification of one alert kind while it is in force (category, urgency,
    severity, certainty, responseType: the schema's own enumerations)."""

    category: str
    urgency: str
    severity: str
    certainty: str
    response: str


@dataclass(frozen=True)
class KindWords:
    """The words for one kind, per language: its start name, its end name and the advice sentence."""

    start: dict[Language, str]
    end: dict[Language, str]
    advice: dict[Language, str]
    #: How the CAP feed classifies it while in force (alertd.core.cap_out; an end is always AllClear).
    cap: KindCap
    gender: Gender = "feminine"
    #: Its start gives seconds to act: queued before every other notice (alertd.core.priority).
    urgent: bool = False
    #: Residents may choose it on the self-service page (the others come from advisories, other
    #: countries' feeds or the "unknown" fallback, and are heard by whoever subscribes to every kind).
    offered: bool = False


def _words(
    uk_start: str,
    uk_end: str,
    en_start: str,
    en_end: str,
    advice: tuple[str, str] = ("", ""),
    *,
    cap: KindCap,
    gender: Gender = "feminine",
    urgent: bool = False,
    offered: bool = False,
) -> KindWords:
    return KindWords(
        start={"uk": uk_start, "en": en_start},
        end={"uk": uk_end, "en": en_end},
        advice={"uk": advice[0], "en": advice[1]},
        cap=cap,
        gender=gender,
        urgent=urgent,
        offered=offered,
    )


#: Attacks from the air are "Likely" (a warning of a threat, not an observed strike) and
#: "Extreme" (extraordinary threat to life).
_ATTACK = KindCap("Security", "Immediate", "Extreme", "Likely", "Shelter")
_SHELTER = ("Пройдіть в укриття.", "Go to a shelter.")
_INDOORS = ("Залишайтеся в приміщенні, зачиніть вікна.", "Stay indoors, close the windows.")

#: The table. The offered kinds come first, in the order the self-service page lists them.
KINDS: dict[AlertKind, KindWords] = {
    AlertKind.AIR_RAID: _words(
        "Повітряна тривога",
        "Відбій тривоги",
        "Air raid alert",
        "All clear",
        _SHELTER,
        urgent=True,
        offered=True,
        cap=_ATTACK,
    ),
    AlertKind.ARTILLERY: _words(
        "Загроза артобстрілу",
        "Відбій загрози артобстрілу",
        "Artillery shelling threat",
        "Artillery threat over",
        _SHELTER,
        offered=True,
        cap=_ATTACK,
    ),
    AlertKind.URBAN_FIGHTS: _words(
        "Загроза вуличних боїв",
        "Відбій загрози вуличних боїв",
        "Urban fighting threat",
        "Urban fighting threat over",
        ("Залишайтеся в укритті.", "Stay in a shelter."),
        offered=True,
        cap=KindCap("Security", "Immediate", "Extreme", "Observed", "Shelter"),
    ),
    AlertKind.MISSILES: _words(
        "Ракетна небезпека",
        "Відбій ракетної небезпеки",
        "Missile threat",
        "Missile threat over",
        _SHELTER,
        urgent=True,
        offered=True,
        cap=_ATTACK,
    ),
    AlertKind.DRONES: _words(
        "Загроза ударних БпЛА",
        "Відбій загрози БпЛА",
        "Attack drone threat",
        "Drone threat over",
        _SHELTER,
        urgent=True,
        offered=True,
        cap=KindCap("Security", "Immediate", "Severe", "Likely", "Shelter"),
    ),
    AlertKind.CHEMICAL: _words(
        "Хімічна загроза",
        "Відбій хімічної загрози",
        "Chemical threat",
        "Chemical threat over",
        _INDOORS,
        offered=True,
        cap=KindCap("CBRNE", "Immediate", "Extreme", "Likely", "Shelter"),
    ),
    AlertKind.NUCLEAR: _words(
        "Радіаційна загроза",
        "Відбій радіаційної загрози",
        "Radiation threat",
        "Radiation threat over",
        _INDOORS,
        offered=True,
        cap=KindCap("CBRNE", "Immediate", "Extreme", "Likely", "Shelter"),
    ),
    AlertKind.HOSTILE_AIRCRAFT: _words(
        "Загроза ворожої авіації",
        "Відбій загрози авіації",
        "Hostile aircraft threat",
        "Hostile aircraft threat over",
        _SHELTER,
        cap=_ATTACK,
    ),
    AlertKind.EARTHQUAKE: _words(
        "Попередження про землетрус",
        "Відбій попередження про землетрус",
        "Earthquake warning",
        "Earthquake warning over",
        ("Пригніться, укрийтеся, тримайтеся.", "Drop, cover and hold on."),
        gender="neuter",
        cap=KindCap("Geo", "Immediate", "Severe", "Observed", "Shelter"),
    ),
    AlertKind.TSUNAMI: _words(
        "Загроза цунамі",
        "Відбій загрози цунамі",
        "Tsunami threat",
        "Tsunami threat over",
        ("Відійдіть від узбережжя на висоту.", "Move away from the coast to high ground."),
        cap=KindCap("Geo", "Immediate", "Extreme", "Likely", "Evacuate"),
    ),
    AlertKind.HAZMAT: _words(
        "Загроза викиду небезпечних речовин",
        "Відбій загрози небезпечних речовин",
        "Hazardous materials threat",
        "Hazardous materials threat over",
        _INDOORS,
        cap=KindCap("CBRNE", "Immediate", "Severe", "Likely", "Shelter"),
    ),
    AlertKind.INFILTRATION: _words(
        "Загроза проникнення ворога",
        "Відбій загрози проникнення",
        "Hostile infiltration threat",
        "Infiltration threat over",
        ("Зачиніть двері, залишайтеся в приміщенні.", "Lock the doors, stay indoors."),
        cap=KindCap("Security", "Immediate", "Severe", "Likely", "Shelter"),
    ),
    AlertKind.NONCONVENTIONAL: _words(
        "Загроза неконвенційних ракет",
        "Відбій загрози неконвенційних ракет",
        "Non-conventional missile threat",
        "Non-conventional missile threat over",
        ("Пройдіть в укриття і зачиніть його.", "Go to a shelter and seal it."),
        cap=KindCap("CBRNE", "Immediate", "Extreme", "Likely", "Shelter"),
    ),
    AlertKind.GENERAL_WARNING: _words(
        "Загальна загроза",
        "Відбій загальної загрози",
        "General threat warning",
        "General threat warning over",
        ("Дотримуйтеся вказівок влади.", "Follow official instructions."),
        cap=KindCap("Safety", "Immediate", "Severe", "Possible", "Shelter"),
    ),
    AlertKind.ADVISORY: _words(
        "Попередження",
        "Попередження скасовано",
        "Advisory",
        "Advisory lifted",
        gender="neuter",
        cap=KindCap("Safety", "Expected", "Moderate", "Possible", "Monitor"),
    ),
    AlertKind.INFO: _words(
        "Повідомлення",
        "Повідомлення завершено",
        "Notice",
        "Notice ended",
        gender="neuter",
        cap=KindCap("Other", "Unknown", "Minor", "Possible", "Monitor"),
    ),
    AlertKind.UNKNOWN: _words(
        "Тривога",
        "Відбій тривоги",
        "Alert",
        "All clear",
        ("Дотримуйтеся вказівок влади.", "Follow official instructions."),
        cap=KindCap("Other", "Immediate", "Severe", "Possible", "Shelter"),
    ),
}

#: The kinds a resident may pick, in page order.
OFFERED_KINDS: tuple[AlertKind, ...] = tuple(kind for kind, words in KINDS.items() if words.offered)


def kind_words(kind: AlertKind | str) -> KindWords:
    """The row for ``kind``; an unknown value reads as :attr:`AlertKind.UNKNOWN` (never a crash)."""
    try:
        return KINDS[AlertKind(kind)]
    except (ValueError, KeyError):
        return KINDS[AlertKind.UNKNOWN]


def kind_name(kind: AlertKind | str, language: str, *, end: bool = False) -> str:
    """The name of a kind's start ("Повітряна тривога") or end ("Відбій тривоги") in a language."""
    words = kind_words(kind)
    return (words.end if end else words.start)[language_of(language)]


def advice(kind: AlertKind | str, language: str) -> str:
    """What to do, in one short sentence ("Пройдіть в укриття."); empty for advisories and notices."""
    return kind_words(kind).advice[language_of(language)]


def is_over(kind: AlertKind | str, language: str) -> str:
    """ "вже завершилась" / "вже завершилося" agreeing with the kind's name; "now over" in English."""
    if language_of(language) == "en":
        return _IS_OVER_EN
    return _IS_OVER[kind_words(kind).gender]
