"""Notify's routes: read an alert, acknowledge it (API or signed link)."""

from __future__ import annotations

import html
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import Alert, Delivery, DeliveryAttempt
from services.notify.schemas import AlertOut, AttemptOut
from services.notify.service import acknowledge
from services.notify.signing import ack_link_valid
from shared.db import SessionFactory, transaction
from shared.errors import Forbidden, NotFound

router = APIRouter(prefix="/v1")


def _sessions(request: Request) -> SessionFactory:
    return request.app.state.runtime.sessions


async def _session(request: Request):
    async with _sessions(request)() as session:
        yield session


Sessions = Annotated[SessionFactory, Depends(_sessions)]
Session = Annotated[AsyncSession, Depends(_session)]


@router.get("/alerts/{alert_id}")
async def get_alert(alert_id: uuid.UUID, session: Session) -> dict[str, Any]:
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    attempts = await session.scalars(
        select(DeliveryAttempt)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.alert_id == alert_id)
        .order_by(DeliveryAttempt.id)
    )
    return {
        **AlertOut.model_validate(alert).model_dump(mode="json"),
        "attempts": [AttemptOut.model_validate(a).model_dump(mode="json") for a in attempts],
    }


@router.post("/alerts/{alert_id}/ack")
async def ack_alert(
    alert_id: uuid.UUID,
    request: Request,
    sessions: Sessions,
    expires: Annotated[int | None, Query()] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> AlertOut:
    """Acknowledge: stops escalation and every further page, including scheduled retries."""
    by = "api"
    if sig is not None or expires is not None:
        if not ack_link_valid(request.app.state.secrets, alert_id, expires or 0, sig or ""):
            raise Forbidden("the acknowledgement link is invalid or has expired")
        by = "ack_link"
    async with transaction(sessions) as session:
        alert = await acknowledge(session, alert_id=alert_id, by=by)
    return AlertOut.model_validate(alert)


@router.get("/alerts/{alert_id}/ack", response_class=HTMLResponse)
async def ack_page(
    alert_id: uuid.UUID,
    request: Request,
    session: Session,
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query(max_length=128)],
) -> HTMLResponse:
    """What a clinician's phone opens from the page: one button, so a link preview cannot ack."""
    if not ack_link_valid(request.app.state.secrets, alert_id, expires, sig):
        raise Forbidden("the acknowledgement link is invalid or has expired")
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    action = html.escape(f"/v1/alerts/{alert_id}/ack?expires={expires}&sig={sig}")
    level = html.escape(alert.risk_level)
    done = alert.status == "acknowledged"
    body = (
        "<!doctype html><meta name=viewport content='width=device-width'>"
        f"<title>Alert {level}</title><h1>{level.upper()} risk alert</h1>"
        + ("<p>Acknowledged.</p>" if done else
           f"<form method=post action='{action}'><button style='font-size:2em'>Acknowledge</button></form>")
    )
    return HTMLResponse(body)
