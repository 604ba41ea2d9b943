"""Fetching upstream feeds: one shared ``httpx.AsyncClient``, safe defaults, typed failures.

Everything here answers one question — did the upstream give us a body we may
parse? — and answers "no" with a :class:`~alertd.errors.FetchError` that says
why (timeout, HTTP status, oversized body), never with an empty body.
"""

from __future__ import annotations

import asyncio
import zlib
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


#: Redirect statuses. alertd follows one only within the same origin (scheme, host, port).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Same-origin hops followed before giving up (a loop is a failed poll, not a hang).
MAX_REDIRECTS = 5
#: Largest piece decompressed at once: memory stays near the cap, whatever the ratio.
_INFLATE_STEP = 64 * 1024


#: Hosts never sent through a proxy: a proxy would reach *its own* loopback, never ours.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def no_proxy_with_loopback(current: str | None) -> str:
    """A ``NO_PROXY`` value that also exempts the loopback hosts, keeping what ``current`` lists.

    For processes that only talk to local stand-ins (``alertd demo``, the tests): the
    notification library (Apprise, over ``requests``) reads ``NO_PROXY`` on its own.
    """
    names = [n.strip() for n in (current or "").split(",") if n.strip()]
    for host in ("127.0.0.1", "localhost", "::1"):
        if host not in names:
            names.append(host)
    return ",".join(names)


def make_client() -> httpx.AsyncClient:
    """The one client per process: pooled connections, HTTP/1.1, redirects handled by :func:`fetch`.

    ``http_proxy``/``https_proxy``/``NO_PROXY`` are honoured for real upstreams, but
    loopback URLs (the demo's and the tests' stand-ins, a local relay) always go
    direct, whatever the proxy environment says.
    """
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,
        mounts={f"all://{host}": None for host in LOOPBACK_HOSTS},
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        timeout=httpx.Timeout(10.0),
    )


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    port = url.port if url.port is not None else {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port


class _Inflater:
    """Decompresses ``Content-Encoding`` gzip/deflate in bounded steps, counting decoded bytes.

    httpx's own decoder inflates a whole network chunk at once, so a gzip bomb could
    cost hundreds of MB before a cap on the result is checked. Here no step yields
    more than ``_INFLATE_STEP`` bytes, and the cap is checked after each.
    """

    def __init__(self, encoding: str, source: str, max_bytes: int) -> None:
        self.encoding = encoding
        self.source = source
        self.max_bytes = max_bytes
        self.size = 0
        self._obj: zlib._Decompress | None = None  # created on the first bytes (deflate sniffs them)

    def _new(self, first: bytes) -> zlib._Decompress:
        if self.encoding == "gzip":
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the RFC, raw deflate by many servers: sniff the header.
        zlib_header = len(first) >= 2 and (first[0] & 0x0F) == 8 and ((first[0] << 8) | first[1]) % 31 == 0
        return zlib.decompressobj(wbits=zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        while data:
            if self._obj is None:
                self._obj = self._new(data)
            try:
                piece = self._obj.decompress(data, _INFLATE_STEP)
            except zlib.error as exc:
                raise FetchError(self.source, f"response body is not valid {self.encoding} ({exc})") from None
            self._count(piece)
            out.append(piece)
            data = self._obj.unconsumed_tail
            if self._obj.eof:
                # gzip allows several members back to back; anything after a deflate stream is junk
                rest = self._obj.unused_data
                self._obj = None
                if rest and self.encoding != "gzip":
                    raise FetchError(self.source, "data after the end of the deflate stream")
                data = data or rest
        return out

    def finish(self) -> list[bytes]:
        if self._obj is None:
            return []
        piece = self._obj.flush(_INFLATE_STEP)
        self._count(piece)
        return [piece]

    def _count(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise FetchError(self.source, f"decompressed response exceeds the {self.max_bytes}-byte cap")


async def _read_body(resp: httpx.Response, source: str, max_bytes: int) -> bytes:
    """The body, decoded, refused as soon as the raw or the decoded bytes pass ``max_bytes``."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise FetchError(source, f"unsupported Content-Encoding {encoding!r}")
    inflater = (
        _Inflater("gzip" if encoding == "x-gzip" else encoding, source, max_bytes)
        if encoding in ("gzip", "x-gzip", "deflate")
        else None
    )
    chunks: list[bytes] = []
    raw = 0
    async for chunk in resp.aiter_raw():
        raw += len(chunk)
        if raw > max_bytes:
            raise FetchError(source, f"response exceeds the {max_bytes}-byte cap")
        chunks.extend(inflater.feed(chunk) if inflater else [chunk])
    if inflater:
        chunks.extend(inflater.finish())
    return b"".join(chunks)


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
    request headers (they carry tokens). Redirects are followed only within the
    URL's own origin (scheme, host and port); a redirect elsewhere is a failed
    poll: whatever another host answers is not this feed (a captive portal or a
    hijacked DNS name serving ``[]`` would otherwise end every alert).
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
        # mean what the config says: seconds allowed per request (redirect hops included).
        async with asyncio.timeout(timeout):
            target = httpx.URL(url)
            for _hop in range(MAX_REDIRECTS + 1):
                async with client.stream("GET", target, headers=request_headers, timeout=timeout) as resp:
                    if resp.status_code in _REDIRECTS and resp.headers.get("location"):
                        await resp.aclose()
                        target = _redirect_target(source, target, resp)
                        continue
                    return await _response(resp, source, max_bytes)
            raise FetchError(source, f"more than {MAX_REDIRECTS} redirects", status=None)
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


def _redirect_target(source: str, current: httpx.URL, resp: httpx.Response) -> httpx.URL:
    """The next hop of a redirect, or FetchError when it leaves the origin."""
    target = current.join(resp.headers["location"])
    if origin(target) != origin(current):
        where = f"{target.scheme}://{target.host}" + (f":{target.port}" if target.port else "")
        raise FetchError(
            source,
            f"HTTP {resp.status_code} redirect to another origin ({where}) not followed: "
            "an answer from elsewhere is not this feed (configure the new URL if it moved)",
            status=resp.status_code,
        )
    return target


async def _response(resp: httpx.Response, source: str, max_bytes: int) -> Response:
    """Turn one final (non-redirect) answer into a Response or a FetchError carrying its status."""
    status = resp.status_code
    if status == 304:
        # Read the (empty) body: a streamed response closed unread makes httpcore drop the
        # connection, so every unchanged poll would pay a new TCP (and TLS) handshake.
        await resp.aread()
        return Response(status=304, headers=dict(resp.headers), not_modified=True)
    if status in (429, 503):
        raise FetchError(
            source,
            f"HTTP {status} from upstream (rate limited or unavailable)",
            status=status,
            retry_after=retry_after_seconds(resp.headers.get("retry-after")),
        )
    if not 200 <= status < 300:
        raise FetchError(source, f"HTTP {status} from upstream", status=status)
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            source, f"response of {declared} bytes exceeds the {max_bytes}-byte cap", status=status
        )
    body = await _read_body(resp, source, max_bytes)
    return Response(status=status, body=body, headers=dict(resp.headers))
