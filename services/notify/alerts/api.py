"""Notify's alert routes: list, read, acknowledge (by API or by the page's signed link),
resolve."""

from __future__ import annotations

import html
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from services.notify.alerts import queries as alerts
from services.notify.alerts.models import Alert
from services.notify.alerts.schemas import (
    AlertListItem,
    AlertOut,
    AttemptOut,
    PageOut,
)
from services.notify.alerts.service import acknowledge, resolve
from services.notify.delivery.models import Delivery, DeliveryAttempt
from services.notify.delivery.signing import ack_link_valid
from services.notify.permissions import ROUTES
from services.notify.times import instant, problems
from shared.auth import guarded
from shared.db import transaction
from shared.errors import Forbidden, NotFound
from shared.events import AlertStatus
from shared.http import Session, Sessions
from shared.pagination import Limit

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))
#: Latest `expires` of an ack link (year 10000): a larger one cannot be a link we made.
MAX_EXPIRES = 253_402_300_799


@router.get(
    "/alerts",
    response_model=list[AlertListItem],
    responses=problems("an unknown status, `since` without an offset or out of range, a bad limit"),
)
async def list_alerts(
    session: Session,
    open_: Annotated[
        bool | None,
        Query(alias="open", description="true: neither acknowledged nor resolved; false: either"),
    ] = None,
    status: Annotated[list[AlertStatus] | None, Query(max_length=6)] = None,
    escalated: Annotated[
        bool | None, Query(description="true: escalated at least once (a level or a round)")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="created or changed at or after (with offset)")
    ] = None,
    limit: Limit = 100,
) -> Response:
    """Alerts most urgent first (risk level, then escalation level, then oldest), each with
    who was paged for it (`paged`: never an address).

    Polled by the console every few seconds: two indexed statements whatever the table holds.
    Not paged with a cursor (the order is by urgency, not by time): `limit` bounds it."""
    wanted = alerts.AlertFilter(
        open=open_,
        statuses=tuple(dict.fromkeys(status or ())),
        escalated=escalated,
        since=instant(since, field="since"),
        limit=limit,
    )
    found = await alerts.list_alerts(session, wanted)
    return Response(alerts.as_json(found), media_type="application/json")


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
    pages = await session.scalars(
        select(Delivery)
        .where(Delivery.alert_id == alert_id)
        .order_by(Delivery.created_at, Delivery.escalation_level, Delivery.id)
    )
    return {
        **AlertOut.model_validate(alert).model_dump(mode="json"),
        "attempts": [AttemptOut.model_validate(a).model_dump(mode="json") for a in attempts],
        "pages": [PageOut.model_validate(p).model_dump(mode="json") for p in pages],
    }


def _check_link(request: Request, alert_id: uuid.UUID, expires: int, sig: str) -> None:
    """403 for a link not signed with the ack key (or expired). It counts as a bad credential
    from the caller's address: past AUTH_FAILURE_LIMIT the answer is 429, as for bad keys, so
    links cannot be guessed (nor the trail filled) from one address; good links still work."""
    if ack_link_valid(request.app.state.ack_keys, alert_id, expires, sig):
        return
    limits = request.app.state.runtime.gate.limits
    limits.failed_auth(request.client.host if request.client else "-")
    raise Forbidden("the acknowledgement link is invalid or has expired")


@router.post("/alerts/{alert_id}/ack")
async def ack_alert(
    alert_id: uuid.UUID,
    request: Request,
    sessions: Sessions,
    expires: Annotated[int | None, Query(ge=0, le=MAX_EXPIRES)] = None,
    sig: Annotated[str | None, Query(max_length=128, pattern="^[0-9a-f]+$")] = None,
) -> AlertOut:
    """Acknowledge: stops escalation and every further page, including scheduled retries.

    With the page's signed link (`expires` and `sig`) no credential is needed; otherwise the
    acknowledgement is recorded under the credential's name."""
    if sig is not None:
        _check_link(request, alert_id, expires or 0, sig)
        by = "ack_link"
    else:
        by = request.state.principal.name
    async with transaction(sessions) as session:
        alert, acknowledged_now = await acknowledge(session, alert_id=alert_id, by=by)
    if acknowledged_now and alert.acknowledged_at is not None:
        since = alert.assessed_at or alert.created_at
        request.app.state.paging.assessment_to_ack.labels(risk_level=alert.risk_level).observe(
            (alert.acknowledged_at - since).total_seconds()
        )
    return AlertOut.model_validate(alert)


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(alert_id: uuid.UUID, sessions: Sessions) -> AlertOut:
    """Close the alert: every page not yet sent is cancelled."""
    async with transaction(sessions) as session:
        alert = await resolve(session, alert_id=alert_id)
    return AlertOut.model_validate(alert)


@router.get("/alerts/{alert_id}/ack", response_class=HTMLResponse)
async def ack_page(
    alert_id: uuid.UUID,
    request: Request,
    session: Session,
    expires: Annotated[int, Query(ge=0, le=MAX_EXPIRES)],
    sig: Annotated[str, Query(max_length=128, pattern="^[0-9a-f]+$")],
) -> HTMLResponse:
    """What a clinician's phone opens from the page: one button, so a link preview cannot ack."""
    _check_link(request, alert_id, expires, sig)
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    action = html.escape(f"/v1/alerts/{alert_id}/ack?expires={expires}&sig={sig}")
    level = html.escape(alert.risk_level)
    done = alert.status == "acknowledged"
    console = request.app.state.runtime.settings.console_public_url.rstrip("/")
    case = html.escape(f"{console}/alerts/{alert_id}")
    body = (
        "<!doctype html><html lang=en><meta name=viewport content='width=device-width'>"
        f"<title>Alert {level}</title><h1>{level.upper()} risk alert</h1>"
        + (
            "<p>Acknowledged.</p>"
            if done
            else f"<form method=post action='{action}'>"
            "<button style='font-size:2em'>Acknowledge</button></form>"
        )
        # Who the person is and how to call back: in the console, after sign-in (no PHI here).
        + f"<p><a href='{case}'>Open the case in the console</a></p>"
    )
    return HTMLResponse(body)
