"""Safety-plan routes for hotline staff and clinicians: read, edit, review, complete, print.

Routes are thin: the rules are in service.py (changes), document.py and queries.py (reads), the
bodies in schemas.py. Every write is made by the credential's holder (`Actor`: its name and
role) against a version (`If-Match: "<version>"` or a `version` field); a stale version is 409,
none at all is 428, so two people editing one plan never silently lose a change. A plan whose
screening the caller may not see is not found (404).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import ColumnElement, Row
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from services.intake.crisis_resources.service import ForPerson, resources_for
from services.intake.permissions import ROUTES
from services.intake.safety_plans import queries
from services.intake.safety_plans import service as plans
from services.intake.safety_plans.document import plan_document
from services.intake.safety_plans.models import SafetyPlan, SafetyPlanRevision
from services.intake.safety_plans.printing import (
    PdfUnavailable,
    crisis_lines,
    find_font,
    render_html,
    render_pdf,
)
from services.intake.safety_plans.schemas import (
    MAX_VERSION,
    DueIn,
    EmergencyTaskIn,
    EntryIn,
    NotApplicableIn,
    OrderIn,
    Review,
    ReviewIn,
    SafetyPlanListItem,
    Versioned,
)
from services.intake.screenings.scope import visible
from services.intake.screenings.service import PersonLocale, locale_of
from shared.auth import CurrentPrincipal, guarded
from shared.db import transaction
from shared.errors import DomainError, Unprocessable
from shared.events import utcnow
from shared.http import Session, Sessions
from shared.pagination import LIST_ERRORS, Paging, position_page

router = APIRouter(prefix="/v1/safety-plans", tags=["safety plans"], route_class=guarded(ROUTES))

#: What every change can answer besides success (declared in its OpenAPI).
_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "stale_version, or the plan is complete (or incomplete, to complete)"},
    428: {"description": "no version given: send If-Match or a version field"},
}
_NO_STORE = {"Cache-Control": "no-store", "Vary": "Accept"}  # PHI: never cached by a proxy
_ETAG = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')
_MEDIA = {"application/json": "json", "text/html": "html", "application/pdf": "pdf"}
_MEDIA_RANGES = {"*/*": "json", "application/*": "json", "text/*": "html"}


class PreconditionRequired(DomainError):
    status_code = 428
    code = "precondition_required"


class NotAcceptable(DomainError):
    status_code = 406
    code = "not_acceptable"


async def _writer(principal: CurrentPrincipal) -> Writer:
    """Who writes (from the credential: its name and role) and what they may reach."""
    return Writer(plans.Actor(principal.name, principal.role.value), visible(principal))


@dataclass(frozen=True)
class Writer:
    actor: plans.Actor
    visible: ColumnElement[bool]


Actor = Annotated[Writer, Depends(_writer)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40)]
Accept = Annotated[str | None, Header(alias="Accept", max_length=1000)]


def _write(
    plan_id: uuid.UUID, writer: Writer, if_match: str | None, body: Versioned | None
) -> plans.Write:
    """The change's target version, from If-Match or the body (they must agree when both come)."""
    header: int | None = None
    if if_match is not None:
        match = _ETAG.fullmatch(if_match.strip())
        if match is None:
            raise Unprocessable(
                'If-Match must be the plan\'s version as an ETag, e.g. "3"',
                problems=[{"field": "If-Match", "problem": "not a version"}],
            )
        header = int(match.group(1))
    field = body.version if body is not None else None
    if header is not None and field is not None and header != field:
        raise Unprocessable(
            "If-Match and version disagree",
            problems=[{"field": "version", "problem": "differs from If-Match"}],
        )
    version = header if header is not None else field
    if version is None:
        raise PreconditionRequired(
            'say which version you changed: If-Match: "<version>" (the ETag of the GET) '
            "or a version field",
            problems=[{"field": "If-Match", "problem": "required for changes"}],
        )
    return plans.Write(plan_id=plan_id, version=version, actor=writer.actor, visible=writer.visible)


def _etag(plan: SafetyPlan) -> str:
    return f'"{plan.version}"'


def _answer(
    plan: SafetyPlan, *, status_code: int = 200, location: str | None = None
) -> JSONResponse:
    headers = {**_NO_STORE, "ETag": _etag(plan)}
    if location is not None:
        headers["Location"] = location
    return JSONResponse(plan_document(plan), status_code=status_code, headers=headers)


async def _for_person(
    session: AsyncSession, plan: SafetyPlan, default_country: str
) -> tuple[PersonLocale, ForPerson]:
    """The person's language and place, and the crisis lines and emergency numbers to show
    them (their region's first, those answering in their language first)."""
    person = await locale_of(session, plan.screening_id, default_country=default_country)
    resources = await resources_for(session, person.country, person.region, person.language)
    return person, resources


