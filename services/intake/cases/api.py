"""The case view's routes: one case (`GET /v1/screenings/{id}`) and the worklist
(`GET /v1/screenings`). Thin: the reads are in queries.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy import Row

from services.intake.cases.queries import ScreeningFilters, get_case, screenings_listed
from services.intake.cases.schemas import (
    AlertOut,
    CaseView,
    RiskOut,
    RiskSummary,
    SafetyPlanRef,
    SafetyPlanSummary,
    ScreeningListItem,
)
from services.intake.follow_ups import queries as follow_up_queries
from services.intake.permissions import ROUTES
from services.intake.safety_plans.document import is_overdue
from services.intake.screenings.models import Screening
from services.intake.screenings.schemas import Contact
from services.intake.screenings.service import opened
from shared import audit
from shared.auth import CurrentPrincipal, Permission, Visibility, guarded
from shared.errors import NotFound
from shared.events import RiskLevelName, utcnow
from shared.http import Session, model_response
from shared.pagination import LIST_ERRORS, Paging, position_page
from shared.text import NO_CONTROL

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))

#: Why a hotline counsellor reads a case they did not submit: recorded in the audit trail, so it
#: must say why, not who (no name, number or note).
BreakGlassReason = Annotated[
    str | None,
    Header(alias="X-Break-Glass-Reason", min_length=10, max_length=500, pattern=NO_CONTROL),
]


def _utc(moment: datetime) -> datetime:
    """The moment in UTC: one with no UTC equivalent (year 1 at +01:00) is a 422, not a 500
    from the database driver."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


Since = Annotated[
    Annotated[AwareDatetime, AfterValidator(_utc)] | None,
    Query(description="received at or after this time (with an offset, e.g. 2026-12-01T00:00Z)"),
]
Levels = Annotated[
    list[RiskLevelName] | None, Query(max_length=5, description="risk level; repeat for several")
]


@router.get(
    "/screenings/{screening_id}",
    response_model=CaseView,
    responses={404: {"description": "no such screening, or not one the caller may see"}},
)
async def get_screening(
    screening_id: uuid.UUID,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    break_glass_reason: BreakGlassReason = None,
) -> Response:
    """The case view; `contact` and `notes` only for a caller that may see them.

    Break-glass: hotline staff may read a case they did not submit (a caller rings back and
    reaches another counsellor) by giving `X-Break-Glass-Reason`; the read is allowed and its
    audit entry records `break-glass` and the reason, for supervisors to review
    (`GET /v1/audit?outcome=break-glass`)."""
    try:
        screening, alerts, plan = await get_case(
            session, screening_id=screening_id, principal=principal
        )
    except NotFound:
        if break_glass_reason is None or principal.visibility != Visibility.SUBMITTED:
            raise
        screening, alerts, plan = await get_case(
            session, screening_id=screening_id, principal=principal, break_glass=True
        )
        audit.annotate(outcome="break-glass", reason=break_glass_reason)
    view = CaseView(
        id=screening.id,
        subject_id=screening.subject_id,
        source=screening.source,
        external_id=screening.external_id,
        instrument=screening.instrument,
        answers=screening.answers,
        imminent_danger=screening.imminent_danger,
        language=screening.language,
        country=screening.country or request.app.state.runtime.settings.default_country,
        region=screening.region,
        interpreter_needed=any(a.interpreter_needed for a in alerts),
        status=screening.status,
        received_at=screening.received_at,
        risk=RiskOut.model_validate(screening.risk) if screening.risk else None,
        alerts=[AlertOut.model_validate(a, from_attributes=True) for a in alerts],
        safety_plan=SafetyPlanSummary(
            id=plan.id,
            status=plan.status,
            risk_level=plan.risk_level,
            due_at=plan.due_at,
            overdue=is_overdue(plan),
            emergency_task_status=(plan.emergency_task or {}).get("status"),
        )
        if plan
        else None,
    )
    follow_up = await follow_up_queries.for_screening(session, screening.id)
    if follow_up is not None:
        view.follow_up = follow_up_queries.summary(follow_up, utcnow())
    hidden = None if principal.may(Permission.CASES_READ_CONTACT) else {"contact", "notes"}
    if hidden is None:  # decrypted only for a caller who sees them
        contact, view.notes = opened(screening, request.app.state.phi)
        view.contact = Contact.model_validate(contact) if contact else None
    return model_response(view, exclude=hidden, headers={"Cache-Control": "no-store"})


@router.get("/screenings", response_model=list[ScreeningListItem], responses=LIST_ERRORS)
async def list_screenings(
    session: Session,
    principal: CurrentPrincipal,
    page: Paging,
    since: Since = None,
    flagged: bool | None = None,
    level: Levels = None,
    status: Literal["received", "assessed"] | None = None,
) -> list[ScreeningListItem]:
    """The screenings the caller may read (the case view's scope), newest first; `limit` at
    most 500, `Link: rel="next"` pages on.

    A worklist, not a record: no contact, notes or answers, and nothing is decrypted. It does
    name each screening's subject_id beside its risk, which says who is at risk: the gate
    records the read in the audit trail like any `cases:read` (one entry per page, naming the
    collection)."""
    filters = ScreeningFilters(since, flagged, tuple(level or ()), status)
    rows = await position_page(
        session,
        screenings_listed(principal, filters),
        Screening.received_at,
        Screening.id,
        page=page,
        descending=True,
    )
    page.response.headers["Cache-Control"] = "no-store"
    return [_listed(row) for row in rows]


def _listed(row: Row[Any]) -> ScreeningListItem:
    risk = row.risk
    return ScreeningListItem(
        id=row.id,
        subject_id=row.subject_id,
        source=row.source,
        instrument=row.instrument,
        status=row.status,
        created_at=row.received_at,
        risk=RiskSummary.model_validate(risk) if risk else None,
        safety_plan=SafetyPlanRef(id=row.plan_id, status=row.plan_status, due_at=row.plan_due_at)
        if row.plan_id is not None
        else None,
    )
