"""The risk service: consumes submitted screenings, applies the rule set, publishes assessments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.risk import api, consumer
from services.risk.models import SCHEMA, Base
from services.risk.rules import load_ruleset
from services.risk.service import record_ruleset
from services.risk.settings import RiskSettings
from shared.db import transaction
from shared.http import base_app, health_router
from shared.runtime import open_runtime


def create_app(settings: RiskSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or RiskSettings()
        ruleset = load_ruleset(cfg.ruleset_path)
        app.state.ruleset = ruleset
        async with open_runtime(
            cfg, schema=SCHEMA, metadata=Base.metadata, handlers=consumer.handlers(ruleset=ruleset)
        ) as runtime:
            async with transaction(runtime.sessions) as session:
                await record_ruleset(session, ruleset=ruleset)
            app.state.runtime = runtime
            yield

    app = base_app(title="triage risk", lifespan=lifespan)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(api.router)
    return app
