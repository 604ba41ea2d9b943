"""The poller's small pieces: the linked-message cache, link resolution, bounded inflation."""

from __future__ import annotations

import gzip
import zlib

import pytest

from alertd.core.model import Notice
from alertd.errors import FetchError
from alertd.run.fetch import _Inflater, no_proxy_with_loopback
from alertd.run.poll import MessageCache, _absolute


def notice(i: int) -> Notice:
    return Notice(source="cap", id=f"m{i}", title=f"message {i}")


def test_message_cache_drops_the_least_recently_used() -> None:
    cache = MessageCache(limit=2)
    cache.put("a", (notice(1),))
    cache.put("b", (notice(2),))
    assert cache.get("a") == (notice(1),)  # a is now the most recent
    cache.put("c", (notice(3),))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    cache.put("refused", ())
    assert cache.get("refused") == ()  # a refusal is remembered too (not None: no refetch)


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("/cap/1.xml", "https://alerts.example.org/feed.atom", "https://alerts.example.org/cap/1.xml"),
        ("2.cap", "https://alerts.example.org/cap/feed.atom", "https://alerts.example.org/cap/2.cap"),
        (
            "https://other.example/3.xml",
            "https://alerts.example.org/feed.atom",
            "https://other.example/3.xml",
        ),
        ("/cap/1.xml", "index.atom", None),  # a file has no base to resolve against
        ("file:///etc/passwd", "https://alerts.example.org/feed.atom", None),
        ("ftp://alerts.example.org/1.xml", None, None),
    ],
)
def test_links_resolve_against_the_index_and_only_http_is_fetched(
    href: str, base: str | None, expected: str | None
) -> None:
    assert _absolute(href, base) == expected


def test_inflater_reads_several_gzip_members_and_caps_decoded_bytes() -> None:
    body = gzip.compress(b"[1,") + gzip.compress(b"2]")
    inflater = _Inflater("gzip", "src", 1000)
    assert b"".join(inflater.feed(body) + inflater.finish()) == b"[1,2]"
    bomb = zlib.compress(b"\0" * 1_000_000)
    with pytest.raises(FetchError, match="decompressed response exceeds the 1000-byte cap"):
        _Inflater("deflate", "src", 1000).feed(bomb)


def test_inflater_refuses_junk_after_a_deflate_stream() -> None:
    with pytest.raises(FetchError, match="after the end"):
        _Inflater("deflate", "src", 1000).feed(zlib.compress(b"{}") + b"junk")


def test_no_proxy_keeps_the_operators_hosts_and_adds_loopback_once() -> None:
    assert no_proxy_with_loopback("ntfy.internal") == "ntfy.internal,127.0.0.1,localhost,::1"
    assert no_proxy_with_loopback("127.0.0.1, localhost") == "127.0.0.1,localhost,::1"
    assert no_proxy_with_loopback(None) == "127.0.0.1,localhost,::1"
