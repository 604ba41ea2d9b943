"""A feed that redirects to another origin: alertd as a process must not take the other host's answer.

The redirect target is a second stand-in serving a perfectly valid, empty alert list: exactly
the answer that would end every alert if alertd trusted it. Assertions are on what the
resident's channel receives (and on the other origin never being asked).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.process import AlertdProcess
from support.sinks import JsonSink
from support.upstream_helpers import AIU_TOKEN, read_events, wait_for, write_config

from alertd.devtools.simulate import Upstream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
KYIV_OBLAST = 14


@pytest.fixture
def elsewhere() -> Iterator[Upstream]:
    """Another origin (another port) whose alert list is empty."""
    with Upstream(token=None) as up:
        yield up


@pytest.fixture
def upstream(elsewhere: Upstream) -> Iterator[Upstream]:
    with Upstream(token=AIU_TOKEN, redirect_to=elsewhere.url) as up:
        yield up


@pytest.fixture
def sink() -> Iterator[JsonSink]:
    with JsonSink() as s:
        yield s


def _redirected(upstream: Upstream) -> int:
    return sum(1 for r in upstream.requests("alerts_in_ua") if r.status == 302)


def test_cross_origin_redirect_changes_nothing_and_no_end_reaches_the_resident(
    tmp_path: Path, upstream: Upstream, elsewhere: Upstream, sink: JsonSink
) -> None:
    resident = sink.url("/olena")
    subscriber = f'[[subscribers]]\nname = "olena"\nregions = ["UA-32"]\nurls = ["{resident}"]\n'
    config = write_config(tmp_path, upstream, sources=("aiu",), interval=1, timeout=2, extra=subscriber)
    db = tmp_path / "state" / "alertd.sqlite3"
    log = tmp_path / "alertd.log"

    proc = AlertdProcess(config, log)
    try:
        wait_for(lambda: len(upstream.requests("alerts_in_ua")) >= 1)
        upstream.add_alert(KYIV_OBLAST, started_at=T0)
        sink.wait_for(1, timeout=30, path="/olena", delivered=True)

        # the feed now redirects to the other origin, whose (valid, empty) list would end the alert
        upstream.set_fault("redirect", "alerts_in_ua")
        wait_for(lambda: _redirected(upstream) >= 4, timeout=60)
        wait_for(lambda: "redirect to another origin" in log.read_text(encoding="utf-8"))

        # the redirect stops: the feed (still reporting the alert) is polled normally again
        upstream.clear_faults()
        polled = len(upstream.requests("alerts_in_ua"))
        wait_for(lambda: len(upstream.requests("alerts_in_ua")) >= polled + 3, timeout=60)
        assert [r.type for r in sink.received("/olena")] == ["failure"]  # the start, nothing else
        assert [e[1] for e in read_events(db)] == ["started"]

        # and a real end still comes through
        upstream.clear_alert(KYIV_OBLAST)
        sink.wait_for(2, timeout=30, path="/olena", delivered=True)
        assert proc.signal(signal.SIGTERM) == 0
    finally:
        proc.stop()

    assert elsewhere.requests() == []  # the other origin was never asked
    assert [r.type for r in sink.received("/olena")] == ["failure", "success"]  # one start, one end
    assert [e[1] for e in read_events(db)] == ["started", "ended"]
    assert AIU_TOKEN not in log.read_text(encoding="utf-8")
