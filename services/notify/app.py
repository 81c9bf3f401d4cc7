"""The notify service: alerts to the clinician on call, acknowledgement, escalation, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.notify import consumer
from services.notify.alerts import api
from services.notify.alerts.service import ack_link_secret, webhook_secret
from services.notify.delivery.channels import EmailChannel, WebhookChannel
from services.notify.delivery.deliverer import Deliverer
from services.notify.delivery.signing import ack_key
from services.notify.metrics import PROBES, Metrics
from services.notify.models import SCHEMA, SEALED, Base, retention
from services.notify.reminders import service as reminders
from services.notify.settings import NotifySettings
from services.notify.watchdog.service import start_watchdog
from shared.auth import seal
from shared.db import asyncpg_dsn, transaction
from shared.http import base_app, health_router
from shared.outbound import GuardedTransport, OutboundPolicy
from shared.runtime import open_runtime


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or NotifySettings()
        async with open_runtime(
            cfg,
            schema=SCHEMA,
            metadata=Base.metadata,
            handlers=consumer.handlers(cfg),
            sealed=SEALED,
            retention=retention(cfg),
            metrics=app.state.metrics,
            probes=PROBES,
        ) as runtime:
            async with transaction(runtime.sessions) as session:
                secret = await webhook_secret(session, configured=cfg.alert_webhook_secret)
                ack_secret = await ack_link_secret(session, configured=cfg.ack_link_secret)
            # During a rotation pages carry both signatures.
            app.state.secrets = [secret] + (
                [cfg.alert_webhook_secret_previous] if cfg.alert_webhook_secret_previous else []
            )
            # Ack links are signed with the first key and verify under either.
            app.state.ack_keys = [
                ack_key(s) for s in (ack_secret, cfg.ack_link_secret_previous) if s
            ]
            app.state.watchdog = start_watchdog(runtime, settings=cfg)
            app.state.paging = metrics = Metrics(app.state.metrics.registry)
            timeout = httpx.Timeout(cfg.delivery_timeout_seconds)
            limits = httpx.Limits(max_connections=cfg.delivery_concurrency)
            guarded_transport = GuardedTransport(
                OutboundPolicy.from_settings(cfg), httpx.AsyncHTTPTransport(limits=limits)
            )
            async with (
                httpx.AsyncClient(timeout=timeout, limits=limits) as client,
                httpx.AsyncClient(timeout=timeout, transport=guarded_transport) as guarded,
            ):
                webhook = WebhookChannel(
                    http=client,
                    guarded=guarded,
                    trusted=[cfg.oncall_webhook_url] if cfg.oncall_webhook_url else [],
                    secrets=app.state.secrets,
                    timeout=cfg.delivery_timeout_seconds,
                )
                _, reminding = reminders.start_sender(runtime, settings=cfg, channel=webhook)
                deliverer = Deliverer(
                    sessions=runtime.sessions,
                    channels={"webhook": webhook, "email": EmailChannel(cfg)},
                    settings=cfg,
                    ack_keys=app.state.ack_keys,
                    listen_dsn=asyncpg_dsn(cfg.database_url),
                    metrics=metrics,
                    phi=runtime.phi,
                )
                app.state.deliverer = deliverer
                task = runtime.spawn(deliverer.run(), name="notify-deliverer")
                app.state.runtime = runtime
                try:
                    yield
                finally:
                    # Stop sending before the HTTP clients close; in-flight pages are recorded.
                    task.cancel()
                    reminding.cancel()
                    await asyncio.gather(task, reminding, return_exceptions=True)

    app = base_app(title="triage notify", lifespan=lifespan)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(api.router)
    return seal(app)
