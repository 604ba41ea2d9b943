"""Operator notices: who hears what, in which words, and how often (one notice per key per window)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from support.sinks import JsonSink

from alertd.core.clock import FakeClock
from alertd.core.model import AlertEvent, AlertKind, EventStatus, Region, RegionLevel
from alertd.logs import line
from alertd.run.operators import OperatorNotifier

NOW = datetime(2026, 11, 25, 14, 20, tzinfo=UTC)
KYIV = Region(code="UA-30", level=RegionLevel.OBLAST, name_uk="м. Київ", name_en="Kyiv")


def dead_event() -> AlertEvent:
    return AlertEvent(
        id="e" * 24,
        source="aiu",
        kind=AlertKind.AIR_RAID,
        status=EventStatus.STARTED,
        region=KYIV,
        started_at=NOW,
        observed_at=NOW,
    )


async def test_source_down_reaches_every_operator_channel(json_sink: JsonSink) -> None:
    ops = OperatorNotifier([json_sink.url("/ops1"), json_sink.url("/ops2")], "en")
    assert await ops.source_down("aiu", NOW - timedelta(minutes=12), "HTTP 503", 300, now=NOW)
    for path in ("/ops1", "/ops2"):
        (notice,) = json_sink.received(path)
        assert notice.title == "alertd: source aiu is down"
        assert notice.type == "failure"
        assert "since 2026-11-25 14:08 UTC (12 min; allowed 5 min)" in notice.message
        assert "Last error: HTTP 503" in notice.message


async def test_one_notice_per_key_per_window_and_held_ones_are_logged(
    json_sink: JsonSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alertd")
    clock = FakeClock()
    ops = OperatorNotifier([json_sink.url("/ops")], "en", rate_limit=600, clock=clock)
    since = NOW - timedelta(minutes=5)
    assert await ops.source_down("aiu", since, "timeout", 60, now=NOW)
    assert not await ops.source_down("aiu", since, "timeout", 60, now=NOW)  # same key, same window
    assert await ops.source_down("ua", since, "timeout", 60, now=NOW)  # another source: another key
    clock.advance(601)
    assert await ops.source_down("aiu", since, "timeout", 60, now=NOW)  # the window has passed
    assert [r.title for r in json_sink.received("/ops")] == [
        "alertd: source aiu is down",
        "alertd: source ua is down",
        "alertd: source aiu is down",
    ]
    held = [line(r) for r in caplog.records if r.getMessage().startswith("operator notice held back")]
    assert held == ["operator notice held back (rate limit) kind=source_down subject=aiu"]


async def test_dead_letters_name_the_alert_in_the_operators_language(json_sink: JsonSink) -> None:
    en = OperatorNotifier([json_sink.url("/en")], "en")
    uk = OperatorNotifier([json_sink.url("/uk")], "uk")
    assert await en.dead_letters(dead_event(), 3, "HTTP 404")
    assert await uk.dead_letters(dead_event(), 3, "HTTP 404")
    (english,) = json_sink.received("/en")
    assert english.title == "alertd: 3 deliveries failed" and english.type == "warning"
    assert (
        "the started notice for Air raid alert UA-30 Kyiv (event eeeeeeeeeeeeeeeeeeeeeeee)" in english.message
    )
    (ukrainian,) = json_sink.received("/uk")
    assert ukrainian.title == "alertd: не доставлено 3 повідомлень"
    assert "про Повітряна тривога UA-30 м. Київ" in ukrainian.message


async def test_a_failing_operator_channel_is_logged_masked_and_others_still_hear(
    json_sink: JsonSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alertd")
    json_sink.configure("/broken", status=500)
    broken = json_sink.url("/broken").replace("json://", "json://ops:hunter2secret@")
    ops = OperatorNotifier([broken, json_sink.url("/ok")], "en")
    assert await ops.source_recovered("aiu", 1500)
    assert json_sink.received("/ok")[0].title == "alertd: source aiu recovered"
    assert "after 25 min down" in json_sink.received("/ok")[0].message
    failed = [r for r in caplog.records if r.getMessage() == "operator notice failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    text = line(failed[0])
    assert "title=" in text and "error=" in text
    assert "hunter2secret" not in "\n".join(line(r) for r in caplog.records)


async def test_without_operator_channels_nothing_is_sent(json_sink: JsonSink) -> None:
    ops = OperatorNotifier([], "en")
    assert not ops.enabled
    assert not await ops.source_down("aiu", NOW, "x", 60, now=NOW)
    assert json_sink.received() == []
