"""Logging: one line per thing that happened, its facts kept as data; secrets never printed.

A log call names what happened and passes the facts as fields::

    log = get_logger(__name__)
    log.info("delivery ok", subscriber="olena", event=event.id, status=event.status, latency_ms=840)

The record keeps the message and the fields apart (``record.fields``), and each formatter renders
them its own way (structlog's idea: one event dict, two renderers):

- :class:`TextFormatter`, for people: ``2026-11-25T14:03:07Z INFO delivery ok subscriber=olena …``;
- :class:`JsonFormatter`, for machines: ``{"time": …, "message": "delivery ok", "subscriber": "olena", …}``,
  so ``jq 'select(.source == "aiu")'`` or a Loki label filter works on the fields themselves.

A plain ``logging.getLogger(...)`` works too: ``log.info("x", extra={"fields": {...}})``.

Secrets are masked twice over: code logs masked forms on purpose (``mask_url``, ``mask_phone``), and
a :class:`SecretFilter` holding every configured secret scrubs whatever slips through (an exception
text quoting a URL, a field holding an error message) in the message, the fields and the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import IO, TypeAlias, cast

from alertd.core.model import iso_utc

_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\- ]{7,}\d(?!\w)")
# A date ("2026-11-25", "2026-11-25 15") also matches _PHONE; masking it garbled every timestamp in a
# log line ("down_since=2026-1…25T15:29:42Z"). Dates are left alone. The trailing (?!\w) keeps a hex
# event id that happens to start with nine digits from being "masked" into something unsearchable.
_DATE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?: [01]\d| 2[0-3])?")

# Keys every JSON line has; a field of the same name is written with a trailing underscore instead.
_BASE_KEYS = frozenset({"time", "level", "logger", "message", "exception"})

ExcInfo: TypeAlias = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)


def mask_phone(text: str) -> str:
    """+380501234567 → +38050…67: enough to recognise, not enough to call."""

    def repl(match: re.Match[str]) -> str:
        digits = match.group(0)
        if _DATE.fullmatch(digits):
            return digits
        return digits[:6] + "…" + digits[-2:]

    return _PHONE.sub(repl, text)


# -- the API code calls --------------------------------------------------------------------------------


class Log:
    """A logger whose calls take the line's facts as keyword fields.

    ``exc_info`` is the only reserved keyword; ``None`` fields are left out of the line (so optional
    facts need no ``if``). Fields are evaluated by the caller, so keep them cheap or guard a costly
    one with :meth:`enabled`.
    """

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    @property
    def name(self) -> str:
        return self._logger.name

    def enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def debug(self, message: str, /, *, exc_info: object = None, **fields: object) -> None:
        self._emit(logging.DEBUG, message, exc_info, fields)

    def info(self, message: str, /, *, exc_info: object = None, **fields: object) -> None:
        self._emit(logging.INFO, message, exc_info, fields)

    def warning(self, message: str, /, *, exc_info: object = None, **fields: object) -> None:
        self._emit(logging.WARNING, message, exc_info, fields)

    def error(self, message: str, /, *, exc_info: object = None, **fields: object) -> None:
        self._emit(logging.ERROR, message, exc_info, fields)

    def exception(self, message: str, /, **fields: object) -> None:
        """ERROR with the exception being handled attached (call it from an ``except`` block)."""
        self._emit(logging.ERROR, message, True, fields)

    def log(self, level: int, message: str, /, *, exc_info: object = None, **fields: object) -> None:
        self._emit(level, message, exc_info, fields)

    def _emit(self, level: int, message: str, exc_info: object, fields: dict[str, object]) -> None:
        if self._logger.isEnabledFor(level):
            # stacklevel 3: the record's file/line is the caller of info()/warning()/…, not this module.
            # exc_info is typed ``object`` above so that ``**fields`` from any dict type-checks; it is
            # what logging accepts (an exception, an exc_info tuple, True, or None).
            self._logger.log(
                level, message, exc_info=cast(ExcInfo, exc_info), extra={"fields": fields}, stacklevel=3
            )


def get_logger(name: str) -> Log:
    """The field-taking logger for ``name`` (use the module's ``__name__``)."""
    return Log(name)


def fields_of(record: logging.LogRecord) -> Mapping[str, object]:
    """The fields a record carries (none for a line from a plain logger without ``extra``)."""
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


# -- rendering -----------------------------------------------------------------------------------------


def _text_value(value: object) -> str:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_text_value(v) for v in value)
    return str(value)


def format_fields(fields: Mapping[str, object]) -> str:
    """``key=value`` pairs, in call order, quoted (JSON string syntax) only where a reader needs it."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = _text_value(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def line(record: logging.LogRecord) -> str:
    """What the text format shows after the time and level: message, fields, then any traceback.

    Tests read records through this, so they see exactly what an operator sees.
    """
    text = record.getMessage()
    rendered = format_fields(fields_of(record))
    if rendered:
        text = f"{text} {rendered}" if text else rendered
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = logging.Formatter().formatException(record.exc_info)
    if exc_text:
        text += "\n" + exc_text
    return text


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


class TextFormatter(logging.Formatter):
    """``2026-11-25T14:03:07Z INFO delivery ok subscriber=olena …`` — UTC, one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return f"{stamp} {record.levelname} {line(record)}".replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; each field is a top-level key beside time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        data: dict[str, object] = {
            "time": stamp,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            if value is not None:
                data[key + "_" if key in _BASE_KEYS else key] = _json_value(value)
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = self.formatException(record.exc_info)
        if exc_text:
            data["exception"] = exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


# -- secrets -------------------------------------------------------------------------------------------


class SecretFilter(logging.Filter):
    """Replaces every known secret (tokens, Apprise URLs, their credential parts) with ``***``.

    It scrubs the message, every field value and the traceback, and masks phone numbers in all three.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first so a URL is replaced whole before a token inside it
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return mask_phone(text)

    def scrub_value(self, value: object) -> object:
        """A field value with secrets scrubbed; numbers, booleans and times cannot hold one."""
        if value is None or isinstance(value, bool | int | float | datetime):
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): self.scrub_value(v) for k, v in value.items()}
        text = str(value)
        scrubbed = self.scrub(text)
        return value if scrubbed == text else scrubbed

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.msg = self.scrub(record.getMessage())
        record.args = None
        fields = fields_of(record)
        if fields:
            record.fields = {key: self.scrub_value(value) for key, value in fields.items()}
        return True


def setup_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> SecretFilter:
    """Configure the root logger once per process; returns the filter so secrets can be added."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    secret_filter = SecretFilter(secrets)
    handler.addFilter(secret_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter that would print URLs (with tokens) at INFO
    for noisy in ("httpx", "httpcore", "apscheduler", "apprise", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return secret_filter
