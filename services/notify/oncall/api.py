"""Notify's on-call configuration routes: clinicians and contact methods, schedules and overrides,
policies; who is on call and who covers a window."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.exc import IntegrityError

from services.notify.oncall import clinicians, policies, schedules, service
from services.notify.oncall.schemas import (
    ClinicianIn,
    ClinicianOut,
    ContactMethodIn,
    ContactMethodOut,
    CoverageOut,
    LanguagesIn,
    OnCallOut,
    OverrideIn,
    OverrideOut,
    PolicyIn,
    PolicyOut,
    ScheduleIn,
    ScheduleOut,
)
from services.notify.permissions import ROUTES
from services.notify.times import instant, invalid, problems
from shared.auth import guarded
from shared.db import transaction
from shared.errors import Conflict, ErrorBody
from shared.events import utcnow
from shared.http import Session, Sessions
from shared.outbound import require_safe_url
from shared.pagination import Paging

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))

#: The longest coverage window: a month's roster, not a year's worth of steps per request.
MAX_WINDOW = timedelta(days=31)


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
        return await clinicians.create_clinician(session, data=data)


@router.get("/clinicians")
async def list_clinicians(session: Session, page: Paging) -> list[ClinicianOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(
        *await clinicians.list_clinicians(session, limit=page.limit, cursor=page.cursor)
    )


@router.get("/clinicians/{clinician_id}")
async def get_clinician(clinician_id: uuid.UUID, session: Session) -> ClinicianOut:
    return await clinicians.get_clinician(session, clinician_id=clinician_id)


@router.put("/clinicians/{clinician_id}/languages")
async def set_clinician_languages(
    clinician_id: uuid.UUID, data: LanguagesIn, sessions: Sessions
) -> ClinicianOut:
    """The languages the clinician speaks (BCP 47), replaced as a whole."""
    async with transaction(sessions) as session:
        return await clinicians.set_languages(
            session, clinician_id=clinician_id, languages=data.languages
        )


@router.post("/clinicians/{clinician_id}/contact-methods", status_code=201)
async def add_contact_method(
    clinician_id: uuid.UUID, data: ContactMethodIn, request: Request, sessions: Sessions
) -> ContactMethodOut:
    await _safe_address(request, data, field="address")
    async with transaction(sessions) as session:
        return await clinicians.add_contact_method(session, clinician_id=clinician_id, data=data)


@router.delete("/clinicians/{clinician_id}/contact-methods/{method_id}", status_code=204)
async def remove_contact_method(
    clinician_id: uuid.UUID, method_id: uuid.UUID, sessions: Sessions
) -> Response:
    async with transaction(sessions) as session:
        await clinicians.remove_contact_method(
            session, clinician_id=clinician_id, method_id=method_id
        )
    return Response(status_code=204)


# Schedules: rotations and overrides; who is on call.


@router.post("/schedules", status_code=201)
async def create_schedule(data: ScheduleIn, sessions: Sessions) -> ScheduleOut:
    async with transaction(sessions) as session:
        return await schedules.create_schedule(session, data=data)


@router.get("/schedules")
async def list_schedules(session: Session, page: Paging) -> list[ScheduleOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(
        *await schedules.list_schedules(session, limit=page.limit, cursor=page.cursor)
    )


@router.get("/schedules/{schedule_id}")
async def get_schedule(schedule_id: uuid.UUID, session: Session) -> ScheduleOut:
    return await schedules.get_schedule(session, schedule_id=schedule_id)


@router.put("/schedules/{schedule_id}")
async def replace_schedule(
    schedule_id: uuid.UUID, data: ScheduleIn, sessions: Sessions
) -> ScheduleOut:
    async with transaction(sessions) as session:
        return await schedules.replace_schedule(session, schedule_id=schedule_id, data=data)


@router.post("/schedules/{schedule_id}/overrides", status_code=201)
async def add_override(schedule_id: uuid.UUID, data: OverrideIn, sessions: Sessions) -> OverrideOut:
    async with transaction(sessions) as session:
        return await schedules.add_override(session, schedule_id=schedule_id, data=data)


@router.delete("/schedules/{schedule_id}/overrides/{override_id}", status_code=204)
async def remove_override(
    schedule_id: uuid.UUID, override_id: uuid.UUID, sessions: Sessions
) -> Response:
    async with transaction(sessions) as session:
        await schedules.remove_override(session, schedule_id=schedule_id, override_id=override_id)
    return Response(status_code=204)


@router.get("/oncall", responses={404: {"description": "no schedule schedule_id"}})
async def who_is_on_call(
    session: Session,
    at: Annotated[datetime | None, Query()] = None,
    schedule_id: Annotated[uuid.UUID | None, Query()] = None,
) -> OnCallOut:
    """Who covers each schedule at `at` (default now); `at` carries its offset, e.g. Z."""
    return await service.on_call_at(
        session, at=instant(at, field="at") or utcnow(), schedule_id=schedule_id
    )


@router.get(
    "/oncall/coverage",
    responses={
        404: {"model": ErrorBody, "description": "no schedule schedule_id"},
        **problems(
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
    begins = instant(start, field="from") or utcnow()
    ends = instant(end, field="to") or begins + timedelta(days=7)
    if ends <= begins:
        raise invalid("to", "must be after `from`")
    if ends - begins > MAX_WINDOW:
        raise invalid("to", "at most 31 days after `from`")
    return await service.coverage_between(session, start=begins, end=ends, schedule_id=schedule_id)


# Escalation policies.


_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"description": "a risk level is already covered by another policy"}
}


@router.post("/policies", status_code=201, responses=_TAKEN)
async def create_policy(data: PolicyIn, sessions: Sessions) -> PolicyOut:
    try:
        async with transaction(sessions) as session:
            return await policies.create_policy(session, data=data)
    except IntegrityError as exc:  # two policies claiming one risk level at the same moment
        raise Conflict("another policy already covers one of these risk levels") from exc


@router.get("/policies")
async def list_policies(session: Session, page: Paging) -> list[PolicyOut]:
    """Oldest first, `limit` at a time; `Link: rel="next"` names the next page."""
    return page.answer(*await policies.list_policies(session, limit=page.limit, cursor=page.cursor))


@router.get("/policies/{policy_id}")
async def get_policy(policy_id: uuid.UUID, session: Session) -> PolicyOut:
    return await policies.get_policy(session, policy_id=policy_id)


@router.put("/policies/{policy_id}", responses=_TAKEN)
async def replace_policy(policy_id: uuid.UUID, data: PolicyIn, sessions: Sessions) -> PolicyOut:
    try:
        async with transaction(sessions) as session:
            return await policies.replace_policy(session, policy_id=policy_id, data=data)
    except IntegrityError as exc:
        raise Conflict("another policy already covers one of these risk levels") from exc


@router.delete("/policies/{policy_id}", status_code=204)
async def delete_policy(policy_id: uuid.UUID, sessions: Sessions) -> Response:
    async with transaction(sessions) as session:
        await policies.delete_policy(session, policy_id=policy_id)
    return Response(status_code=204)
