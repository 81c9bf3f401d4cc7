"""HTTP plumbing shared by the three apps: body-size limit, health and metrics routes, app
factory basics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.auth.guard import PUBLIC, RouteTable, guarded
from shared.db import SessionFactory
from shared.errors import error_body, install_error_handlers
from shared.metrics import HttpMetrics, ServiceMetrics
from shared.serve import STOPPING

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]

#: The health and metrics routes every service has: open to all (each service's table
#: includes them; /metrics carries no id and nothing about a person, see shared/metrics.py).
HEALTH_ROUTES: RouteTable = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}


async def _sessions(request: Request) -> SessionFactory:
    # `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
    # thread hand-off per request (a tenth of intake's CPU per POST, measured by make bench).
    return request.app.state.runtime.sessions


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = request.app.state.runtime
    async with (runtime.reads or runtime.sessions)() as session:
        # The gate writes a PHI read's audit entry on this connection (shared/auth/guard.py).
        request.state.read_session = session
        yield session


#: Route dependencies of every service (its lifespan puts the runtime on `app.state`): the
#: session factory, for routes that open their own transaction, or one read session (no
#: transaction: every statement commits on its own, so a route given one only reads).
Sessions = Annotated[SessionFactory, Depends(_sessions)]
Session = Annotated[AsyncSession, Depends(_session)]


def model_response(
    model: BaseModel,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    exclude: set[str] | None = None,
) -> Response:
    """`model` as a JSON answer, serialised once by pydantic's own (Rust) encoder: the same
    bytes as `JSONResponse(model.model_dump(mode="json"))`, without the dict in between and
    the standard library's encoder (half the CPU for a small body, less still for a large one)."""
    return Response(
        model.model_dump_json(exclude=exclude),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


class BodySizeLimit:
    """Answers 413 to a body over `max_bytes`, declared or streamed, before any handler reads it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        # Read the body here, bounded, so a streamed (chunked) body is refused before any handler
        # sees it; JSON bodies of this API are small, and the app then reads from the buffer.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            error_body("too_large", f"the request body is larger than {self.max_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def health_router(readiness: ReadinessCheck) -> APIRouter:
    """`/healthz`: the process is up. `/readyz`: its database and Kafka are reachable, and it
    has not been asked to stop."""
    router = APIRouter(
        tags=["health"],
        route_class=guarded(HEALTH_ROUTES),
    )

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        # Asked to stop (SIGTERM): not ready at once, whatever else holds (shared/serve.py).
        checks = {"running": not STOPPING.is_set(), **await readiness()}
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body = await request.app.state.metrics.render()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def base_app(*, title: str, lifespan: Callable, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The app with its error handlers, its body limit and its metrics (`app.state.metrics`,
    which the lifespan attaches to the runtime)."""
    app = FastAPI(title=title, lifespan=lifespan)
    app.state.metrics = metrics = ServiceMetrics()
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(HttpMetrics, metrics=metrics)
    tracing.instrument_app(app)
    install_error_handlers(app)
    return app
