"""One poll of one source, driven by its :class:`~alertd.sources.spec.SourceSpec`: URL, headers, parser.

The thin shell around a parser. Everything type-specific comes from the spec in
:data:`alertd.sources.REGISTRY` (auth header, change index, refresh list, state or
item feed); nothing here names a feed type.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import httpx

from alertd.config import SourceConfig
from alertd.core.clock import SYSTEM_CLOCK, Clock
from alertd.core.model import Notice, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import FetchError, ParseError
from alertd.run.fetch import fetch
from alertd.sources import REGISTRY
from alertd.sources.spec import ItemBatch, ParseInput, SkippedItem, SourceSpec
from alertd.store.base import SourceCursor

#: Linked messages (thin CAP indexes) fetched at most per poll; the rest wait for the next
#: poll. Publishers list dozens of messages and must not get dozens of requests a minute.
MAX_LINKS_PER_POLL = 20
#: Parsed linked messages remembered per source (by identifier + sent): each is fetched once.
MESSAGE_CACHE_SIZE = 2000


@dataclass(frozen=True)
class PollResult:
    """What a good poll produced. ``payload`` None means the upstream said "unchanged".

    ``skipped`` are items of an item feed refused one by one (the rest of the feed was good).
    """

    payload: Snapshot | list[Notice] | None
    cursor: dict[str, str | None] = field(default_factory=dict)
    received_at: float = 0.0  # time.monotonic() when the response arrived (detection latency)
    received_wall: float = 0.0  # time.time() at the same moment
    skipped: tuple[SkippedItem, ...] = ()


@dataclass
class _Cached:
    notices: tuple[Notice, ...]


class MessageCache:
    """Linked messages already fetched and parsed, by key, least recently used dropped first.

    A message is keyed by its identity *and version* (CAP identifier + sent), so an
    Update published under a new sent time is fetched, and an unchanged index costs
    no request per entry. Refused messages are cached too (as no notices): their
    version will not become valid by asking again.
    """

    def __init__(self, limit: int = MESSAGE_CACHE_SIZE) -> None:
        self._items: OrderedDict[str, _Cached] = OrderedDict()
        self._limit = limit

    def get(self, key: str) -> tuple[Notice, ...] | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit.notices

    def put(self, key: str, notices: tuple[Notice, ...]) -> None:
        self._items[key] = _Cached(notices)
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def spec_of(cfg: SourceConfig) -> SourceSpec:
    return REGISTRY[cfg.type]


def source_url(cfg: SourceConfig) -> str:
    url = cfg.effective_url
    if not url:
        raise ValueError(f"source {cfg.name}: no url")
    return url


def request_headers(cfg: SourceConfig) -> dict[str, str]:
    """The source's auth header and the ones the upstream insists on, then the configured ones."""
    token = cfg.token.get_secret_value() if cfg.token else None
    return spec_of(cfg).request_headers(token, cfg.headers)


async def refresh_registry(
    client: httpx.AsyncClient, cfg: SourceConfig, registry: RegionRegistry
) -> RegionRegistry | None:
    """Fetch the type's refresh list (ukrainealarm ``/regions``) and return the updated registry.

    None when the type or this URL has no refresh list. Raises FetchError/ParseError.
    """
    refresh = spec_of(cfg).refresh
    url = refresh.url_for(source_url(cfg)) if refresh else None
    if refresh is None or url is None:
        return None
    resp = await fetch(
        client, cfg.name, url, headers=request_headers(cfg), timeout=cfg.timeout, max_bytes=cfg.max_bytes
    )
    payload = ParseInput(resp.body, cfg.name, registry, url, resp.headers)
    return refresh.update(registry, payload)


async def _change_index(
    client: httpx.AsyncClient, cfg: SourceConfig, registry: RegionRegistry, headers: dict[str, str]
) -> str | None:
    """The change index, or None when it cannot be had: the full list is then fetched instead.

    The index is only a shortcut. A proxy or stand-in without it (404), or a broken
    answer, must not stop alerts; a rate limit (429/503 or Retry-After) still backs off.
    """
    index = spec_of(cfg).change_index
    url = index.url_for(source_url(cfg)) if index else None
    if index is None or url is None:
        return None
    try:
        resp = await fetch(
            client, cfg.name, url, headers=headers, timeout=cfg.timeout, max_bytes=cfg.max_bytes
        )
        return index.parse(ParseInput(resp.body, cfg.name, registry, url, resp.headers))
    except FetchError as exc:
        if exc.retry_after is not None or exc.status in (429, 503):
            raise
        return None
    except ParseError:
        return None


