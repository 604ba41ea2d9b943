"""Helpers every parser shares: bounded, strict decoding of JSON and XML and time parsing.

Each helper raises :class:`~alertd.errors.ParseError` naming the source and the
file or feed, so a parser never has to decide what an untrustworthy payload means.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from alertd.errors import ParseError

#: Largest body any parser accepts. Real feeds are well under 1 MB; anything near
#: this is a broken proxy or an attack, never a list of alerts.
MAX_BODY_BYTES = 10 * 1024 * 1024


def check_size(body: bytes, source: str, where: str | None, limit: int = MAX_BODY_BYTES) -> None:
    if len(body) > limit:
        raise ParseError(source, f"body of {len(body)} bytes exceeds the {limit}-byte limit", where)


def decode_text(body: bytes, source: str, where: str | None) -> str:
    """Decode a JSON body: UTF-8 (BOM optional) or UTF-16 with BOM; anything else is refused."""
    check_size(body, source, where)
    try:
        if body.startswith(codecs.BOM_UTF8):
            return body[len(codecs.BOM_UTF8) :].decode("utf-8")
        if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return body.decode("utf-16")
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            source, f"body is not UTF-8 or BOM-marked UTF-16 text ({exc.reason})", where
        ) from exc


def load_json(body: bytes, source: str, where: str | None) -> Any:
    text = decode_text(body, source, where)
    if not text.strip():
        raise ParseError(source, "empty body", where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            source, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", where
        ) from exc
    except RecursionError as exc:
        raise ParseError(source, "JSON nested too deeply", where) from exc


def load_xml(body: bytes, source: str, where: str | None) -> Element:
    """Parse XML with entity expansion, external entities and DTDs refused."""
    check_size(body, source, where)
    if not body.strip():
        raise ParseError(source, "empty body", where)
    try:
        return DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ParseError(source, f"unsafe XML refused ({type(exc).__name__})", where) from exc
    except DET.ParseError as exc:
        raise ParseError(source, f"malformed XML: {exc}", where) from exc


def expect(value: Any, typ: type | tuple[type, ...], field: str, source: str, where: str | None) -> Any:
    """Return ``value`` if it has the expected type, else a ParseError naming the field."""
    if not isinstance(value, typ) or (
        isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))
    ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ParseError(source, f"field {field!r} should be {names}, got {type(value).__name__}", where)
    return value


def parse_time(value: Any, field: str, source: str, where: str | None, *, naive_tz: tzinfo = UTC) -> datetime:
    """Parse ISO 8601, ``YYYY/MM/DD HH:MM:SS +0000`` or RFC 822 into aware UTC.

    A time without an offset is read in ``naive_tz`` (the source's documented zone).
    """
    if not isinstance(value, str) or not value.strip():
        raise ParseError(source, f"field {field!r} should be a time string, got {value!r}", where)
    text = value.strip()
    dt: datetime | None = None
    for fmt in ("%Y/%m/%d %H:%M:%S %z", "%Y/%m/%d %H:%M:%S"):
        try:
            dt = datetime.strptime(text, fmt)
            break
        except ValueError:
            pass
    if dt is None:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                dt = None
    if dt is None:
        raise ParseError(source, f"field {field!r} is not a time: {value!r}", where)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=naive_tz)
    return dt.astimezone(UTC)


def header_time(headers: Mapping[str, str] | None, source: str, where: str | None) -> datetime | None:
    """``Last-Modified`` as a snapshot's time where the body carries none.

    A garbled header is ignored: it does not make the body itself untrustworthy.
    """
    for key, value in (headers or {}).items():
        if key.lower() == "last-modified":
            try:
                return parse_time(value, "Last-Modified", source, where)
            except ParseError:
                return None
    return None


def load_api_json(body: bytes, source: str, where: str | None, data_keys: Collection[str]) -> Any:
    """Strict JSON from a JSON API: an HTML page and an error object are named as what they are.

    A JSON object without any of ``data_keys`` but with ``message``/``error``/``detail``/
    ``title`` is the API's error answer: quoted in a ParseError, never read as "no alerts".
    """
    check_size(body, source, where)
    if body[:512].lstrip().startswith(b"<"):
        raise ParseError(source, "got HTML/XML (an error page?) where JSON was expected", where)
    data = load_json(body, source, where)
    if isinstance(data, dict) and not any(key in data for key in data_keys):
        for key in ("message", "error", "detail", "title"):
            if key in data:
                raise ParseError(source, f"upstream error response: {str(data[key])[:200]!r}", where)
    return data
