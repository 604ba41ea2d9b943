"""The region registry: every place alertd knows, its codes, names and parent.

INTERFACE STUB — being implemented. Signatures below are the contract.
"""

from __future__ import annotations

from collections.abc import Iterable

from alertd.model import Region, RegionLevel


class RegionRegistry:
    def __init__(self, regions: Iterable[Region], source_ids: dict[tuple[str, str], str] | None = None) -> None:
        """``source_ids`` maps (source kind, upstream id as str) -> region code."""
        raise NotImplementedError

    @classmethod
    def load(cls) -> RegionRegistry:
        """The registry shipped as package data (alertd/data/regions.json)."""
        raise NotImplementedError

    def get(self, code: str) -> Region | None:
        raise NotImplementedError

    def by_source_id(self, source: str, source_id: str | int) -> Region | None:
        """source is "alerts_in_ua" or "ukrainealarm"."""
        raise NotImplementedError

    def resolve(
        self,
        source: str,
        source_id: str | int,
        *,
        name: str = "",
        level: RegionLevel = RegionLevel.HROMADA,
        oblast_hint: str | int | None = None,
    ) -> tuple[Region, str | None]:
        """Region for an upstream id; unknown ids give ``<source>:<id>`` plus a warning text."""
        raise NotImplementedError

    def find(self, name: str) -> list[Region]:
        """Exact name match, Ukrainian or English, case- and apostrophe-insensitive."""
        raise NotImplementedError

    def search(self, query: str, limit: int = 20) -> list[Region]:
        raise NotImplementedError

    def ancestors(self, code: str) -> list[Region]:
        """Parent first, up to the oblast (and country if present)."""
        raise NotImplementedError

    def contains(self, outer: str, inner: str) -> bool:
        """True when ``inner`` is ``outer`` or lies inside it."""
        raise NotImplementedError

    def related(self, a: str, b: str) -> bool:
        """True when a and b lie on one line of the hierarchy (either contains the other)."""
        raise NotImplementedError

    def oblasts(self) -> list[Region]:
        raise NotImplementedError
