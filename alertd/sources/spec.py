"""What one upstream feed type is, as data: the :class:`SourceSpec` each ``sources/`` module ends with.

The rest of alertd (configuration, the poller, the daemon, ``alertd parse``, the
simulator) reads these specs through :data:`alertd.sources.REGISTRY` and keeps no
per-type table of its own, so a new feed type is one module here plus its tests.

A spec says how to reach the feed (default URL and interval, auth header, extra
headers), what kind of answer it gives (a *state* feed: the set of alerts active
now; an *item* feed: advisories or CAP messages), and the optional extras a poll
uses (a cheap change index, a periodic refresh of the region registry, the end
hold). The parse functions behind it are pure and typed by the protocols below:
they get one :class:`ParseInput` and read from it only what they need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from alertd.core.model import Notice, Snapshot
from alertd.core.regions import RegionRegistry

__all__ = [
    "Auth",
    "ChangeIndex",
    "FeedShape",
    "ItemBatch",
    "ItemParser",
    "MessageLink",
    "ParseInput",
    "RegistryRefresh",
    "SkippedItem",
    "SourceSpec",
    "StateParser",
]


class FeedShape(StrEnum):
    """State feeds say what is active now (absence can end an alert); item feeds list messages."""

    STATE = "state"
    ITEM = "item"


@dataclass(frozen=True)
class ParseInput:
    """One upstream answer and what a parser may consult to read it.

    ``where`` names the URL or file for error messages; ``headers`` are the response
    headers (some feeds carry their time only there); ``registry`` places region ids.
    """

    body: bytes
    source: str
    registry: RegionRegistry
    where: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageLink:
    """An entry of a "thin" index that only links to its full message (a CAP Atom index).

    ``key`` identifies the message version (CAP identifier + sent, or the entry id +
    updated): the poller fetches a key once and reuses the parsed result after that.
    """

    key: str
    url: str
    entry: str  # how the entry is named in logs ("Atom entry 3 (urn:...)")


@dataclass(frozen=True)
class SkippedItem:
    """An item the parser read and deliberately did not turn into a notice, and why.

    ``warning`` True: something is wrong with the item (logged as a warning each
    time it is seen); False: it is fine but not for residents (a CAP message with
    ``scope`` Restricted), logged once at info.
    """

    key: str
    reason: str
    warning: bool


@dataclass(frozen=True)
class ItemBatch:
    """What an item-feed parser found: notices, links still to fetch, items refused one by one."""

    notices: tuple[Notice, ...] = ()
    links: tuple[MessageLink, ...] = ()
    skipped: tuple[SkippedItem, ...] = ()


class StateParser(Protocol):
    """``ParseInput → Snapshot``; raises :class:`~alertd.errors.ParseError`, never returns a guess."""

    def __call__(self, payload: ParseInput, /) -> Snapshot: ...


class ItemParser(Protocol):
    """``ParseInput → ItemBatch``; one bad item is skipped, a bad document raises ParseError."""

    def __call__(self, payload: ParseInput, /) -> ItemBatch: ...


class IndexParser(Protocol):
    """A change index answer → its opaque value; a moved value means "fetch the full list"."""

    def __call__(self, payload: ParseInput, /) -> str: ...


class RegistryUpdater(Protocol):
    """A refresh answer → the registry that also knows what it lists (pure: returns a new one)."""

    def __call__(self, registry: RegionRegistry, payload: ParseInput, /) -> RegionRegistry: ...


@dataclass(frozen=True)
class Auth:
    """How a token goes on the wire: ``{header}: {prefix}{token}``."""

    required: bool
    header: str = "Authorization"
    prefix: str = ""

    def headers(self, token: str | None) -> dict[str, str]:
        return {self.header: f"{self.prefix}{token}"} if token else {}


@dataclass(frozen=True)
class ChangeIndex:
    """A cheap "has anything changed" endpoint polled before the full list.

    ``url_for`` derives its URL from the feed URL (None: this URL has no index).
    """

    url_for: Callable[[str], str | None]
    parse: IndexParser


@dataclass(frozen=True)
class RegistryRefresh:
    """A list the daemon fetches every ``every`` seconds to teach the region registry new ids."""

    url_for: Callable[[str], str | None]
    update: RegistryUpdater
    every: float = 86400.0
    retry_after_failure: float = 3600.0


@dataclass(frozen=True)
class SourceSpec:
    """Everything alertd needs to know about one feed type. Exactly one parser matches ``shape``."""

    type: str
    shape: FeedShape
    summary: str
    default_url: str | None = None
    default_interval: float = 10.0
    auth: Auth | None = None
    accept: str = "*/*"
    headers: Mapping[str, str] = field(default_factory=dict)
    parse_state: StateParser | None = None
    parse_items: ItemParser | None = None
    change_index: ChangeIndex | None = None
    refresh: RegistryRefresh | None = None
    #: Seconds an alert of this type survives its absence from the list when no
    #: explicit end record came (None: the tracker's consecutive-polls rule applies).
    end_hold: float | None = None

    def __post_init__(self) -> None:
        state = self.shape is FeedShape.STATE
        if state != (self.parse_state is not None) or state == (self.parse_items is not None):
            raise ValueError(f"source type {self.type}: a {self.shape} feed needs exactly its own parser")

    @property
    def token_required(self) -> bool:
        return self.auth is not None and self.auth.required

    def request_headers(self, token: str | None, extra: Mapping[str, str]) -> dict[str, str]:
        """Accept, auth, the type's own headers, then the operator's ``headers`` (which win)."""
        out = {"Accept": self.accept}
        if self.auth is not None:
            out.update(self.auth.headers(token))
        out.update(self.headers)
        out.update(extra)
        return out
