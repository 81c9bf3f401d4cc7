"""Crisis resources on intake: every signed-in role reads them (a printed plan and the emergency
task show them); admins add, replace and remove them. Each write is audited by the gate, naming
`crisis-resource/<id>`; nothing here is PHI.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.intake.crisis_resources import codes
from services.intake.crisis_resources import service as resources
from services.intake.crisis_resources.models import CrisisResource
from services.intake.crisis_resources.schemas import CrisisResourceIn, CrisisResourceOut, Kind
from services.intake.permissions import ROUTES
from shared import audit
from shared.auth import CurrentPrincipal, guarded
from shared.db import transaction
from shared.errors import Unprocessable
from shared.http import Session, Sessions
from shared.pagination import LIST_ERRORS, Paging, keyset_page

router = APIRouter(
    prefix="/v1/crisis-resources", tags=["crisis resources"], route_class=guarded(ROUTES)
)


def _valid(field: str, check: codes.Check, value: str | None) -> str | None:
    """A filter checked like the body's field of the same name: a 422 naming it as FastAPI
    names a bad query parameter (`query.country`), never echoing it."""
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as exc:
        raise Unprocessable(
            f"{field} is not valid", problems=[{"field": f"query.{field}", "problem": str(exc)}]
        ) from None


@router.get("", response_model=list[CrisisResourceOut], responses=LIST_ERRORS)
async def list_crisis_resources(
    session: Session,
    page: Paging,
    country: Annotated[str | None, Query(max_length=10, description="ISO 3166-1 alpha-2")] = None,
    language: Annotated[
        str | None, Query(max_length=40, description="BCP 47; matches its primary language")
    ] = None,
    kind: Kind | None = None,
) -> list[CrisisResourceOut]:
    """Every resource matching the filters, oldest first, `limit` at a time (`Link: rel=next`);
    each with `stale` (not checked for more than 180 days)."""
    query = resources.listed(
        country=_valid("country", codes.country, country),
        language=_valid("language", codes.language, language),
        kind=kind,
    )
    rows, following = await keyset_page(
        session, query, CrisisResource, limit=page.limit, cursor=page.cursor
    )
    return page.answer([resources.out(r) for r in rows], following)


@router.get("/{resource_id}", response_model=CrisisResourceOut)
async def get_crisis_resource(resource_id: uuid.UUID, session: Session) -> CrisisResourceOut:
    return resources.out(await resources.get(session, resource_id))


@router.post("", status_code=201, response_model=CrisisResourceOut)
async def create_crisis_resource(
    data: CrisisResourceIn, response: Response, sessions: Sessions, principal: CurrentPrincipal
) -> CrisisResourceOut:
    checked = data.checked()
    async with transaction(sessions) as session:
        row = await resources.create(session, checked, actor=principal.name)
        audit.about(f"crisis-resource/{row.id}")
    response.headers["Location"] = f"/v1/crisis-resources/{row.id}"
    return resources.out(row)


@router.put("/{resource_id}", response_model=CrisisResourceOut)
async def replace_crisis_resource(
    resource_id: uuid.UUID, data: CrisisResourceIn, sessions: Sessions, principal: CurrentPrincipal
) -> CrisisResourceOut:
    """The whole resource, replaced (send every field, as POST does)."""
    checked = data.checked()
    audit.about(f"crisis-resource/{resource_id}")
    async with transaction(sessions) as session:
        row = await resources.replace(session, resource_id, checked, actor=principal.name)
    return resources.out(row)


@router.delete("/{resource_id}", status_code=204)
async def delete_crisis_resource(resource_id: uuid.UUID, sessions: Sessions) -> Response:
    audit.about(f"crisis-resource/{resource_id}")
    async with transaction(sessions) as session:
        await resources.delete(session, resource_id)
    return Response(status_code=204)
