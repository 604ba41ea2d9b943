"""The normalized alert model every part of alertd speaks.

Parsers turn upstream bytes into :class:`Snapshot` (state feeds: what is active
now) or :class:`Notice` (item feeds: advisories, CAP messages); the tracker turns
those into :class:`AlertEvent`; routing, rendering and delivery read only events.
The vocabulary follows OASIS CAP 1.2 where it fits so alertd can read CAP and,
later, publish what it knows as CAP.

All models are frozen pydantic models: immutable, typed, and JSON-serializable
with ``model_dump(mode="json")``. Every datetime is timezone-aware UTC; naive
datetimes are rejected rather than guessed at, because a wrong offset on an air
raid start is worse than a loud error.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, overload

from pydantic import AfterValidator, BaseModel, ConfigDict


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_utc)]


@overload
def iso_utc(value: datetime) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
@overload
def iso_utc(value: datetime | None) -> str | None: ...
def iso_utc(value: datetime | None) -> str | None:
    """``2026-11-25T14:03:07Z``: the one way alertd shows a moment to people and to JSON readers.

    Whole seconds and a ``Z``, because operators compare these by eye across log lines, ``status
    --json`` and ``/healthz``; a naive value is taken as UTC already (the store keeps UTC only).
    """
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class AlertKind(StrEnum):
    """What kind of danger an alert is about; each source maps its codes here."""

    AIR_RAID = "air_raid"
    ARTILLERY = "artillery"
    URBAN_FIGHTS = "urban_fights"
    CHEMICAL = "chemical"
    NUCLEAR = "nuclear"
    DRONES = "drones"
    MISSILES = "missiles"
    HOSTILE_AIRCRAFT = "hostile_aircraft"
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    HAZMAT = "hazmat"
    INFILTRATION = "infiltration"
    NONCONVENTIONAL = "nonconventional"  # missiles with a non-conventional (chemical) warhead (Oref)
    GENERAL_WARNING = "general_warning"  # a threat the authority does not name further (Oref "warning")
    ADVISORY = "advisory"
    INFO = "info"
    UNKNOWN = "unknown"


class RegionLevel(StrEnum):
    COUNTRY = "country"
    OBLAST = "oblast"
    RAION = "raion"
    HROMADA = "hromada"
    CITY = "city"


class EventStatus(StrEnum):
    # state feeds
    STARTED = "started"
    ENDED = "ended"
    UPDATED = "updated"
    # item feeds
    ISSUED = "issued"
    CANCELLED = "cancelled"


class Severity(StrEnum):
    """CAP 1.2 severity."""

    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Frozen):
    """A place alerts are raised for.

    ``code`` is stable across sources: ISO 3166-2 for first-level divisions
    (``UA-30``), KATOTTH-like or ``<source>:<id>`` below. ``oblast`` is the ISO
    code of the first-level division the region lies in (itself for an oblast),
    which routing and the ``parse`` contract rely on.
    """

    code: str
    level: RegionLevel
    name_uk: str
    name_en: str = ""
    parent: str | None = None
    oblast: str | None = None

    def name(self, language: str = "uk") -> str:
        if language == "uk":
            return self.name_uk or self.name_en
        return self.name_en or self.name_uk

    def __hash__(self) -> int:
        return hash(self.code)


class ActiveAlert(_Frozen):
    """One alert a state feed reports as active now (or, with ``ended_at``, explicitly over)."""

    source_id: str
    kind: AlertKind
    region: Region
    started_at: UTCDateTime | None = None
    ended_at: UTCDateTime | None = None
    severity: Severity = Severity.SEVERE
    details: str = ""

    @property
    def key(self) -> tuple[str, AlertKind]:
        """What makes two reports the same alert: the place and the danger."""
        return (self.region.code, self.kind)


class Snapshot(_Frozen):
    """A state feed's complete answer: the set of alerts active at ``as_of``.

    ``ended`` carries explicit end records (an Oref "event ended" message, a
    finished history entry) so the tracker can end an alert at once instead of
    waiting for two polls without it. ``warnings`` are things the parser saw but
    could not place (unknown region ids); the shell logs them, the parser stays pure.
    """

    source: str
    alerts: tuple[ActiveAlert, ...] = ()
    ended: tuple[ActiveAlert, ...] = ()
    as_of: UTCDateTime | None = None
    warnings: tuple[str, ...] = ()


class Notice(_Frozen):
    """One entry of an item feed: an advisory, an embassy alert, a CAP message."""

    source: str
    id: str
    title: str
    summary: str = ""
    url: str | None = None
    published_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None
    kind: AlertKind = AlertKind.ADVISORY
    severity: Severity = Severity.UNKNOWN
    urgency: str | None = None
    certainty: str | None = None
    level: int | None = None  # travel advisory level 1-4 where the feed has one
    country: str | None = None  # ISO 3166-1 alpha-2 where known
    country_name: str | None = None
    fips: str | None = None  # FIPS 10-4 country tag (State Department feed)
    msg_type: str | None = None  # CAP msgType: Alert | Update | Cancel | Ack | Error
    references: tuple[str, ...] = ()  # CAP references: "sender,identifier,sent"
    language: str | None = None
    areas: tuple[str, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()
    onset: UTCDateTime | None = None  # CAP onset: when the subject event begins (an alert's start)
    effective: UTCDateTime | None = None  # CAP effective (alertd's all-clear: the alert's end)
    response_types: tuple[str, ...] = ()  # CAP responseType values (Shelter, AllClear, …)

    def content_hash(self) -> str:
        """A hash of what a reader sees, so a re-published identical item is not news."""
        parts = [self.title, self.summary, self.url or "", str(self.level or ""), self.msg_type or ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class AlertEvent(_Frozen):
    """Something a person may need to hear about: an alert began, ended, changed, or a notice came.

    ``id`` is the dedup key (source, region, kind, start, status) so the same
    event can never be stored or fanned out twice, whatever restarts happen.
    """

    id: str
    source: str
    kind: AlertKind
    status: EventStatus
    region: Region | None = None
    severity: Severity = Severity.SEVERE
    headline: str = ""
    body: str = ""
    url: str | None = None
    started_at: UTCDateTime | None = None
    ended_at: UTCDateTime | None = None
    observed_at: UTCDateTime
    country: str | None = None  # for notices: ISO country they are about
    level: int | None = None  # for advisories

    @staticmethod
    def make_id(*parts: object) -> str:
        raw = "|".join(
            "" if p is None else (p.isoformat() if isinstance(p, datetime) else str(p)) for p in parts
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:24]
