"""The intake service: the HTTP API for hotline staff and EHRs, and the case view."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import consumer
from services.intake.access import api as access_api
from services.intake.access import service as access
from services.intake.audit import api as audit_api
from services.intake.audit.checkpoints import run_checkpoints, signing_key
from services.intake.cases import api as cases_api
from services.intake.crisis_resources import api as crisis_resources_api
from services.intake.db import SCHEMA, SEALED, Base, retention
from services.intake.fhir import api as fhir_api
from services.intake.fhir import resthooks
from services.intake.follow_ups import api as follow_ups_api
from services.intake.follow_ups import inbound as follow_ups_inbound
from services.intake.follow_ups import overdue as follow_up_overdue
from services.intake.follow_ups import sender as caring_sender
from services.intake.follow_ups.schedule import parse_schedule
from services.intake.metrics import PROBES
from services.intake.safety_plans import api as safety_plans_api
from services.intake.safety_plans import overdue
from services.intake.screenings import api as screenings_api
from services.intake.settings import IntakeSettings
from shared.auth import require_every_route_guarded
from shared.auth.credentials import parse_bootstrap
from shared.db import SessionFactory, asyncpg_dsn
from shared.http import base_app, health_router
from shared.runtime import open_runtime

log = logging.getLogger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    cfg = settings or IntakeSettings()
    parse_schedule(cfg.caring_schedule)  # a bad CARING_SCHEDULE stops intake at start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signer = access.access_signer(cfg)
        app.state.access_signer = signer

        async def prepare(sessions: SessionFactory) -> None:
            await access.ensure_bootstrap(sessions, parse_bootstrap(cfg.api_keys_bootstrap))
            await access.announce_every_key(sessions, signer)

        async with open_runtime(
            cfg,
            schema=SCHEMA,
            metadata=Base.metadata,
            handlers=consumer.handlers(cfg),
            gathered=consumer.GATHERED_TOPICS,
            prepare=prepare,
            sealed=SEALED,
            retention=retention(cfg),
            metrics=app.state.metrics,
            probes=PROBES,
            access_verifier=signer.verifier(),
        ) as runtime:
            app.state.runtime = runtime
            app.state.phi = runtime.phi
            runtime.gate.directory.authority = access.key_authority(
                runtime.reads or runtime.sessions
            )
            if cfg.audit_signing_key:
                runtime.spawn(
                    run_checkpoints(
                        asyncpg_dsn(cfg.database_url),
                        signing_key(cfg.audit_signing_key),
                        every=cfg.audit_checkpoint_seconds,
                        retention_days=cfg.audit_retention_days,
                    ),
                    name="audit-checkpoints",
                )
            else:
                log.warning("AUDIT_SIGNING_KEY is not set: the audit trail gets no checkpoints")
            app.state.overdue_watcher = overdue.start_watcher(runtime)
            resthooks.start_pusher(runtime, cfg)
            app.state.follow_up_watcher = follow_up_overdue.start_watcher(runtime)
            app.state.caring_sender = caring_sender.start_sender(runtime, cfg)
            yield

    app = base_app(title="triage intake", lifespan=lifespan, max_body_bytes=cfg.max_body_bytes)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(screenings_api.router)
    app.include_router(cases_api.router)
    app.include_router(safety_plans_api.router)
    app.include_router(fhir_api.router)
    app.include_router(follow_ups_api.router)
    app.include_router(follow_ups_inbound.router)
    app.include_router(access_api.router)
    app.include_router(access_api.me_router)
    app.include_router(audit_api.router)
    app.include_router(audit_api.fhir_router)
    app.include_router(crisis_resources_api.router)
    return require_every_route_guarded(app)
