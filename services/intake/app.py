"""The intake service: the HTTP API for hotline staff and EHRs, and the case view."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from services.intake import consumer
from services.intake.access import api as access_api
from services.intake.audit import api as audit_api
from services.intake.audit.checkpoints import run_checkpoints, signing_key
from services.intake.fhir import api as fhir_api
from services.intake.fhir import resthooks
from services.intake.models import SCHEMA, Base
from services.intake.safety_plans import api as safety_plans_api
from services.intake.safety_plans import overdue
from services.intake.screenings import api as screenings_api
from services.intake.settings import IntakeSettings
from shared.auth import seal
from shared.auth.credentials import parse_bootstrap
from shared.db import SessionFactory, asyncpg_dsn
from shared.http import base_app, health_router
from shared.phi import KeyRing
from shared.runtime import open_runtime

log = logging.getLogger(__name__)

_ENCRYPTED_ROWS = """
    SELECT EXISTS (SELECT 1 FROM intake.screenings
                    WHERE contact LIKE 'phi1:%' OR notes LIKE 'phi1:%')
"""


async def require_phi_keys(sessions: SessionFactory, phi: KeyRing | None) -> None:
    """Refuse to start without PHI_KEYS when encrypted rows exist; warn when there are none."""
    if phi is not None:
        return
    async with sessions() as session:
        encrypted = await session.scalar(text(_ENCRYPTED_ROWS))
    if encrypted:
        raise RuntimeError(
            "intake.screenings holds encrypted PHI and PHI_KEYS is not set: give intake its "
            "key ring (PHI_KEYS=kid:base64key,...; make run keeps it in .local/run/secrets)"
        )
    log.warning("PHI_KEYS is not set: contact and notes are stored unencrypted")


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    cfg = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        phi = KeyRing.parse(cfg.phi_keys)
        app.state.phi = phi

        async def prepare(sessions: SessionFactory) -> None:
            await require_phi_keys(sessions, phi)
            await access_api.ensure_bootstrap(sessions, parse_bootstrap(cfg.api_keys_bootstrap))

        async with open_runtime(
            cfg,
            schema=SCHEMA,
            metadata=Base.metadata,
            handlers=consumer.handlers(cfg),
            prepare=prepare,
        ) as runtime:
            app.state.runtime = runtime
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
            yield

    app = base_app(title="triage intake", lifespan=lifespan, max_body_bytes=cfg.max_body_bytes)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(screenings_api.router)
    app.include_router(safety_plans_api.router)
    app.include_router(fhir_api.router)
    app.include_router(access_api.router)
    app.include_router(audit_api.router)
    app.include_router(audit_api.fhir_router)
    return seal(app)
