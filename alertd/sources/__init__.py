"""One module per upstream feed type, each ending with ``SPEC = SourceSpec(...)``.

:data:`REGISTRY` maps a type name (the ``type`` of a ``[[sources]]`` entry) to its
spec. It is built once, here, from the modules' specs; configuration, the poller,
the daemon, ``alertd parse`` and the simulator read it and keep no per-type tables.
Adding a feed type means adding a module and its line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from alertd.sources import alerts_in_ua, cap, oref, rss, ukrainealarm
from alertd.sources.spec import SourceSpec

__all__ = ["REGISTRY", "spec_for"]

REGISTRY: Mapping[str, SourceSpec] = MappingProxyType(
    {spec.type: spec for spec in (alerts_in_ua.SPEC, ukrainealarm.SPEC, rss.SPEC, cap.SPEC, oref.SPEC)}
)


def spec_for(source_type: str) -> SourceSpec:
    """The spec of a configured type; config validation guarantees it exists."""
    return REGISTRY[source_type]