async def resolve_links(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    batch: ItemBatch,
    registry: RegionRegistry,
    cache: MessageCache,
    *,
    base_url: str | None,
    limit: int = MAX_LINKS_PER_POLL,
) -> tuple[list[Notice], list[SkippedItem], bool]:
    """Fetch and parse the messages a thin index links to: each key once, ``limit`` per call.

    Returns the notices, the refused or postponed links, and whether every link was
    settled (False: some must be asked for again, so the index must not be cached).

    A link that cannot be fetched is skipped this time with a warning (and asked for
    again next poll); a linked document that cannot be parsed is refused once (the
    refusal is cached with its version). Linked fetches are sequential and use the
    source's timeout and size cap: the index publisher sees one alertd, not a burst.
    """
    spec = spec_of(cfg)
    assert spec.parse_items is not None
    notices: list[Notice] = []
    skipped: list[SkippedItem] = []
    headers = request_headers(cfg)
    fetched = unsettled = deferred = 0
    for link in batch.links:
        hit = cache.get(link.key)
        if hit is not None:
            notices.extend(hit)
            continue
        if fetched >= limit:
            deferred += 1
            continue
        url = _absolute(link.url, base_url)
        if url is None:
            cache.put(link.key, ())
            skipped.append(
                SkippedItem(link.key, f"{link.entry}: link {link.url!r} is not an http(s) URL", True)
            )
            continue
        fetched += 1
        try:
            resp = await fetch(
                client, cfg.name, url, headers=headers, timeout=cfg.timeout, max_bytes=cfg.max_bytes
            )
        except FetchError as exc:
            unsettled += 1
            skipped.append(
                SkippedItem(link.key, f"{link.entry}: linked message not fetched: {exc.reason}", True)
            )
            continue
        try:
            linked = spec.parse_items(ParseInput(resp.body, cfg.name, registry, url, resp.headers))
        except ParseError as exc:
            cache.put(link.key, ())
            skipped.append(SkippedItem(link.key, f"{link.entry}: linked message refused: {exc.reason}", True))
            continue
        if linked.links:
            cache.put(link.key, ())
            skipped.append(
                SkippedItem(link.key, f"{link.entry}: linked document is an index, not a message", True)
            )
            continue
        cache.put(link.key, linked.notices)
        notices.extend(linked.notices)
        skipped.extend(linked.skipped)
    if deferred:
        skipped.append(
            SkippedItem(
                f"deferred:{deferred}",
                f"{deferred} linked message(s) left for the next poll ({limit} fetched per poll)",
                False,
            )
        )
    return notices, skipped, unsettled == 0 and deferred == 0


def _absolute(href: str, base_url: str | None) -> str | None:
    """``href`` resolved against the index URL; None unless the result is http(s)."""
    try:
        url = httpx.URL(base_url).join(href) if base_url and base_url.startswith("http") else httpx.URL(href)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    return str(url) if url.scheme in ("http", "https") and url.host else None


async def poll_source(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    cursor: SourceCursor,
    registry: RegionRegistry,
    cache: MessageCache | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> PollResult:
    """Fetch and parse once. Raises FetchError or ParseError; the caller changes nothing then.

    ``clock`` stamps when the answer arrived (the daemon's, so detection latency follows it)."""
    spec = spec_of(cfg)
    headers = request_headers(cfg)
    new_cursor: dict[str, str | None] = {}
    index = await _change_index(client, cfg, registry, headers)
    if index is not None:
        if cursor.baseline_done and cursor.status_index == index:
            return PollResult(None, {}, clock.monotonic(), clock.wall())
        new_cursor["status_index"] = index
    url = source_url(cfg)
    conditional = cursor.baseline_done
    resp = await fetch(
        client,
        cfg.name,
        url,
        headers=headers,
        etag=cursor.etag if conditional else None,
        last_modified=cursor.last_modified if conditional else None,
        timeout=cfg.timeout,
        max_bytes=cfg.max_bytes,
    )
    received, wall = clock.monotonic(), clock.wall()
    if resp.not_modified:
        return PollResult(None, new_cursor, received, wall)
    payload = ParseInput(resp.body, cfg.name, registry, url, resp.headers)
    validators: dict[str, str | None] = {"etag": resp.etag, "last_modified": resp.last_modified}
    if spec.parse_state is not None:
        return PollResult(spec.parse_state(payload), new_cursor | validators, received, wall)
    assert spec.parse_items is not None
    batch = spec.parse_items(payload)
    notices = list(batch.notices)
    skipped = list(batch.skipped)
    settled = True
    if batch.links:
        linked, more, settled = await resolve_links(
            client, cfg, batch, registry, cache if cache is not None else MessageCache(), base_url=url
        )
        notices += linked
        skipped += more
    if settled:  # else the next poll must get the whole index again, not a 304
        new_cursor |= validators
    return PollResult(notices, new_cursor, received, wall, tuple(skipped))
