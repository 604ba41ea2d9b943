"""One validation of what a subscriber chooses: regions, kinds, advisories, language.

The configuration file, ``alertd subscribers add`` and the self-service page each used to check
these their own way (three sets of rules that had drifted apart: the CLI never checked
advisories). Each now asks the functions here and only words the answer its own way: the
configuration and the CLI print :attr:`Problem.text`, self-service answers with
:attr:`Problem.key` (its translated error code) and the parameters beside it.

Pure: the region registry is passed in (anything with ``get``; ``find``/``search`` when present
are used for "did you mean" suggestions).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from alertd.core.languages import LANGUAGES, Language
from alertd.core.model import AlertKind, Region

__all__ = [
    "Problem",
    "RegionLookup",
    "check_advisories",
    "check_kinds",
    "check_language",
    "check_regions",
]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
#: A region code longer than this is not one (the longest real ones are "<source>:<id>").
MAX_CODE_LENGTH = 32


class RegionLookup(Protocol):
    """What validation needs from :class:`alertd.core.regions.RegionRegistry` (tests pass a fake)."""

    def get(self, code: str) -> Region | None: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a choice.

    ``field`` and ``index`` say where (``regions``, 2); ``key`` is the machine-readable reason
    (also self-service's error code); ``text`` says it in English for a person at a terminal;
    ``value`` and ``limit`` are the parameters of the message.
    """

    field: str
    key: str
    text: str
    index: int | None = None
    value: str = ""
    limit: int | None = None


def _listed(values: object) -> list[object]:
    """The items of a list or tuple; anything else (None, a string, a number) counts as none."""
    return list(values) if isinstance(values, list | tuple) else []


def check_regions(
    values: object, registry: RegionLookup, *, required: bool = False, limit: int | None = None
) -> tuple[tuple[str, ...], list[Problem]]:
    """Known region codes, in order, each once; problems for none (when ``required``), too many, unknown."""
    items = _listed(values)
    problems: list[Problem] = []
    if required and not items:
        problems.append(Problem("regions", "no_regions", "choose at least one region"))
    if limit is not None and len(items) > limit:
        problems.append(Problem("regions", "too_many_regions", f"at most {limit} regions", limit=limit))
    codes: list[str] = []
    for i, code in enumerate(items):
        if not isinstance(code, str) or len(code) > MAX_CODE_LENGTH or registry.get(code) is None:
            text = f"unknown region code {str(code)!r}"
            if isinstance(code, str):
                text += suggestion(registry, code)
            problems.append(Problem("regions", "unknown_region", text, index=i, value=str(code)))
        elif code not in codes:
            codes.append(code)
    return tuple(codes), problems


def check_kinds(
    values: object, *, allowed: Collection[AlertKind] = tuple(AlertKind), required: bool = False
) -> tuple[tuple[AlertKind, ...], list[Problem]]:
    """Alert kinds among ``allowed``, in order, each once; problems for none (when ``required``), unknown."""
    items = _listed(values)
    problems: list[Problem] = []
    if required and not items:
        problems.append(Problem("kinds", "no_kinds", "choose at least one kind of alert"))
    kinds: list[AlertKind] = []
    for i, value in enumerate(items):
        kind = _kind(value)
        if kind is None or kind not in allowed:
            problems.append(
                Problem(
                    "kinds",
                    "unknown_kind",
                    f"unknown kind {str(value)!r} (one of: {', '.join(str(k) for k in allowed)})",
                    index=i,
                    value=str(value),
                )
            )
        elif kind not in kinds:
            kinds.append(kind)
    return tuple(kinds), problems


def _kind(value: object) -> AlertKind | None:
    if not isinstance(value, str):
        return None
    try:
        return AlertKind(value)
    except ValueError:
        return None


def check_advisories(
    values: Iterable[str], sources: Collection[str]
) -> tuple[tuple[str, ...], list[Problem]]:
    """Advisory subscriptions: each a configured source's name or an ISO country code ("UA")."""
    kept: list[str] = []
    problems: list[Problem] = []
    for i, value in enumerate(values):
        if value in sources or _COUNTRY.match(value):
            if value not in kept:
                kept.append(value)
        else:
            problems.append(
                Problem(
                    "advisories",
                    "bad_advisory",
                    f"{value!r} is neither a source name nor an ISO country code (e.g. 'UA')",
                    index=i,
                    value=value,
                )
            )
    return tuple(kept), problems


def check_language(value: object) -> tuple[Language | None, list[Problem]]:
    """One of :data:`~alertd.core.languages.LANGUAGES` exactly."""
    for language in LANGUAGES:
        if value == language:
            return language, []
    text = f"language must be {' or '.join(LANGUAGES)}, not {str(value)!r}"
    return None, [Problem("language", "bad_language", text, value=str(value))]


def suggestion(registry: RegionLookup, code: str) -> str:
    """' (did you mean UA-30 Kyiv?)' from the registry's name lookups, when it has them."""
    matches: list[Region] = []
    for method, args in (("find", (code,)), ("search", (code, 3))):
        fn = getattr(registry, method, None)
        if fn is None:
            continue
        try:
            matches = list(fn(*args))[:3]
        except Exception:  # a suggestion must never turn into a crash
            matches = []
        if matches:
            break
    if not matches:
        return ""
    return " (did you mean " + ", ".join(f"{r.code} {r.name('en')}" for r in matches) + "?)"
