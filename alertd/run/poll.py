"""One poll of one source: which URL, which headers, which parser. The thin shell around a parser."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from alertd.config import DEFAULT_URLS, SourceConfig
from alertd.core.model import Notice, Snapshot
from alertd.core.regions import RegionRegistry
from alertd.errors import FetchError, ParseError
from alertd.run.fetch import fetch
from alertd.sources import alerts_in_ua, cap, oref, rss, ukrainealarm
from alertd.store.sqlite import SourceCursor

#: type name → parse(body, *, source, registry, where, headers)
PARSERS: dict[str, Callable[..., Any]] = {
    "alerts_in_ua": alerts_in_ua.parse,
    "ukrainealarm": ukrainealarm.parse,
    "rss": rss.parse,
    "cap": cap.parse,
    "oref": oref.parse,
}

STATE_FEEDS = frozenset({"alerts_in_ua", "ukrainealarm", "oref"})


@dataclass(frozen=True)
class PollResult:
    """What a good poll produced. ``payload`` None means the upstream said "unchanged"."""

    payload: Snapshot | list[Notice] | None
    cursor: dict[str, str | None] = field(default_factory=dict)
    received_at: float = 0.0  # time.monotonic() when the response arrived (detection latency)
    received_wall: float = 0.0  # time.time() at the same moment


def source_url(cfg: SourceConfig) -> str:
    url = cfg.url or DEFAULT_URLS.get(cfg.type)
    if not url:
        raise ValueError(f"source {cfg.name}: no url")
    return url


def request_headers(cfg: SourceConfig) -> dict[str, str]:
    """The source's auth header and the ones the upstream insists on."""
    headers = {"Accept": "application/json" if cfg.type in STATE_FEEDS else "*/*"}
    token = cfg.token.get_secret_value() if cfg.token else None
    if cfg.type == "alerts_in_ua" and token:
        headers["Authorization"] = f"Bearer {token}"
    elif cfg.type == "ukrainealarm" and token:
        headers["Authorization"] = token  # ukrainealarm takes the raw key
    elif cfg.type == "oref":
        headers["Referer"] = "https://www.oref.org.il/"
        headers["X-Requested-With"] = "XMLHttpRequest"
    headers.update(cfg.headers)
    return headers


def status_url(cfg: SourceConfig) -> str | None:
    """ukrainealarm's cheap change index, polled before the full alert list."""
    if cfg.type != "ukrainealarm":
        return None
    url = source_url(cfg).rstrip("/")
    return f"{url}/status" if url.endswith("/alerts") else None


def regions_url(cfg: SourceConfig) -> str | None:
    """ukrainealarm's region list (``/api/v3/regions``), beside its ``/api/v3/alerts``."""
    if cfg.type != "ukrainealarm":
        return None
    url = source_url(cfg).rstrip("/")
    return url[: -len("/alerts")] + "/regions" if url.endswith("/alerts") else None


async def fetch_ukrainealarm_regions(
    client: httpx.AsyncClient, cfg: SourceConfig
) -> list[tuple[str, str, str, str | None]]:
    """The upstream's own region list, so ids the shipped registry lacks still find their place."""
    url = regions_url(cfg)
    if url is None:
        return []
    resp = await fetch(
        client, cfg.name, url, headers=request_headers(cfg), timeout=cfg.timeout, max_bytes=cfg.max_bytes
    )
    return ukrainealarm.parse_regions(resp.body, source=cfg.name, where=url)


async def _status_index(
    client: httpx.AsyncClient, cfg: SourceConfig, url: str, headers: dict[str, str]
) -> str | None:
    """The change index, or None when it cannot be had: the full list is then fetched instead.

    The index is only a shortcut. A proxy or stand-in without it (404), or a broken
    answer, must not stop alerts; a rate limit (429/503 with Retry-After) still backs off.
    """
    try:
        resp = await fetch(
            client, cfg.name, url, headers=headers, timeout=cfg.timeout, max_bytes=cfg.max_bytes
        )
        return str(ukrainealarm.parse_status(resp.body, source=cfg.name, where=url))
    except FetchError as exc:
        if exc.retry_after is not None or "HTTP 429" in exc.reason or "HTTP 503" in exc.reason:
            raise
        return None
    except ParseError:
        return None


async def poll_source(
    client: httpx.AsyncClient,
    cfg: SourceConfig,
    cursor: SourceCursor,
    registry: RegionRegistry,
) -> PollResult:
    """Fetch and parse once. Raises FetchError or ParseError; the caller changes nothing then."""
    headers = request_headers(cfg)
    new_cursor: dict[str, str | None] = {}
    index_url = status_url(cfg)
    if index_url:
        index = await _status_index(client, cfg, index_url, headers)
        if index is not None:
            if cursor.baseline_done and cursor.status_index == index:
                now = time.monotonic()
                return PollResult(None, {}, now, time.time())
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
    received, wall = time.monotonic(), time.time()
    if resp.not_modified:
        return PollResult(None, new_cursor, received, wall)
    payload = PARSERS[cfg.type](
        resp.body, source=cfg.name, registry=registry, where=url, headers=resp.headers
    )
    new_cursor["etag"] = resp.etag
    new_cursor["last_modified"] = resp.last_modified
    return PollResult(payload, new_cursor, received, wall)
