"""Shared fixtures: the local delivery sinks (tests/support/sinks.py). Keep this file small."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.sinks import JsonSink, SmtpSink


@pytest.fixture
def json_sink() -> Iterator[JsonSink]:
    """An HTTP server for Apprise ``json://127.0.0.1:PORT/<path>`` channels, one per test."""
    with JsonSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server for Apprise ``mailto://`` channels, one per test."""
    with SmtpSink() as sink:
        yield sink
