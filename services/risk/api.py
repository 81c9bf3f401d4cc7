"""Risk's HTTP surface: the rule set in force and a screening's assessments (read-only)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from services.risk.permissions import ROUTES
from services.risk.service import get_assessments
from shared import audit
from shared.auth import guarded
from shared.errors import NotFound
from shared.http import Session

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))


@router.get("/rulesets/current")
async def current_ruleset(request: Request) -> dict[str, Any]:
    ruleset = request.app.state.ruleset
    return {"version": ruleset.version, "content": ruleset.content}


@router.get("/assessments", responses={404: {"description": "no assessment of that screening"}})
async def assessments_of(screening_id: uuid.UUID, session: Session) -> list[dict[str, Any]]:
    audit.about(f"screening/{screening_id}")  # a query parameter: the guard names the collection
    rows = await get_assessments(session, screening_id=screening_id)
    if not rows:
        raise NotFound(f"no assessment for screening {screening_id}")
    return [
        {
            "id": str(a.id),
            "screening_id": str(a.screening_id),
            "kind": a.kind,
            "level": a.level,
            "flagged": a.flagged,
            "reasons": a.reasons,
            "details": a.details,
            "rules_version": a.rules_version,
            "assessed_at": a.assessed_at.isoformat(),
        }
        for a in rows
    ]