def _resource(row: Any) -> dict[str, Any]:
    """A crisis resource as a plan shows it (`/v1/crisis-resources` has the whole record)."""
    return {
        name: getattr(row, name)
        for name in ("name", "kind", "channel", "contact", "keyword", "note", "hours", "open_24_7")
    }


def negotiate(accept: str | None) -> str | None:
    """json, html or pdf for an Accept header (q-values honoured); None when none is acceptable."""
    if not accept or not accept.strip():
        return "json"
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = _MEDIA.get(media.lower()) or _MEDIA_RANGES.get(media.lower())
        if kind is not None and quality > 0:
            offers.append((-quality, position, kind))
    return min(offers)[2] if offers else None


def _revision(revision: SafetyPlanRevision, *, with_snapshot: bool) -> dict[str, Any]:
    out = {
        "version": revision.version,
        "actor": revision.actor,
        "role": revision.role,
        "action": revision.action,
        "diff": revision.diff,
        "at": revision.at.isoformat(),
    }
    if with_snapshot:
        out["snapshot"] = revision.snapshot
    return out


# --- reading ---------------------------------------------------------------------------------


@router.get("", response_model=list[SafetyPlanListItem], responses=LIST_ERRORS)
async def list_safety_plans(
    session: Session,
    principal: CurrentPrincipal,
    page: Paging,
    overdue: Annotated[
        bool | None, Query(description="open plans past their due time (or all others)")
    ] = None,
    status: Literal["open", "complete"] | None = None,
    screening_id: uuid.UUID | None = None,
) -> list[SafetyPlanListItem]:
    """The plans of the screenings the caller may read, newest first; with `overdue=true`, the
    longest overdue first. `limit` at most 500, `Link: rel="next"` pages on.

    No entry, reason, emergency outcome or review note is read (nothing is decrypted). Each row
    names its screening beside its risk level, so the gate records the read in the audit trail
    like any `cases:read` (one entry per page, naming the collection)."""
    now = utcnow()
    query = queries.plans_listed(
        visible(principal), queries.PlanFilters(overdue, status, screening_id), now
    )
    soonest_due = overdue is True
    at = SafetyPlan.due_at if soonest_due else SafetyPlan.created_at
    rows = await position_page(
        session, query, at, SafetyPlan.id, page=page, descending=not soonest_due
    )
    page.response.headers["Cache-Control"] = "no-store"
    return [_listed(row) for row in rows]


def _listed(row: Row[Any]) -> SafetyPlanListItem:
    reviewed = Review(by=row.reviewed_by, at=row.reviewed_at) if row.reviewed_at else None
    return SafetyPlanListItem(
        id=row.id,
        screening_id=row.screening_id,
        status=row.status,
        version=row.version,
        due_at=row.due_at,
        created_at=row.created_at,
        overdue=row.overdue,
        reviewed=reviewed,
        risk_level=row.risk_level,
    )


@router.get(
    "/{plan_id}",
    responses={
        200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}},
        406: {"description": "none of the Accept types is offered"},
    },
)
async def get_safety_plan(
    plan_id: uuid.UUID,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    accept: Accept = None,
) -> Response:
    """The plan as JSON (default, with its version as ETag), or the person's printable copy."""
    kind = negotiate(accept)
    if kind is None:
        raise NotAcceptable(
            "a safety plan is offered as application/json, text/html or application/pdf"
        )
    plan = await queries.get_plan(session, plan_id=plan_id, visible=visible(principal))
    settings = request.app.state.runtime.settings
    person, resources = await _for_person(session, plan, settings.default_country)
    document = plan_document(plan)
    if kind == "json":
        document["person"] = {
            "language": person.language,
            "country": person.country,
            "region": person.region,
        }
        document["crisis_resources"] = [_resource(r) for r in resources.all]
        # As the printed copy words them, in the person's language: [who, how] per service.
        document["crisis_lines"] = [
            list(line) for line in crisis_lines(resources.all, person.language)
        ]
        return JSONResponse(document, headers={**_NO_STORE, "ETag": _etag(plan)})
    if kind == "html":
        return HTMLResponse(
            render_html(document, resources.all, person.language), headers=_NO_STORE
        )
    font = find_font(settings.safety_plan_pdf_font)
    try:
        pdf = await run_in_threadpool(
            render_pdf, document, font=font, resources=resources.all, language=person.language
        )
    except PdfUnavailable as exc:
        raise NotAcceptable(f"{exc}; ask for text/html instead") from exc
    return Response(
        pdf,
        media_type="application/pdf",
        headers={**_NO_STORE, "Content-Disposition": 'inline; filename="safety-plan.pdf"'},
    )


