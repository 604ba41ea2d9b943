"""Metrics: every hook moves the right series, registries are private, the text format parses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from alertd.core.model import AlertEvent, AlertKind, EventStatus
from alertd.run.daemon import Hooks
from alertd.web.metrics import DELIVERY_OUTCOMES, DETECTION_BUCKETS, Metrics

NOW = 1_800_000_000.0


def event(
    kind: AlertKind = AlertKind.AIR_RAID, status: EventStatus = EventStatus.STARTED, **kw
) -> AlertEvent:
    return AlertEvent(
        id=f"{kind}-{status}",
        source="aiu",
        kind=kind,
        status=status,
        observed_at=kw.pop("observed_at", datetime.fromtimestamp(NOW, UTC)),
        **kw,
    )


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    value = m.registry.get_sample_value(name, labels)
    return value


def test_is_a_daemon_hooks_implementation() -> None:
    hooks: Hooks = Metrics()  # type-checks against the Protocol; and the methods exist
    for name in ("poll_ok", "poll_failed", "events", "delivered", "failed", "dead", "superseded"):
        assert callable(getattr(hooks, name))


def test_polls_failures_and_last_success() -> None:
    m = Metrics(sources=["aiu", "ua-alarm"])
    assert sample(m, "alertd_polls_total", source="ua-alarm") == 0  # pre-created series
    assert sample(m, "alertd_poll_failures_total", source="ua-alarm") == 0
    m.poll_ok("aiu", NOW - 3)
    m.poll_ok("aiu", NOW)
    m.poll_failed("aiu", "HTTP 502 from upstream")
    assert sample(m, "alertd_polls_total", source="aiu") == 2
    assert sample(m, "alertd_poll_failures_total", source="aiu") == 1
    assert sample(m, "alertd_source_last_success_timestamp_seconds", source="aiu") == NOW


def test_events_count_by_kind_and_status_and_time_detection() -> None:
    m = Metrics(clock=lambda: NOW)
    m.events(
        [event(), event(AlertKind.AIR_RAID, EventStatus.ENDED), event(AlertKind.ARTILLERY)],
        received_wall=NOW - 0.02,
    )
    assert sample(m, "alertd_events_total", kind="air_raid", status="started") == 1
    assert sample(m, "alertd_events_total", kind="air_raid", status="ended") == 1
    assert sample(m, "alertd_events_total", kind="artillery", status="started") == 1
    assert sample(m, "alertd_detection_latency_seconds_count") == 3
    assert sample(m, "alertd_detection_latency_seconds_sum") == pytest.approx(0.06)
    assert sample(m, "alertd_detection_latency_seconds_bucket", le="0.01") == 0
    assert sample(m, "alertd_detection_latency_seconds_bucket", le="0.025") == 3


def test_detection_buckets_span_5ms_to_30s() -> None:
    assert DETECTION_BUCKETS[0] == 0.005
    assert DETECTION_BUCKETS[-1] == 30.0
    assert list(DETECTION_BUCKETS) == sorted(DETECTION_BUCKETS)


def test_received_wall_in_the_future_counts_as_zero() -> None:
    m = Metrics(clock=lambda: NOW)
    m.events([event()], received_wall=NOW + 5)  # clock stepped back: never a negative observation
    assert sample(m, "alertd_detection_latency_seconds_sum") == 0


def test_delivery_outcomes_and_latency() -> None:
    m = Metrics(clock=lambda: NOW)
    for outcome in DELIVERY_OUTCOMES:
        assert sample(m, "alertd_deliveries_total", outcome=outcome) == 0
    e = event()
    m.delivered(e, 1.5)
    m.failed(e)
    m.failed(e)
    m.dead(e)
    m.superseded(e)
    assert sample(m, "alertd_deliveries_total", outcome="delivered") == 1
    assert sample(m, "alertd_deliveries_total", outcome="retry") == 2
    assert sample(m, "alertd_deliveries_total", outcome="dead") == 1
    assert sample(m, "alertd_deliveries_total", outcome="superseded") == 1
    assert sample(m, "alertd_delivery_latency_seconds_count") == 1
    assert sample(m, "alertd_delivery_latency_seconds_sum") == 1.5


def test_delivery_latency_defaults_to_age_of_the_event() -> None:
    m = Metrics(clock=lambda: NOW)
    m.delivered(event(observed_at=datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=42)))
    assert sample(m, "alertd_delivery_latency_seconds_sum") == pytest.approx(42)


def test_outbox_depth_is_read_at_scrape_time() -> None:
    depth = [0]
    m = Metrics(outbox_depth=lambda: depth[0])
    assert sample(m, "alertd_outbox_depth") == 0
    depth[0] = 17
    assert sample(m, "alertd_outbox_depth") == 17
    assert b"alertd_outbox_depth 17.0" in m.render()


def test_outbox_depth_error_does_not_break_the_scrape() -> None:
    def broken() -> int:
        raise RuntimeError("database is locked")

    m = Metrics(outbox_depth=broken)
    text = m.render().decode()
    assert "alertd_outbox_depth NaN" in text


def test_registries_are_private() -> None:
    a, b = Metrics(), Metrics()
    a.poll_ok("aiu", NOW)
    assert sample(b, "alertd_polls_total", source="aiu") is None
    assert REGISTRY.get_sample_value("alertd_polls_total", {"source": "aiu"}) is None


def test_render_is_valid_text_exposition_with_every_metric() -> None:
    m = Metrics(outbox_depth=lambda: 3, sources=["aiu"])
    m.poll_ok("aiu", NOW)
    m.events([event()], NOW)
    m.delivered(event(), 0.3)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert {
        "alertd_polls",
        "alertd_poll_failures",
        "alertd_source_last_success_timestamp_seconds",
        "alertd_events",
        "alertd_deliveries",
        "alertd_outbox_depth",
        "alertd_detection_latency_seconds",
        "alertd_delivery_latency_seconds",
    } <= set(families)
    assert families["alertd_polls"].type == "counter"
    assert families["alertd_outbox_depth"].type == "gauge"
    assert families["alertd_detection_latency_seconds"].type == "histogram"
