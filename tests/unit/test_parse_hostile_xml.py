"""Hostile and broken XML bodies: both XML parsers refuse them with ParseError, never an empty result."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alertd.core.model import Notice
from alertd.errors import ParseError
from alertd.sources import cap, rss
from alertd.sources._common import MAX_BODY_BYTES

Parser = Callable[..., list[Notice]]
PARSERS = [pytest.param(rss.parse, id="rss"), pytest.param(cap.parse, id="cap")]

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title></item></channel></rss>
"""

BILLION_LAUGHS_CAP = BILLION_LAUGHS.replace(
    b'<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title></item></channel></rss>',
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>',
)

XXE_RSS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title><guid>g</guid></item></channel></rss>
"""

XXE_CAP = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier><sender>s</sender>
<sent>2024-01-01T00:00:00+00:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><event>&xxe;</event></info></alert>
"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;]>
<rss version="2.0"><channel><title>t</title></channel></rss>
"""

DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/rss.dtd">
<rss version="2.0"><channel><title>t</title></channel></rss>
"""

HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title><meta charset="utf-8"></head>
<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response<br></p></body></html>
"""

XHTML_PAGE = b"""<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Maintenance</title></head>
<body><p>We will be back soon.</p></body></html>
"""


def _passwd_markers() -> list[str]:
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        first = ""
    return [m for m in ("root:x:", first) if m]


def _assert_refused(parser: Parser, body: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parser(body, source="hostile-feed", where="https://example.invalid/feed")
    err = info.value
    assert err.source == "hostile-feed"
    assert err.where == "https://example.invalid/feed"
    return err


@pytest.mark.parametrize("parser", PARSERS)
def test_billion_laughs(parser: Parser) -> None:
    _assert_refused(parser, BILLION_LAUGHS)
    _assert_refused(parser, BILLION_LAUGHS_CAP)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("body", [XXE_RSS, XXE_CAP], ids=["rss-body", "cap-body"])
def test_external_entity_never_read(parser: Parser, body: bytes) -> None:
    err = _assert_refused(parser, body)
    text = f"{err} {err.reason} {err!r}"
    for marker in _passwd_markers():
        assert marker not in text


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("body", [XXE_PARAMETER, DTD_ONLY], ids=["parameter-entity", "external-dtd"])
def test_any_dtd_is_refused(parser: Parser, body: bytes) -> None:
    _assert_refused(parser, body)


@pytest.mark.parametrize("parser", PARSERS)
def test_truncated_xml(parser: Parser) -> None:
    good = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>A</title>'
    _assert_refused(parser, good)
    cap_part = b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</ident'
    _assert_refused(parser, cap_part)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "body",
    [
        b"<rss version='2.0'><channel><title>a & b</title></channel></rss>",
        b"<rss><channel></rss></channel>",
        b"<rss/><rss/>",
        b"just some text",
        b'{"id": "1", "data": []}',
        b"",
        b"   \r\n",
    ],
    ids=["bare-ampersand", "mismatched-tags", "two-roots", "text", "json", "empty", "whitespace"],
)
def test_invalid_xml(parser: Parser, body: bytes) -> None:
    _assert_refused(parser, body)


@pytest.mark.parametrize("parser", PARSERS)
def test_oversized_body_is_refused_by_size(parser: Parser) -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>' + b"a" * (50 * 1024 * 1024) + b"</title>"
    )
    err = _assert_refused(parser, body)
    assert str(MAX_BODY_BYTES) in err.reason


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("body", [HTML_PAGE, XHTML_PAGE], ids=["html", "xhtml"])
def test_html_page(parser: Parser, body: bytes) -> None:
    _assert_refused(parser, body)


@pytest.mark.parametrize("parser", PARSERS)
def test_non_utf8_garbage(parser: Parser) -> None:
    _assert_refused(parser, bytes(range(128, 256)) * 8)
    latin1_declared_utf8 = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Café'.encode("latin-1")
        + b"</title></channel></rss>"
    )
    _assert_refused(parser, latin1_declared_utf8)


@pytest.mark.parametrize("parser", PARSERS)
def test_body_naming_a_local_file_is_not_opened(parser: Parser) -> None:
    """feedparser opens a str/bytes argument that names a file; the parser must never let it."""
    _assert_refused(parser, b"/etc/passwd")
