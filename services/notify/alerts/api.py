"""Notify's routes: alerts (list, read, acknowledge by API or signed link, resolve), the on-call
configuration (clinicians, contact methods, schedules, overrides, policies), who is on call
and who covers a window."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.notify.alerts import queries as alerts
from services.notify.alerts.schemas import (
    OUT_OF_RANGE,
    AlertListItem,
    AlertOut,
    AttemptOut,
    ClinicianIn,
    ClinicianOut,
    ContactMethodIn,
    ContactMethodOut,
    CoverageOut,
    OnCallOut,
    OverrideIn,
    OverrideOut,
    PolicyIn,
    PolicyOut,
    ScheduleIn,
    ScheduleOut,
    in_range,
)
from services.notify.alerts.service import acknowledge, resolve
from services.notify.delivery.signing import ack_link_valid
from services.notify.models import Alert, Delivery, DeliveryAttempt
from services.notify.oncall import service as oncall
from services.notify.permissions import ROUTES
from shared.auth import guarded
from shared.db import transaction
from shared.errors import Conflict, ErrorBody, Forbidden, NotFound, Unprocessable
from shared.events import AlertStatus, utcnow
from shared.http import Session, Sessions
from shared.outbound import require_safe_url
from shared.pagination import Limit, Paging

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))
#: Latest `expires` of an ack link (year 10000): a larger one cannot be a link we made.
MAX_EXPIRES = 253_402_300_799


#: The longest coverage window: a month's roster, not a year's worth of steps per request.
MAX_WINDOW = timedelta(days=31)


def _invalid(field: str, problem: str) -> Unprocessable:
    return Unprocessable(f"`{field}`: {problem}", problems=[{"field": field, "problem": problem}])


def _instant(value: datetime | None, *, field: str) -> datetime | None:
    """`value` as a UTC instant; 422 naming `field` when it has no offset or is out of range."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise _invalid(field, "add a time zone offset such as Z or -05:00")
    if not in_range(value):
        raise _invalid(field, OUT_OF_RANGE)
    return value.astimezone(UTC)


def _problems(description: str) -> dict[int | str, dict[str, Any]]:
    return {422: {"model": ErrorBody, "description": description}}


