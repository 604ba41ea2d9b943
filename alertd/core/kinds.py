"""Every alert kind's words, in one table: names, advice, grammatical gender, and who may pick it.

Rendering (message titles, advice, "is over"), the self-service page (the kinds a resident may
pick and their labels) and operator notices all read :data:`KINDS`. A new alert kind is one
:class:`~alertd.core.model.AlertKind` member plus one row here; a test checks every kind has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alertd.core.languages import Language, language_of
from alertd.core.model import AlertKind

__all__ = ["KINDS", "OFFERED_KINDS", "KindWords", "advice", "is_over", "kind_name", "kind_words"]

#: The Ukrainian noun a kind's name agrees with: тривога/загроза/небезпека (feminine) or
#: попередження/повідомлення (neuter). It decides the form of "is over" in a combined notice.
Gender = Literal["feminine", "neuter"]

_IS_OVER: dict[Gender, str] = {"feminine": "вже завершилась", "neuter": "вже завершилося"}
_IS_OVER_EN = "now over"


@dataclass(frozen=True)
class KindWords:
    """The words for one kind, per language: its start name, its end name and the advice sentence."""

    start: dict[Language, str]
    end: dict[Language, str]
    advice: dict[Language, str]
    gender: Gender = "feminine"
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
    gender: Gender = "feminine",
    offered: bool = False,
) -> KindWords:
    return KindWords(
        start={"uk": uk_start, "en": en_start},
        end={"uk": uk_end, "en": en_end},
        advice={"uk": advice[0], "en": advice[1]},
        gender=gender,
        offered=offered,
    )


_SHELTER = ("Пройдіть в укриття.", "Go to a shelter.")
_INDOORS = ("Залишайтеся в приміщенні, зачиніть вікна.", "Stay indoors, close the windows.")

#: The table. The offered kinds come first, in the order the self-service page lists them.
KINDS: dict[AlertKind, KindWords] = {
    AlertKind.AIR_RAID: _words(
        "Повітряна тривога", "Відбій тривоги", "Air raid alert", "All clear", _SHELTER, offered=True
    ),
    AlertKind.ARTILLERY: _words(
        "Загроза артобстрілу",
        "Відбій загрози артобстрілу",
        "Artillery shelling threat",
        "Artillery threat over",
        _SHELTER,
        offered=True,
    ),
    AlertKind.URBAN_FIGHTS: _words(
        "Загроза вуличних боїв",
        "Відбій загрози вуличних боїв",
        "Urban fighting threat",
        "Urban fighting threat over",
        ("Залишайтеся в укритті.", "Stay in a shelter."),
        offered=True,
    ),
    AlertKind.MISSILES: _words(
        "Ракетна небезпека",
        "Відбій ракетної небезпеки",
        "Missile threat",
        "Missile threat over",
        _SHELTER,
        offered=True,
    ),
    AlertKind.DRONES: _words(
        "Загроза ударних БпЛА",
        "Відбій загрози БпЛА",
        "Attack drone threat",
        "Drone threat over",
        _SHELTER,
        offered=True,
    ),
    AlertKind.CHEMICAL: _words(
        "Хімічна загроза",
        "Відбій хімічної загрози",
        "Chemical threat",
        "Chemical threat over",
        _INDOORS,
        offered=True,
    ),
    AlertKind.NUCLEAR: _words(
        "Радіаційна загроза",
        "Відбій радіаційної загрози",
        "Radiation threat",
        "Radiation threat over",
        _INDOORS,
        offered=True,
    ),
    AlertKind.HOSTILE_AIRCRAFT: _words(
        "Загроза ворожої авіації",
        "Відбій загрози авіації",
        "Hostile aircraft threat",
        "Hostile aircraft threat over",
        _SHELTER,
    ),
    AlertKind.EARTHQUAKE: _words(
        "Попередження про землетрус",
        "Відбій попередження про землетрус",
        "Earthquake warning",
        "Earthquake warning over",
        ("Пригніться, укрийтеся, тримайтеся.", "Drop, cover and hold on."),
        gender="neuter",
    ),
    AlertKind.TSUNAMI: _words(
        "Загроза цунамі",
        "Відбій загрози цунамі",
        "Tsunami threat",
        "Tsunami threat over",
        ("Відійдіть від узбережжя на висоту.", "Move away from the coast to high ground."),
    ),
    AlertKind.HAZMAT: _words(
        "Загроза викиду небезпечних речовин",
        "Відбій загрози небезпечних речовин",
        "Hazardous materials threat",
        "Hazardous materials threat over",
        _INDOORS,
    ),
    AlertKind.INFILTRATION: _words(
        "Загроза проникнення ворога",
        "Відбій загрози проникнення",
        "Hostile infiltration threat",
        "Infiltration threat over",
        ("Зачиніть двері, залишайтеся в приміщенні.", "Lock the doors, stay indoors."),
    ),
    AlertKind.NONCONVENTIONAL: _words(
        "Загроза неконвенційних ракет",
        "Відбій загрози неконвенційних ракет",
        "Non-conventional missile threat",
        "Non-conventional missile threat over",
        ("Пройдіть в укриття і зачиніть його.", "Go to a shelter and seal it."),
    ),
    AlertKind.GENERAL_WARNING: _words(
        "Загальна загроза",
        "Відбій загальної загрози",
        "General threat warning",
        "General threat warning over",
        ("Дотримуйтеся вказівок влади.", "Follow official instructions."),
    ),
    AlertKind.ADVISORY: _words(
        "Попередження", "Попередження скасовано", "Advisory", "Advisory lifted", gender="neuter"
    ),
    AlertKind.INFO: _words(
        "Повідомлення", "Повідомлення завершено", "Notice", "Notice ended", gender="neuter"
    ),
    AlertKind.UNKNOWN: _words(
        "Тривога",
        "Відбій тривоги",
        "Alert",
        "All clear",
        ("Дотримуйтеся вказівок влади.", "Follow official instructions."),
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
