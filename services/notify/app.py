"""The notify service: alerts to the clinician on call, acknowledgement, escalation, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.notify import consumer
from services.notify.alerts import api as alerts_api
from services.notify.delivery.channels import EmailChannel, WebhookChannel
from services.notify.delivery.keys import ack_link_secret, webhook_secret
from services.notify.delivery.signing import ack_key
from services.notify.metrics import PROBES, Metrics
from services.notify.models import SCHEMA, SEALED, Base, retention
from services.notify.oncall import api as oncall_api
from services.notify.phones import api as phones_api
from services.notify.phones.channels import SmsChannel, VoiceChannel
from services.notify.settings import NotifySettings
from services.notify.worker import start_workers
from shared.auth import require_every_route_guarded
from shared.db import transaction
from shared.http import base_app, health_router
from shared.outbound import OutboundPolicy
from shared.runtime import open_runtime
from shared.webhooks import webhook_session


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or NotifySettings()
        async with open_runtime(
            cfg,
            schema=SCHEMA,
            metadata=Base.metadata,
            handlers=consumer.handlers(cfg),
            gathered=consumer.GATHERED_TOPICS,
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
            app.state.paging = Metrics(app.state.metrics.registry)
            timeout = httpx.Timeout(cfg.delivery_timeout_seconds)
            limits = httpx.Limits(max_connections=cfg.delivery_concurrency)
            guard = OutboundPolicy.from_settings(cfg)
            async with (
                httpx.AsyncClient(timeout=timeout, limits=limits) as client,
                webhook_session(
                    limit=cfg.delivery_concurrency, proxy_for=cfg.oncall_webhook_url
                ) as pages,
                webhook_session(limit=cfg.delivery_concurrency, guard=guard) as guarded,
            ):
                webhook = WebhookChannel(
                    http=pages,
                    guarded=guarded,
                    trusted=[cfg.oncall_webhook_url] if cfg.oncall_webhook_url else [],
                    secrets=app.state.secrets,
                    timeout=cfg.delivery_timeout_seconds,
                )
                workers = start_workers(
                    runtime,
                    settings=cfg,
                    webhook=webhook,
                    channels={
                        "webhook": webhook,
                        "email": EmailChannel(cfg),
                        "sms": SmsChannel(http=client, settings=cfg, sessions=runtime.sessions),
                        "voice": VoiceChannel(http=client, settings=cfg, sessions=runtime.sessions),
                    },
                    ack_keys=app.state.ack_keys,
                    metrics=app.state.paging,
                )
                app.state.workers = workers
                app.state.deliverer, app.state.watchdog = workers.deliverer, workers.watchdog
                app.state.runtime = runtime
                try:
                    yield
                finally:
                    # Stop sending before the HTTP clients close; in-flight pages are recorded.
                    await workers.stop()

    app = base_app(title="triage notify", lifespan=lifespan)
    app.include_router(health_router(lambda: app.state.runtime.readiness()))
    app.include_router(alerts_api.router)
    app.include_router(oncall_api.router)
    app.include_router(phones_api.router)
    return require_every_route_guarded(app)
