"""The audit trail, read: `GET /v1/audit` (supervisors, admins) and one screening's access log.

Both are reads of the trail itself, so they leave a trace too. Entries name ids and actions,
never a name, phone number, note or plan entry.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from services.intake.audit.fhir import audit_event
from services.intake.audit.queries import entries_page
from services.intake.audit.schemas import AuditEntryOut
from services.intake.fhir.api import FhirRoute
from services.intake.fhir.outcomes import FHIR_JSON
from services.intake.permissions import ROUTES
from services.intake.safety_plans.models import SafetyPlan
from services.intake.screenings.service import get_screening
from shared.auth import CurrentPrincipal, guarded
from shared.errors import Unprocessable
from shared.http import Session
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["audit"], route_class=guarded(ROUTES))


@router.get("/audit", response_model=list[AuditEntryOut])
async def read_audit_trail(
    session: Session,
    page: Paging,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntryOut]:
    """Entries newest first, filtered; `limit` at most 500, `Link: rel="next"` pages on."""
    where: list[str] = []
    params: list[Any] = []
    filters = (("actor", actor), ("resource", resource), ("action", action), ("outcome", outcome))
    for column, value in filters:
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    for op, moment in ((">=", since), ("<", until)):
        if moment is not None:
            params.append(moment)
            where.append(f"at {op} ${len(params)}")
    return await entries_page(session, page, where, params)


@router.get("/screenings/{screening_id}/access-log", response_model=list[AuditEntryOut])
async def screening_access_log(
    screening_id: uuid.UUID, session: Session, principal: CurrentPrincipal, page: Paging
) -> list[AuditEntryOut]:
    """Who read or changed this person's record, and when: the screening, its safety plan and
    its FHIR resources, newest first."""
    screening = await get_screening(session, screening_id=screening_id, principal=principal)
    plan = await session.scalar(
        select(SafetyPlan.id).where(SafetyPlan.screening_id == screening.id)
    )
    resources = [f"screening/{screening.id}"] + ([f"safety-plan/{plan}"] if plan else [])
    return await entries_page(session, page, ["resource = ANY($1::text[])"], [resources])


fhir_router = APIRouter(prefix="/v1/fhir", tags=["audit", "fhir"], route_class=FhirRoute)

_DATE = re.compile(r"^(ge|gt|le|lt)?(\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?)$")
_DATE_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", None: ">="}


@fhir_router.get("/AuditEvent")
async def search_audit_events(
    request: Request,
    session: Session,
    entity: Annotated[str | None, Query(max_length=200)] = None,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    date: Annotated[list[str] | None, Query(max_length=4)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(alias="_cursor", max_length=30)] = None,
) -> Response:
    """The trail as a searchset Bundle of AuditEvents, newest first: `entity`
    (`<type>/<id>`), `agent` (who acted), `date` (`ge2026-11-01`, `lt2026-12-01T00:00:00Z`)."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("resource", entity), ("actor", agent)):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    for value in date or ():
        match = _DATE.fullmatch(value)
        if match is None:
            raise Unprocessable(
                "date is a FHIR date with an optional prefix: ge, gt, le or lt",
                problems=[{"field": "date", "problem": "not a prefixed date"}],
            )
        try:
            moment = datetime.fromisoformat(match.group(2).replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is None:
            raise Unprocessable(
                "date is not a valid date or time",
                problems=[{"field": "date", "problem": "not a valid date"}],
            )
        params.append(moment)
        where.append(f"at {_DATE_OPS[match.group(1)]} ${len(params)}")
    page = Page(count, cursor, request, Response())
    entries = await entries_page(session, page, where, params)
    base = str(request.base_url).rstrip("/") + "/v1/fhir"
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{e.seq}",
                "resource": audit_event(e.model_dump(), base),
                "search": {"mode": "match"},
            }
            for e in entries
        ]
        or None,
    }
    if "Link" in page.response.headers:
        following = request.url.include_query_params(_cursor=str(entries[-1].seq))
        bundle["link"].append({"relation": "next", "url": str(following)})
    validated = Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
    return Response(json.dumps(validated), media_type=FHIR_JSON)
