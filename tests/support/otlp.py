"""An OTLP/HTTP collector standing in for the clinic's (Jaeger, Tempo, an OpenTelemetry
Collector): it keeps every span the services export, decoded."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.pagers import serve, shut


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@dataclass
class Collector:
    port: int
    spans: list[Span] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(
                        Span(
                            service=str(resource.get("service.name")),
                            name=s.name,
                            kind=s.kind,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                        )
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    def of_trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, trace_id: str, names: set[str], timeout: float = 15.0) -> list[Span]:
        """The trace's spans once spans of every name in `names` have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.of_trace(trace_id)
            if names <= {s.name for s in spans}:
                return spans
            await asyncio.sleep(0.05)
        return self.of_trace(trace_id)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])
        self._server, self._task = await serve(app, self.port)

    async def stop(self) -> None:
        await shut(self._server, self._task)
