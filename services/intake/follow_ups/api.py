"""Follow-up routes: the worklist (most overdue first), one follow-up with its attempts and
tasks, recording an attempt, and the tasks follow-ups leave for people.

Who may: hotline staff for the screenings they submitted, clinicians, supervisors and admins for
all (`follow-ups:work`, services/intake/permissions.py); a follow-up outside the caller's scope
is not found (404). Every call is in the audit trail, which names the follow-up, never a note.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from services.intake.fhir.models import FhirResponse
from services.intake.follow_ups import caring, fhir, queries
from services.intake.follow_ups import service as follow_ups
from services.intake.follow_ups.models import FollowUp, FollowUpTask
from services.intake.follow_ups.replies import replies_of
from services.intake.follow_ups.schedule import known_time_zone
from services.intake.follow_ups.schemas import (
    AttemptIn,
    AttemptOut,
    CaringContactOut,
    CaringMessageOut,
    ConsentIn,
    FollowUpOut,
    FollowUpSummary,
    ReplyOut,
    TaskOut,
)
from services.intake.follow_ups.service import Actor, Policy
from services.intake.follow_ups.texts import LANGUAGES
from services.intake.permissions import ROUTES
from services.intake.screenings.models import Screening
from services.intake.screenings.scope import visible
from shared.auth import CurrentPrincipal, guarded
from shared.db import transaction
from shared.errors import NotFound, Unprocessable
from shared.events import utcnow
from shared.http import Session, Sessions
from shared.pagination import LIST_ERRORS, Paging, position_page

router = APIRouter(prefix="/v1", tags=["follow-ups"], route_class=guarded(ROUTES))

_NO_STORE = {"Cache-Control": "no-store"}


def policy_of(request: Request) -> Policy:
    return Policy.of(request.app.state.runtime.settings)


Policies = Annotated[Policy, Depends(policy_of)]


@router.get("/follow-ups", response_model=list[FollowUpSummary], responses=LIST_ERRORS)
async def list_follow_ups(
    session: Session,
    principal: CurrentPrincipal,
    page: Paging,
    status: Annotated[
        Literal["open", "completed", "unreachable"] | None,
        Query(description="open (default), completed or unreachable"),
    ] = "open",
) -> list[FollowUpSummary]:
    """The worklist: follow-ups of the screenings the caller may see, most overdue first (the
    earliest due time first). `limit` at most 500, `Link: rel="next"` pages on. No note is read."""
    now = utcnow()
    query = queries.worklist(visible(principal), status)
    rows = await position_page(
        session, query, FollowUp.due_at, FollowUp.id, page=page, descending=False
    )
    page.response.headers["Cache-Control"] = "no-store"
    return [queries.summary(row, now) for row in rows]  # type: ignore[arg-type]


async def _document(session: Any, follow_up: Any, policy: Policy) -> dict[str, Any]:
    summary = queries.summary(follow_up, utcnow())
    attempts = await queries.attempts_of(session, follow_up.id)
    tasks = await queries.tasks_of(session, follow_up.id)
    enrolments = [
        CaringContactOut(
            **{k: getattr(c, k) for k in CaringContactOut.model_fields if k != "messages"},
            messages=[
                CaringMessageOut.model_validate(m, from_attributes=True)
                for m in await caring.messages_of(session, c.id)
            ],
        )
        for c in await caring.enrolments_of(session, follow_up.id)
    ]
    out = FollowUpOut(
        caring_contacts=enrolments,
        replies=[
            ReplyOut.model_validate(r, from_attributes=True)
            for r in await replies_of(session, follow_up.id)
        ],
        **summary.model_dump(),
        max_attempts=policy.max_attempts,
        closed_at=follow_up.closed_at,
        attempt_log=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
        tasks=[TaskOut.model_validate(t, from_attributes=True) for t in tasks],
    )
    return out.model_dump(mode="json")


@router.get(
    "/follow-ups/{follow_up_id}",
    response_model=FollowUpOut,
    responses={404: {"description": "no such follow-up, or not one the caller may see"}},
)
async def get_follow_up(
    follow_up_id: uuid.UUID, session: Session, principal: CurrentPrincipal, policy: Policies
) -> JSONResponse:
    """One follow-up with its attempts (notes included: the read is audited) and its tasks."""
    follow_up = await follow_ups.get_follow_up(
        session, follow_up_id=follow_up_id, visible=visible(principal)
    )
    return JSONResponse(await _document(session, follow_up, policy), headers=_NO_STORE)


@router.get(
    "/follow-ups/{follow_up_id}/fhir",
    responses={
        200: {"content": {"application/fhir+json": {}}},
        404: {"description": "no such follow-up, or not one the caller may see"},
    },
)
async def get_follow_up_fhir(
    follow_up_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> Response:
    """Caring Contacts as FHIR R4: a Bundle of CommunicationRequest (each enrolment's schedule)
    and Communication (each message sent or failed) of the screening's subject."""
    follow_up = await follow_ups.get_follow_up(
        session, follow_up_id=follow_up_id, visible=visible(principal)
    )
    screening = await session.get(Screening, follow_up.screening_id)
    assert screening is not None
    source = await session.get(FhirResponse, follow_up.screening_id)
    enrolments = [
        (contact, await caring.messages_of(session, contact.id))
        for contact in await caring.enrolments_of(session, follow_up.id)
    ]
    document = fhir.bundle(follow_up, fhir.subject_of(screening, source), enrolments)
    return Response(
        document.model_dump_json(exclude_none=True),
        media_type="application/fhir+json",
        headers=_NO_STORE,
    )


@router.post(
    "/follow-ups/{follow_up_id}/attempts",
    status_code=201,
    response_model=FollowUpOut,
    responses={
        404: {"description": "no such follow-up, or not one the caller may see"},
        409: {"description": "follow_up_closed: completed or unreachable already"},
    },
)
async def record_attempt(
    follow_up_id: uuid.UUID,
    body: AttemptIn,
    sessions: Sessions,
    principal: CurrentPrincipal,
    policy: Policies,
) -> JSONResponse:
    """Record one attempt to reach the person (see service.py for what each outcome does)."""
    async with transaction(sessions) as session:
        follow_up, _ = await follow_ups.record_attempt(
            session,
            follow_up_id=follow_up_id,
            visible=visible(principal),
            outcome=body.outcome,
            note=body.note,
            actor=Actor(principal.name, principal.role.value),
            policy=policy,
        )
        document = await _document(session, follow_up, policy)
    return JSONResponse(document, status_code=201, headers=_NO_STORE)


@router.post(
    "/follow-ups/{follow_up_id}/caring-contacts",
    status_code=201,
    response_model=FollowUpOut,
    responses={
        404: {"description": "no such follow-up, or not one the caller may see"},
        409: {"description": "already_enrolled: withdraw the active consent first"},
        422: {"description": "a bad number, address, time zone or language (never echoed)"},
    },
)
async def enrol(
    follow_up_id: uuid.UUID,
    body: ConsentIn,
    request: Request,
    sessions: Sessions,
    principal: CurrentPrincipal,
    policy: Policies,
) -> JSONResponse:
    """Record the person's consent (who took it and when) and schedule every caring message."""
    settings = request.app.state.runtime.settings
    if body.channel == "sms":
        if body.phone is None or body.email is not None:
            raise Unprocessable(
                "an sms consent gives phone (and no email)",
                problems=[{"field": "phone", "problem": "required for sms"}],
            )
        address = caring.e164(body.phone, settings.default_country)
    else:
        if body.email is None or body.phone is not None:
            raise Unprocessable(
                "an email consent gives email (and no phone)",
                problems=[{"field": "email", "problem": "required for email"}],
            )
        address = caring.email_address(body.email)
    if not known_time_zone(body.time_zone):
        raise Unprocessable(
            "time_zone is not an IANA time zone name (e.g. Europe/Madrid)",
            problems=[{"field": "time_zone", "problem": "unknown time zone"}],
        )
    if body.language not in LANGUAGES:
        raise Unprocessable(
            f"language is one of {', '.join(LANGUAGES)}",
            problems=[{"field": "language", "problem": "no caring messages in this language"}],
        )
    async with transaction(sessions) as session:
        contact = await caring.enrol(
            session,
            follow_up_id=follow_up_id,
            visible=visible(principal),
            channel=body.channel,
            address=address,
            time_zone=body.time_zone,
            language=body.language,
            actor=Actor(principal.name, principal.role.value),
            plan=caring.Plan.of(settings),
        )
        follow_up = await follow_ups.get_follow_up(session, follow_up_id=contact.follow_up_id)
        document = await _document(session, follow_up, policy)
    return JSONResponse(document, status_code=201, headers=_NO_STORE)


@router.delete(
    "/follow-ups/{follow_up_id}/caring-contacts",
    status_code=204,
    responses={404: {"description": "no such follow-up or no active consent"}},
)
async def withdraw(
    follow_up_id: uuid.UUID, sessions: Sessions, principal: CurrentPrincipal
) -> Response:
    """Consent withdrawn: every pending message is cancelled at once, nothing more is sent."""
    async with transaction(sessions) as session:
        await caring.withdraw(
            session,
            follow_up_id=follow_up_id,
            visible=visible(principal),
            actor=Actor(principal.name, principal.role.value),
        )
    return Response(status_code=204)


@router.get("/follow-up-tasks", response_model=list[TaskOut], responses=LIST_ERRORS)
async def list_tasks(
    session: Session,
    principal: CurrentPrincipal,
    page: Paging,
    for_role: Annotated[Literal["supervisor", "team"] | None, Query()] = None,
) -> list[TaskOut]:
    """Open tasks (a person nobody reached, a reply to read), oldest first."""
    query = queries.open_tasks(visible(principal), for_role)
    rows = await position_page(
        session, query, FollowUpTask.created_at, FollowUpTask.id, page=page, descending=False
    )
    page.response.headers["Cache-Control"] = "no-store"
    return [TaskOut.model_validate(r, from_attributes=True) for r in rows]


@router.post(
    "/follow-up-tasks/{task_id}/done",
    response_model=TaskOut,
    responses={404: {"description": "no such open task, or not one the caller may see"}},
)
async def finish_task(
    task_id: uuid.UUID, sessions: Sessions, principal: CurrentPrincipal
) -> TaskOut:
    """Mark a task done (who and when are kept)."""
    async with transaction(sessions) as session:
        return await _finish(session, task_id, principal)


async def _finish(session: Any, task_id: uuid.UUID, principal: Any) -> TaskOut:
    row = (
        await session.execute(
            queries.open_tasks(visible(principal), None)
            .where(FollowUpTask.id == task_id)
            .with_only_columns(FollowUpTask)
            .with_for_update(of=FollowUpTask)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no open task {task_id}")
    row.status, row.done_by, row.done_at = "done", principal.name, utcnow()
    await session.flush()
    return TaskOut.model_validate(row, from_attributes=True)
