"""Fetching upstream feeds: one shared ``httpx.AsyncClient``, safe defaults, typed failures.

Everything here answers one question — did the upstream give us a body we may
parse? — and answers "no" with a :class:`~alertd.errors.FetchError` that says
why (timeout, HTTP status, oversized body), never with an empty body.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from alertd import __version__
from alertd.errors import FetchError

USER_AGENT = f"alertd/{__version__} (civilian air-alert notifier; python-httpx)"


@dataclass(frozen=True)
class Response:
    """A usable upstream answer. ``not_modified`` is a 304: a good poll that changed nothing."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    not_modified: bool = False

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def make_client() -> httpx.AsyncClient:
    """The one client per process: pooled connections, HTTP/1.1, no redirects to other schemes."""
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        timeout=httpx.Timeout(10.0),
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def fetch(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = 5_000_000,
) -> Response:
    """GET ``url`` with conditional headers, a timeout and a size cap.

    Raises FetchError for anything that is not a 2xx or 304; never logs the
    request headers (they carry tokens).
    """
    request_headers = dict(headers or {})
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified
    try:
        # httpx's timeout bounds each connect/read/write step, not the whole request: an
        # upstream trickling one byte per second would hold the poll (and, with
        # max_instances=1, the source) forever. The overall deadline makes ``timeout``
        # mean what the config says: seconds allowed per request.
        async with (
            asyncio.timeout(timeout),
            client.stream("GET", url, headers=request_headers, timeout=timeout) as resp,
        ):
            if resp.status_code == 304:
                # Read the (empty) body: a streamed response closed unread makes httpcore drop the
                # connection, so every unchanged poll would pay a new TCP (and TLS) handshake.
                await resp.aread()
                return Response(status=304, headers=dict(resp.headers), not_modified=True)
            if resp.status_code in (429, 503):
                raise FetchError(
                    source,
                    f"HTTP {resp.status_code} from upstream (rate limited or unavailable)",
                    retry_after=retry_after_seconds(resp.headers.get("retry-after")),
                )
            if not 200 <= resp.status_code < 300:
                raise FetchError(source, f"HTTP {resp.status_code} from upstream")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(source, f"response of {declared} bytes exceeds the {max_bytes}-byte cap")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(source, f"response exceeds the {max_bytes}-byte cap")
                chunks.append(chunk)
            return Response(status=resp.status_code, body=b"".join(chunks), headers=dict(resp.headers))
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise FetchError(source, f"timed out after {timeout:g}s ({type(exc).__name__})") from exc
    except httpx.LocalProtocolError:
        # Raised while building the request, mostly for an illegal header value, and h11
        # quotes that value: a token with a stray newline would land in the log and in
        # the store's last_error (shown by `alertd status`). Name the problem, not the value.
        raise FetchError(
            source,
            "request not sent: a request header is malformed (check the token for stray "
            "whitespace or control characters)",
        ) from None
    except UnicodeEncodeError:
        # A non-ASCII header value (a token pasted with a typographic character); the codec's
        # message quotes a character of it, so it is dropped as well.
        raise FetchError(
            source, "request not sent: a request header is not ASCII (check the token)"
        ) from None
    except httpx.HTTPError as exc:
        # str(exc) of httpx errors names the URL at most, never headers; the URL carries no secret
        # for the sources alertd knows (tokens go in headers).
        raise FetchError(source, f"request failed: {type(exc).__name__}: {exc}") from exc


def backoff_delay(
    failures: int, interval: float, *, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after ``failures`` consecutive failures: exponential with full jitter.

    Never shorter than the poll interval (backing off faster than polling is no
    backoff) and never longer than ``cap`` so a recovered upstream is noticed soon.
    """
    rng = rng or random.Random()
    ceiling = min(cap, interval * (2 ** min(failures, 16)))
    return max(interval, rng.uniform(ceiling / 2, ceiling))
