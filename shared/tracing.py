"""Traces (OpenTelemetry): one screening's path is one trace.

intake's POST (a server span) → the outbox row, which keeps the request's `traceparent` → the
relay's publish (a producer span, its context in the message's `traceparent` header) → risk's
consume (a consumer span) and the assessment's statements → its outbox row → notify's consume,
the alert (which keeps the context it was opened in) → the page's send and its HTTP call.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard OTLP variables configure the rest:
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, ...). Off, no provider is installed and
nothing is recorded or sent: `traceparent()` answers None without touching a context, and every
span here is skipped. Span attributes name topics, routes and statements, never a value a
person gave: asyncpg's instrumentation records the SQL text, not its parameters.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

_enabled = False
_tracer: trace.Tracer = trace.NoOpTracer()
#: Routes whose requests start no trace (probes and scrapes, many a minute).
UNTRACED_ROUTES = "healthz,readyz,metrics"


def enabled() -> bool:
    return _enabled


def setup(service: str) -> bool:
    """Install the tracer provider and the instrumentations (asyncpg, httpx, aiohttp) when an OTLP
    endpoint is configured; the app is instrumented by `instrument_app`. Returns whether on."""
    global _enabled, _tracer
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    # signed POSTs (shared/webhooks.py); a query may carry a receiver's token: not recorded
    AioHttpClientInstrumentor().instrument(url_filter=lambda url: str(url.with_query(None)))
    _tracer = trace.get_tracer("crisis-triage")
    _enabled = True
    return True


def instrument_app(app: Any) -> None:
    if _enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_ROUTES)


def traceparent() -> str | None:
    """The current span's W3C `traceparent` (to keep with an outbox row), or None."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def trace_id() -> str | None:
    """The current trace's id in hex (for log lines), or None."""
    if not _enabled:
        return None
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Iterator[None]:
    """A span named `name`, child of the `parent` traceparent when given (of the current span
    otherwise); nothing at all while tracing is off."""
    if not _enabled:
        yield
        return
    ctx = propagate.extract({"traceparent": parent}) if parent else None
    with _tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes):
        yield


def from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The `traceparent` header of a Kafka message, if any."""
    for key, value in headers or ():
        if key == "traceparent":
            return value.decode("ascii", "replace")
    return None