@router.get(
    "/alerts",
    response_model=list[AlertListItem],
    responses=_problems(
        "an unknown status, `since` without an offset or out of range, a bad limit"
    ),
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
        since=_instant(since, field="since"),
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
    return {
        **AlertOut.model_validate(alert).model_dump(mode="json"),
        "attempts": [AttemptOut.model_validate(a).model_dump(mode="json") for a in attempts],
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


# Clinicians and their contact methods.


async def _safe_address(request: Request, method: ContactMethodIn, *, field: str) -> None:
    """A webhook address given through the API must pass the SSRF policy (422 otherwise)."""
    if method.kind == "webhook":
        await require_safe_url(request.app.state.runtime.settings, method.address, field=field)


@router.post("/clinicians", status_code=201)
async def create_clinician(data: ClinicianIn, request: Request, sessions: Sessions) -> ClinicianOut:
    for i, method in enumerate(data.contact_methods):
        await _safe_address(request, method, field=f"contact_methods.{i}.address")
    async with transaction(sessions) as session:
        return await oncall.create_clinician(session, data=data)


@router.get("/clinicians")
async def list_clinicians(session: Session, page: Paging) -> list[ClinicianOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(*await oncall.list_clinicians(session, limit=page.limit, cursor=page.cursor))


@router.get("/clinicians/{clinician_id}")
async def get_clinician(clinician_id: uuid.UUID, session: Session) -> ClinicianOut:
    return await oncall.get_clinician(session, clinician_id=clinician_id)


@router.post("/clinicians/{clinician_id}/contact-methods", status_code=201)
async def add_contact_method(
    clinician_id: uuid.UUID, data: ContactMethodIn, request: Request, sessions: Sessions
) -> ContactMethodOut:
    await _safe_address(request, data, field="address")
    async with transaction(sessions) as session:
        return await oncall.add_contact_method(session, clinician_id=clinician_id, data=data)


@router.delete("/clinicians/{clinician_id}/contact-methods/{method_id}", status_code=204)
async def remove_contact_method(
    clinician_id: uuid.UUID, method_id: uuid.UUID, sessions: Sessions
) -> Response:
    async with transaction(sessions) as session:
        await oncall.remove_contact_method(session, clinician_id=clinician_id, method_id=method_id)
    return Response(status_code=204)


# Schedules: rotations and overrides; who is on call.


@router.post("/schedules", status_code=201)
async def create_schedule(data: ScheduleIn, sessions: Sessions) -> ScheduleOut:
    async with transaction(sessions) as session:
        return await oncall.create_schedule(session, data=data)


@router.get("/schedules")
async def list_schedules(session: Session, page: Paging) -> list[ScheduleOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(*await oncall.list_schedules(session, limit=page.limit, cursor=page.cursor))


@router.get("/schedules/{schedule_id}")
async def get_schedule(schedule_id: uuid.UUID, session: Session) -> ScheduleOut:
    return await oncall.get_schedule(session, schedule_id=schedule_id)


@router.put("/schedules/{schedule_id}")
async def replace_schedule(
    schedule_id: uuid.UUID, data: ScheduleIn, sessions: Sessions
) -> ScheduleOut:
    async with transaction(sessions) as session:
        return await oncall.replace_schedule(session, schedule_id=schedule_id, data=data)


@router.post("/schedules/{schedule_id}/overrides", status_code=201)
async def add_override(schedule_id: uuid.UUID, data: OverrideIn, sessions: Sessions) -> OverrideOut:
    async with transaction(sessions) as session:
        return await oncall.add_override(session, schedule_id=schedule_id, data=data)


@router.delete("/schedules/{schedule_id}/overrides/{override_id}", status_code=204)
async def remove_override(
    schedule_id: uuid.UUID, override_id: uuid.UUID, sessions: Sessions
) -> Response:
    async with transaction(sessions) as session:
        await oncall.remove_override(session, schedule_id=schedule_id, override_id=override_id)
    return Response(status_code=204)


@router.get("/oncall", responses={404: {"description": "no schedule schedule_id"}})
async def who_is_on_call(
    session: Session,
    at: Annotated[datetime | None, Query()] = None,
    schedule_id: Annotated[uuid.UUID | None, Query()] = None,
) -> OnCallOut:
    """Who covers each schedule at `at` (default now); `at` carries its offset, e.g. Z."""
    return await oncall.on_call_at(
        session, at=_instant(at, field="at") or utcnow(), schedule_id=schedule_id
    )


@router.get(
    "/oncall/coverage",
    responses={
        404: {"model": ErrorBody, "description": "no schedule schedule_id"},
        **_problems(
            "`from` or `to` without an offset or out of range, `to` not after `from`, "
            "or a window longer than 31 days"
        ),
    },
)
async def oncall_coverage(
    session: Session,
    schedule_id: Annotated[uuid.UUID | None, Query()] = None,
    start: Annotated[
        datetime | None, Query(alias="from", description="with offset; default now")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="with offset; default `from` + 7 days")
    ] = None,
) -> CoverageOut:
    """Who covers each schedule over [from, to): segments that tile the window exactly, a gap
    (nobody covers) being a segment with no clinician. At most 31 days: a roster's view."""
    begins = _instant(start, field="from") or utcnow()
    ends = _instant(end, field="to") or begins + timedelta(days=7)
    if ends <= begins:
        raise _invalid("to", "must be after `from`")
    if ends - begins > MAX_WINDOW:
        raise _invalid("to", "at most 31 days after `from`")
    return await oncall.coverage_between(session, start=begins, end=ends, schedule_id=schedule_id)


# Escalation policies.


_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"description": "a risk level is already covered by another policy"}
}


@router.post("/policies", status_code=201, responses=_TAKEN)
async def create_policy(data: PolicyIn, sessions: Sessions) -> PolicyOut:
    try:
        async with transaction(sessions) as session:
            return await oncall.create_policy(session, data=data)
    except IntegrityError as exc:  # two policies claiming one risk level at the same moment
        raise Conflict("another policy already covers one of these risk levels") from exc


@router.get("/policies")
async def list_policies(session: Session, page: Paging) -> list[PolicyOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(*await oncall.list_policies(session, limit=page.limit, cursor=page.cursor))


@router.get("/policies/{policy_id}")
async def get_policy(policy_id: uuid.UUID, session: Session) -> PolicyOut:
    return await oncall.get_policy(session, policy_id=policy_id)


@router.put("/policies/{policy_id}", responses=_TAKEN)
async def replace_policy(policy_id: uuid.UUID, data: PolicyIn, sessions: Sessions) -> PolicyOut:
    try:
        async with transaction(sessions) as session:
            return await oncall.replace_policy(session, policy_id=policy_id, data=data)
    except IntegrityError as exc:
        raise Conflict("another policy already covers one of these risk levels") from exc


@router.delete("/policies/{policy_id}", status_code=204)
async def delete_policy(policy_id: uuid.UUID, sessions: Sessions) -> Response:
    async with transaction(sessions) as session:
        await oncall.delete_policy(session, policy_id=policy_id)
    return Response(status_code=204)
