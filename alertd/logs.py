"""Logging: one readable line per thing that happened, or JSON lines; secrets never printed.

Secrets are masked twice over: code logs masked forms on purpose (``mask_url``,
``mask_phone``), and a :class:`SecretFilter` holding every configured secret
scrubs whatever slips through (an exception text quoting a URL, say).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\- ]{7,}\d")
# A date ("2026-11-25", "2026-11-25 15") also matches _PHONE; masking it garbled every timestamp in a
# log line ("down_since=2026-1…25T15:29:42Z"). Dates are left alone.
_DATE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?: [01]\d| 2[0-3])?")


def mask_phone(text: str) -> str:
    """+380501234567 → +38050…67: enough to recognise, not enough to call."""

    def repl(match: re.Match[str]) -> str:
        digits = match.group(0)
        if _DATE.fullmatch(digits):
            return digits
        return digits[:6] + "…" + digits[-2:]

    return _PHONE.sub(repl, text)


class SecretFilter(logging.Filter):
    """Replaces every known secret (tokens, Apprise URLs, their credential parts) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first so a URL is replaced whole before a token inside it
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return mask_phone(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.scrub(message)
        record.args = None
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-25T14:03:07Z INFO alert started …`` — UTC, one line."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return f"{stamp} {record.levelname} {record.getMessage()}".replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        data = {
            "time": stamp,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update({k: v for k, v in fields.items() if k not in data})
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream=None
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


def kv(**fields: object) -> str:
    """``key=value`` pairs for a log line, quoted only where needed."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={json.dumps(text, ensure_ascii=False) if (' ' in text or not text) else text}")
    return " ".join(parts)
