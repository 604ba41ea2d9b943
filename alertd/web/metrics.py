"""Prometheus metrics: what the daemon and the dispatcher did, in counters and histograms.

A :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`
(never the library's global default one), so two instances — two tests, say —
never see each other's numbers, and nothing in the process is global.

It is the daemon's :class:`~alertd.run.daemon.Hooks` (``poll_ok``, ``poll_failed``,
``events``) and the dispatcher's hooks (``delivered``, ``failed``, ``dead``,
``superseded``). The outbox depth is read from the store only when scraped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from alertd.core.model import AlertEvent
from alertd.logs import get_logger

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DELIVERY_BUCKETS",
    "DELIVERY_OUTCOMES",
    "DETECTION_BUCKETS",
    "Metrics",
]

log = get_logger(__name__)

#: Seconds from the upstream's response arriving to the event being committed.
DETECTION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds from an event being observed to a channel accepting it (retries make the tail long).
DELIVERY_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
DELIVERY_OUTCOMES: tuple[str, ...] = ("delivered", "retry", "dead", "superseded")
#: How many pushed event ids are remembered for the push-to-delivery latency.
PUSHED_REMEMBERED = 10_000


class Metrics:
    """alertd's metrics, in a registry of their own.

    ``outbox_depth`` is called at scrape time (from the event loop's thread, like
    every other store call); ``sources`` pre-creates the per-source series at 0
    so a source that never polled still shows up.
    """

    def __init__(
        self,
        *,
        outbox_depth: Callable[[], int] | None = None,
        sources: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._outbox_depth = outbox_depth
        r = self.registry
        self.polls = Counter("alertd_polls", "Successful polls, by source.", ["source"], registry=r)
        self.poll_failures = Counter(
            "alertd_poll_failures", "Failed polls (fetch or parse), by source.", ["source"], registry=r
        )
        self.last_success = Gauge(
            "alertd_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll.",
            ["source"],
            registry=r,
        )
        self.events_total = Counter(
            "alertd_events", "Events committed, by alert kind and status.", ["kind", "status"], registry=r
        )
        self.deliveries = Counter(
            "alertd_deliveries",
            "Delivery attempts, by outcome (delivered, retry, dead, superseded).",
            ["outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "alertd_outbox_depth", "Outbox rows waiting to be delivered (pending or sending).", registry=r
        )
        self.outbox_depth.set_function(self._read_outbox_depth)
        self.detection_latency = Histogram(
            "alertd_detection_latency_seconds",
            "Seconds from an upstream response arriving to its events being committed.",
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "alertd_delivery_latency_seconds",
            "Seconds from an event being observed to a channel accepting it.",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.pushes = Counter(
            "alertd_pushes",
            "Pushes (webhooks) received, by source and outcome (accepted, rejected, too_large).",
            ["source", "outcome"],
            registry=r,
        )
        self.push_delivery_latency = Histogram(
            "alertd_push_delivery_latency_seconds",
            "Seconds from a push arriving to a channel accepting the start it announced.",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.push_slowed = Gauge(
            "alertd_push_polling_slowed",
            "1 while a source's pushes arrive and its polling runs at push_interval, else 0.",
            ["source"],
            registry=r,
        )
        # event id → time.time() of the push that announced it; bounded, oldest dropped first
        self._pushed_at: OrderedDict[str, float] = OrderedDict()
        for name in sources:
            self.polls.labels(source=name)
            self.poll_failures.labels(source=name)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome=outcome)

    def shared_store(self, read: Callable[[], tuple[list[Any], dict[str, int]]], instance: str) -> None:
        """Several instances on one shared store: export who holds which poll lease and how many
        outbox rows each instance has claimed (``read`` returns ``(store.leases(), store.claims())``)."""
        self.registry.register(_SharedStoreCollector(read, instance))

    def _read_outbox_depth(self) -> float:
        if self._outbox_depth is None:
            return 0.0
        try:
            return float(self._outbox_depth())
        except Exception as exc:  # a scrape must not fail because the store is briefly unhappy
            log.warning("outbox depth unavailable for /metrics", error=str(exc))
            return float("nan")

    # -- daemon hooks ------------------------------------------------------------------
    def poll_ok(self, source: str, received_wall: float) -> None:
        self.polls.labels(source=source).inc()
        self.last_success.labels(source=source).set(received_wall)

    def poll_failed(self, source: str, error: str) -> None:
        self.poll_failures.labels(source=source).inc()

    def events(self, events: list[AlertEvent], received_wall: float) -> None:
        """Called right after the events' transaction committed: that is when detection ends."""
        latency = max(0.0, self._clock() - received_wall)
        for event in events:
            self.events_total.labels(kind=str(event.kind), status=str(event.status)).inc()
            self.detection_latency.observe(latency)

    # -- push hooks (alertd.web.hooks) ----------------------------------------------------
    def pushed(self, source: str, outcome: str) -> None:
        self.pushes.labels(source=source, outcome=outcome).inc()

    def push_events(self, events: list[AlertEvent], received_wall: float) -> None:
        """Remember which events a push announced, for the push-to-delivery latency."""
        for event in events:
            self._pushed_at[event.id] = received_wall
        while len(self._pushed_at) > PUSHED_REMEMBERED:
            self._pushed_at.popitem(last=False)

    def push_mode(self, source: str, slowed: bool) -> None:
        self.push_slowed.labels(source=source).set(1 if slowed else 0)

    # -- dispatcher hooks --------------------------------------------------------------
    def delivered(self, event: AlertEvent, latency_seconds: float | None = None) -> None:
        """A channel accepted the event; latency defaults to now − ``event.observed_at``."""
        pushed_at = self._pushed_at.get(event.id)
        if pushed_at is not None:
            self.push_delivery_latency.observe(max(0.0, self._clock() - pushed_at))
        if latency_seconds is None:
            latency_seconds = self._clock() - event.observed_at.astimezone(UTC).timestamp()
        self.deliveries.labels(outcome="delivered").inc()
        self.delivery_latency.observe(max(0.0, latency_seconds))

    def failed(self, event: AlertEvent) -> None:
        """An attempt failed and will be retried."""
        self.deliveries.labels(outcome="retry").inc()

    def dead(self, event: AlertEvent) -> None:
        self.deliveries.labels(outcome="dead").inc()

    def superseded(self, event: AlertEvent) -> None:
        self.deliveries.labels(outcome="superseded").inc()

    # -- exposition --------------------------------------------------------------------
    def render(self) -> bytes:
        """The Prometheus text exposition of this registry (content type :data:`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


class _SharedStoreCollector:
    """Reads the shared store's leases and claims at scrape time (see :meth:`Metrics.shared_store`)."""

    def __init__(self, read: Callable[[], tuple[list[Any], dict[str, int]]], instance: str) -> None:
        self._read = read
        self._instance = instance

    def describe(self) -> list[Any]:
        return []  # read at scrape time only: registering must not touch the database

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        this = GaugeMetricFamily(
            "alertd_instance", "1, labelled with this instance's name.", labels=["instance"]
        )
        this.add_metric([self._instance], 1)
        yield this
        try:
            leases, claims = self._read()
        except Exception as exc:  # a scrape must not fail because the database is briefly away
            log.warning("shared store unavailable for /metrics", error=str(exc))
            return
        held = GaugeMetricFamily(
            "alertd_lease_held",
            "1 for each live poll lease, by source and the instance holding it (one per source).",
            labels=["source", "instance"],
        )
        for lease in leases:
            if lease.live:
                held.add_metric([lease.source, lease.holder], 1)
        yield held
        claimed = GaugeMetricFamily(
            "alertd_outbox_claimed", "Outbox rows each instance has claimed right now.", labels=["instance"]
        )
        for name, count in sorted(claims.items()):
            claimed.add_metric([name], count)
        yield claimed
