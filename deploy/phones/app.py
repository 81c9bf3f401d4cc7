"""The local provider's app: Twilio's REST API, the phones' pages and the test API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from deploy.phones import local, pages, rest
from deploy.phones.errors import TwilioError
from deploy.phones.messaging import Messaging
from deploy.phones.runtime import Runtime
from deploy.phones.settings import PhonesSettings
from deploy.phones.voice import Voice
from deploy.phones.webhooks import Webhooks


def create_app(
    settings: PhonesSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`transport` carries the webhooks (tests: an in-process receiver); the network when
    unset."""
    settings = settings or PhonesSettings()
    client = httpx.AsyncClient(
        transport=transport, timeout=settings.webhook_timeout_seconds, follow_redirects=True
    )
    runtime = Runtime(settings, Webhooks(settings.auth_token.get_secret_value(), client))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.close()
        await client.aclose()

    app = FastAPI(
        title="Local phones (Twilio stand-in)",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    app.state.messaging = Messaging(runtime)
    app.state.voice = Voice(runtime)

    @app.exception_handler(TwilioError)
    async def twilio_error(request: Request, exc: TwilioError) -> Response:
        return exc.response()

    @app.get("/readyz")
    @app.get("/healthz")
    async def ready() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.include_router(rest.router)
    app.include_router(local.router)
    app.include_router(pages.router)
    return app
