"""The Prometheus metrics every service exports on `GET /metrics` (docs/operations.md, "Metrics").

One registry per app, made with it (`base_app`), no global state. What the hot path would pay
for is not counted on it: HTTP requests are counted by one small ASGI middleware; the consumer's,
the relay's and the gate's own counters are read at scrape time (`RuntimeCollector`); the
outbox's depth, readiness and each service's gauges of its own (`Probe`, SQL) are asked then too.

Labels are closed sets only: a route *template*, a method, a status, a topic and partition, a
check's name, a level. Never an id, a key, an address or anything about a person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import driver
from shared.logging import CORRELATION, safe_correlation

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: A scrape's database questions are cut after this long (the gauges keep their last value).
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Probe:
    """A gauge a service answers from its database at scrape time.

    `sql` returns rows of the label values (in `labels` order) and then the value."""

    name: str
    doc: str
    sql: str
    labels: Sequence[str] = ()


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "triage_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "triage_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("route", "method"),
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        self.outbox_publish = Histogram(
            "triage_outbox_publish_seconds",
            "From an event's commit in the outbox to the broker's acknowledgement.",
            buckets=_PUBLISH_BUCKETS,
            registry=self.registry,
        )
        self.outbox_rows = Gauge(
            "triage_outbox_rows",
            "Events in the outbox: not yet published, or published in the last second.",
            registry=self.registry,
        )
        self.outbox_oldest = Gauge(
            "triage_outbox_oldest_seconds",
            "Age of the oldest event in the outbox (0 when none waits).",
            registry=self.registry,
        )
        self.outbox_set_aside = Gauge(
            "triage_outbox_set_aside_rows",
            "Events the broker would never take, set aside for an operator (triage dlq).",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "triage_consumer_lag_messages",
            "Messages on this replica's partitions it has not fetched yet (the log's end,"
            " asked of the broker at scrape time, minus the consumer's position).",
            ("topic", "partition"),
            registry=self.registry,
        )
        self.consumer_partitions = Gauge(
            "triage_consumer_partitions",
            "Partitions assigned to this replica's consumer.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "triage_ready",
            "1 when the readiness check passes, by check (0: /readyz answers 503).",
            ("check",),
            registry=self.registry,
        )
        self._probes: list[tuple[Probe, Gauge]] = []
        self._runtime: Runtime | None = None

    def attach(self, runtime: Runtime, probes: Sequence[Probe] = ()) -> None:
        """Export `runtime`'s own counters and answer `probes` at each scrape."""
        self._runtime = runtime
        self.registry.register(RuntimeCollector(runtime))
        for probe in probes:
            gauge = Gauge(probe.name, probe.doc, tuple(probe.labels), registry=self.registry)
            self._probes.append((probe, gauge))

    async def render(self) -> bytes:
        """The exposition, after asking the database and the readiness checks."""
        if self._runtime is not None:
            try:
                await asyncio.wait_for(self._refresh(self._runtime), PROBE_TIMEOUT_SECONDS)
            except Exception as exc:  # the database is away: the gauges keep their last value
                log.warning("metrics not refreshed (%s)", type(exc).__name__)
        return generate_latest(self.registry)

    async def _refresh(self, runtime: Runtime) -> None:
        for check, ok in (await runtime.readiness()).items():
            self.ready.labels(check=check).set(1 if ok else 0)
        if runtime.consumer is not None:
            lag = await runtime.consumer.lag()
            self.consumer_lag.clear()
            for (topic, partition), behind in lag.items():
                self.consumer_lag.labels(topic, str(partition)).set(behind)
            self.consumer_partitions.set(len(lag))
        table = f"{runtime.outbox.schema}.{runtime.outbox.name}"
        async with runtime.audit_sessions() as session:
            conn = await driver(session)
            row = await conn.fetchrow(
                "SELECT count(*) AS n,"
                " coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS age"
                f" FROM {table}"
            )
            self.outbox_rows.set(row["n"])
            self.outbox_oldest.set(float(row["age"]))
            aside = await conn.fetchval(f"SELECT count(*) FROM {table}_set_aside")
            self.outbox_set_aside.set(aside)
            for probe, gauge in self._probes:
                rows = await conn.fetch(probe.sql)
                if probe.labels:
                    gauge.clear()  # a label set that is gone reads as absent, not stale
                for values in rows:
                    *labels, value = values
                    (gauge.labels(*labels) if probe.labels else gauge).set(float(value or 0))


class RuntimeCollector(Collector):
    """The consumer's, the relay's and the gate's own counters, read when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def collect(self) -> Iterator[Any]:
        rt = self._rt
        published = CounterMetricFamily(
            "triage_outbox_published", "Events the relay of this replica published."
        )
        published.add_metric([], rt.relay.published)
        yield published
        leading = GaugeMetricFamily(
            "triage_outbox_relay_leading", "1 on the replica whose relay publishes."
        )
        leading.add_metric([], 1 if rt.relay.leading else 0)
        yield leading
        refusals = CounterMetricFamily(
            "triage_auth_refusals", "Requests refused a credential, by why.", labels=("reason",)
        )
        for reason in ("unauthenticated", "forbidden", "unavailable"):
            refusals.add_metric([reason], rt.gate.refusals[reason])
        yield refusals
        consumer = rt.consumer
        if consumer is None:
            return
        messages = CounterMetricFamily(
            "triage_consumer_messages",
            "Messages the consumer took, by outcome: applied, duplicate (dropped by event id)"
            " or dead_lettered.",
            labels=("outcome",),
        )
        for outcome, n in (
            ("applied", consumer.stats.processed),
            ("duplicate", consumer.stats.duplicates),
            ("dead_lettered", consumer.stats.dead_lettered),
        ):
            messages.add_metric([outcome], n)
        yield messages
        stalls = CounterMetricFamily(
            "triage_consumer_stalls", "Times the consumer was found stuck and made anew."
        )
        stalls.add_metric([], consumer.stats.stalls)
        yield stalls


class HttpMetrics:
    """Counts each request by its route's template (`/v1/screenings/{screening_id}`, never the
    path itself) and times it. Unmatched paths are counted under `unmatched`."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self._count = metrics.http_requests
        self._time = metrics.http_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # The request's correlation id on every line logged while it is handled (None without
        # one: requests of one keep-alive connection run in the same task, one after the other).
        correlation = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                correlation = safe_correlation(value.decode("latin-1"))
                break
        CORRELATION.set(correlation)
        status = 500  # what the server answers when the app raises

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self._count.labels(template, method, str(status)).inc()
            self._time.labels(template, method).observe(time.perf_counter() - started)