@router.get("/{plan_id}/revisions")
async def get_revisions(
    plan_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> JSONResponse:
    """Every revision, oldest first: who changed what, when (each snapshot at its own URL)."""
    revisions = await queries.list_revisions(session, plan_id=plan_id, visible=visible(principal))
    return JSONResponse([_revision(r, with_snapshot=False) for r in revisions], headers=_NO_STORE)


@router.get("/{plan_id}/revisions/{version}")
async def get_revision(
    plan_id: uuid.UUID,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    session: Session,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """One revision with the whole plan as it was after it."""
    revision = await queries.get_revision(
        session, plan_id=plan_id, version=version, visible=visible(principal)
    )
    return JSONResponse(_revision(revision, with_snapshot=True), headers=_NO_STORE)


# --- changing: each is one transaction and one revision --------------------------------------


@router.post("/{plan_id}/steps/{step}/entries", status_code=201, responses=_WRITE_RESPONSES)
async def add_entry(
    plan_id: uuid.UUID,
    step: str,
    payload: EntryIn,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Add the person's words to a step, as its last entry; `Location` names the new entry."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan, entry_id = await plans.add_entry(session, write, step=step, text=payload.text)
    location = f"/v1/safety-plans/{plan_id}/steps/{step}/entries/{entry_id}"
    return _answer(plan, status_code=201, location=location)


@router.put("/{plan_id}/steps/{step}/entries/{entry_id}", responses=_WRITE_RESPONSES)
async def edit_entry(
    plan_id: uuid.UUID,
    step: str,
    entry_id: str,
    payload: EntryIn,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.edit_entry(
            session, write, step=step, entry_id=entry_id, text=payload.text
        )
    return _answer(plan)


@router.delete("/{plan_id}/steps/{step}/entries/{entry_id}", responses=_WRITE_RESPONSES)
async def remove_entry(
    plan_id: uuid.UUID,
    step: str,
    entry_id: str,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    write = _write(plan_id, actor, if_match, None)
    async with transaction(sessions) as session:
        plan = await plans.remove_entry(session, write, step=step, entry_id=entry_id)
    return _answer(plan)


@router.put("/{plan_id}/steps/{step}/order", responses=_WRITE_RESPONSES)
async def reorder_entries(
    plan_id: uuid.UUID,
    step: str,
    payload: OrderIn,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Put a step's entries in the person's order of priority."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.reorder_entries(session, write, step=step, entry_ids=payload.entry_ids)
    return _answer(plan)


@router.put("/{plan_id}/steps/{step}/not-applicable", responses=_WRITE_RESPONSES)
async def mark_not_applicable(
    plan_id: uuid.UUID,
    step: str,
    payload: NotApplicableIn,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record why an (empty) step does not apply; that answers the step for completion."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.mark_not_applicable(session, write, step=step, reason=payload.reason)
    return _answer(plan)


@router.delete("/{plan_id}/steps/{step}/not-applicable", responses=_WRITE_RESPONSES)
async def clear_not_applicable(
    plan_id: uuid.UUID, step: str, sessions: Sessions, actor: Actor, if_match: IfMatch = None
) -> JSONResponse:
    write = _write(plan_id, actor, if_match, None)
    async with transaction(sessions) as session:
        plan = await plans.clear_not_applicable(session, write, step=step)
    return _answer(plan)


@router.put("/{plan_id}/emergency-task", responses=_WRITE_RESPONSES)
async def close_emergency_task(
    plan_id: uuid.UUID,
    payload: EmergencyTaskIn,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Imminent risk: emergency coordination `completed` with its outcome, or `declined` (why)."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.close_emergency_task(
            session, write, status=payload.status, outcome=payload.outcome, reason=payload.reason
        )
    return _answer(plan)


@router.put("/{plan_id}/due", responses=_WRITE_RESPONSES)
async def change_due(
    plan_id: uuid.UUID, payload: DueIn, sessions: Sessions, actor: Actor, if_match: IfMatch = None
) -> JSONResponse:
    """A clinician moves the plan's due time."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.change_due(session, write, due_at=payload.due_at)
    return _answer(plan)


@router.post("/{plan_id}/review", responses=_WRITE_RESPONSES)
async def review(
    plan_id: uuid.UUID,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
    payload: Annotated[ReviewIn | None, Body()] = None,
) -> JSONResponse:
    """A clinician (or admin) reviews the plan as it is; any later change voids the review."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.review(session, write, note=payload.note if payload else None)
    return _answer(plan)


@router.post("/{plan_id}/complete", responses=_WRITE_RESPONSES)
async def complete(
    plan_id: uuid.UUID,
    sessions: Sessions,
    actor: Actor,
    if_match: IfMatch = None,
    payload: Annotated[Versioned | None, Body()] = None,
) -> JSONResponse:
    """Complete the plan; 409 `plan_incomplete` lists what is still outstanding."""
    write = _write(plan_id, actor, if_match, payload)
    async with transaction(sessions) as session:
        plan = await plans.complete(session, write)
    return _answer(plan)
