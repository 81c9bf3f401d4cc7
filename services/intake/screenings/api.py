"""Intake's routes: thin; the work is in service.py and safety_plans.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from services.intake.permissions import ROUTES
from services.intake.safety_plans.service import is_overdue
from services.intake.screenings.schemas import (
    AlertOut,
    CaseView,
    Contact,
    RiskOut,
    SafetyPlanSummary,
    ScreeningAccepted,
    ScreeningIn,
)
from services.intake.screenings.service import (
    ConcurrentDuplicate,
    get_case,
    opened,
    submit_screening,
    validated_answers,
)
from shared import audit
from shared.auth import CurrentPrincipal, Permission, Visibility, guarded
from shared.db import transaction
from shared.errors import Forbidden, NotFound, Unprocessable
from shared.http import Session, Sessions
from shared.text import NO_CONTROL

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))

IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
#: Why a hotline counsellor reads a case they did not submit: recorded in the audit trail, so it
#: must say why, not who (no name, number or note).
BreakGlassReason = Annotated[
    str | None,
    Header(alias="X-Break-Glass-Reason", min_length=10, max_length=500, pattern=NO_CONTROL),
]
CorrelationHeader = Annotated[str | None, Header(alias="X-Correlation-Id", max_length=200)]


@router.post(
    "/screenings",
    status_code=202,
    response_model=ScreeningAccepted,
    responses={200: {"model": ScreeningAccepted, "description": "a replay of an earlier request"}},
)
async def post_screening(
    payload: ScreeningIn,
    request: Request,
    sessions: Sessions,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKeyHeader = None,
    correlation_id: CorrelationHeader = None,
) -> JSONResponse:
    """Accept a screening; 202 the first time, 200 with the same id for a replay."""
    if principal.visibility == Visibility.SUBMITTED and payload.source != "hotline":
        # An EHR's (source, external_id) is how its messages are deduplicated: a hotline key
        # must not be able to claim one first.
        raise Forbidden("a hotline credential submits screenings with source hotline")
    answers = validated_answers(payload)
    if idempotency_key is not None and not idempotency_key.strip():
        raise Unprocessable("Idempotency-Key must not be blank")
    for attempt in (1, 2):
        try:
            async with transaction(sessions) as session:
                screening, created = await submit_screening(
                    session,
                    payload=payload,
                    answers=answers,
                    idempotency_key=idempotency_key,
                    correlation_id=correlation_id or str(uuid.uuid4()),
                    principal=principal,
                    filed_under=principal.files_under,
                    phi=request.app.state.phi,
                    alone=True,
                )
            break
        except (IntegrityError, ConcurrentDuplicate):
            if attempt == 2:
                raise
            # A concurrent request with the same key or external_id won; the retry finds it.
    location = f"/v1/screenings/{screening.id}"
    body = ScreeningAccepted(id=screening.id, status=screening.status)  # type: ignore[arg-type]
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=202 if created else 200,
        headers={"Location": location},
    )


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
) -> JSONResponse:
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
    hidden = None if principal.may(Permission.CASES_READ_CONTACT) else {"contact", "notes"}
    if hidden is None:  # decrypted only for a caller who sees them
        contact, view.notes = opened(screening, request.app.state.phi)
        view.contact = Contact.model_validate(contact) if contact else None
    return JSONResponse(
        view.model_dump(mode="json", exclude=hidden), headers={"Cache-Control": "no-store"}
    )
