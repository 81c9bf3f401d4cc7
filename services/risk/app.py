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
from shared.auth import require_every_route_guarded
from shared.db import SessionFactory, transaction
from shared.http import base_app, health_router
from shared.runtime import open_runtime


def create_app(settings: RiskSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or RiskSettings()
        ruleset = load_ruleset(cfg.ruleset_path)
        app.state.ruleset = ruleset

        async def prepare(sessions: SessionFactory) -> None:
            # Before the consumer starts: every assessment's rules_version must already exist.
            async with transaction(sessions) as session:
                await record_ruleset(session, ruleset=ruleset)

        async with open_runtime(
            cfg,
            schema=SCHEMA,
            metadata=Base.metadata,
            handlers=consumer.handlers(ruleset=ruleset),
            prepare=prepare,
            metrics=app.state.metrics,
        ) as runtime:
            app.state.runtime = runtime
            yield

    app = base_app(title="triage risk", lifespan=lifespan)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(api.router)
    return require_every_route_guarded(app)
