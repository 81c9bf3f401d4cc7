"""The routes of API keys (issue, list, revoke) and `/v1/me`; the work is in `service.py`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from services.intake.access import service
from services.intake.access.schemas import ApiKeyIn, ApiKeyIssued, ApiKeyOut, Me
from services.intake.permissions import ROUTES
from shared.auth import CurrentPrincipal, guarded
from shared.http import Session, Sessions
from shared.pagination import Paging

router = APIRouter(prefix="/v1/api-keys", tags=["access"], route_class=guarded(ROUTES))
#: Who the caller is: what the console shows and checks its pages against.
me_router = APIRouter(prefix="/v1", tags=["access"], route_class=guarded(ROUTES))


@router.post("", status_code=201, response_model=ApiKeyIssued)
async def issue_key(data: ApiKeyIn, request: Request, sessions: Sessions) -> ApiKeyIssued:
    """A new key, shown once. An `ehr` key is bound to its identifier systems."""
    state = request.app.state
    return await service.issue_key(data, sessions, state.runtime, state.access_signer)


@router.get("", response_model=list[ApiKeyOut])
async def list_keys(session: Session, page: Paging) -> list[ApiKeyOut]:
    """Every key, oldest first (never the key itself), `limit` at a time; `Link: rel="next"`."""
    keys, following = await service.list_keys(session, limit=page.limit, cursor=page.cursor)
    return page.answer(keys, following)


@router.delete("/{key_id}", status_code=204, responses={404: {"description": "no such key"}})
async def revoke_key(key_id: uuid.UUID, request: Request, sessions: Sessions) -> Response:
    """Revoke: every service refuses the key within about a second (2 s at most)."""
    state = request.app.state
    await service.revoke_key(key_id, sessions, state.runtime, state.access_signer)
    return Response(status_code=204)


@me_router.get("/me", response_model=Me)
async def who_am_i(principal: CurrentPrincipal) -> Me:
    """The credential's holder and role (never the credential): how the console knows whom it
    signed in, and which screens to offer."""
    return Me(
        name=principal.name,
        role=principal.role,
        identifier_systems=list(principal.identifier_systems),
    )
