"""The console app: server-rendered pages (Jinja2), progressively enhanced with htmx (vendored
in `static/`, no build step), mobile first, light and dark by the device's setting."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import auth, clinician, follow_ups, hotline, supervision
from services.console.i18n import LANGUAGES, Localize, _, translations
from services.console.pages import PAGES
from services.console.settings import ConsoleSettings
from services.console.web import Console, SecurityHeaders, render, require_every_page_listed
from shared import tracing
from shared.http import BodySizeLimit, health_router
from shared.metrics import HttpMetrics, ServiceMetrics

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or ConsoleSettings()
        if not cfg.session_keys:
            log.warning(
                "CONSOLE_SESSION_KEYS is not set: a key was made for this process, "
                "and a restart signs everyone out"
            )
        for language in LANGUAGES:  # compiled from the .po now: a broken catalogue stops the start
            translations(language)
        console = Console(cfg)
        app.state.console = console
        try:
            yield
        finally:
            await console.upstream.aclose()

    app = FastAPI(
        title="triage console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.metrics = metrics = ServiceMetrics()
    app.add_middleware(BodySizeLimit, max_bytes=64 * 1024)
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Localize)
    tracing.instrument_app(app)

    async def readiness() -> dict[str, bool]:
        return await app.state.console.upstream.healthy()

    app.include_router(health_router(readiness))
    app.include_router(auth.router)
    app.include_router(clinician.router)
    app.include_router(hotline.router)
    app.include_router(supervision.router)
    app.include_router(follow_ups.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Names the fields only: FastAPI's own answer would echo what was typed (PHI).
        fields = sorted({str(e.get("loc", ("", ""))[-1]) for e in exc.errors()})
        return render(
            request,
            "error.html",
            422,
            title=_("Check the form"),
            message=_("These fields are missing or not valid: %(fields)s")
            % {"fields": ", ".join(fields)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = _("Not found") if exc.status_code == 404 else _("Problem")
        message = _("There is no such page.") if exc.status_code == 404 else str(exc.detail)
        return render(request, "error.html", exc.status_code, title=title, message=message)

    return require_every_page_listed(app, PAGES)
