"""The screening's route: `POST /v1/screenings`; thin, the work is in service.py. (The case
view and the worklist, `GET /v1/screenings…`, are `cases/api.py`.)"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError

from services.intake.permissions import ROUTES
from services.intake.screenings.schemas import ScreeningAccepted, ScreeningIn
from services.intake.screenings.scope import owns_identifier
from services.intake.screenings.service import (
    ConcurrentDuplicate,
    submit_screening,
    validated_answers,
)
from shared.auth import CurrentPrincipal, Visibility, guarded
from shared.db import transaction
from shared.errors import Forbidden, Unprocessable
from shared.http import Sessions, model_response

router = APIRouter(prefix="/v1", route_class=guarded(ROUTES))

IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
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
) -> Response:
    """Accept a screening; 202 the first time, 200 with the same id for a replay."""
    if principal.visibility == Visibility.SUBMITTED and payload.source != "hotline":
        # An EHR's (source, external_id) is how its messages are deduplicated: a hotline key
        # must not be able to claim one first.
        raise Forbidden("a hotline credential submits screenings with source hotline")
    if (
        principal.visibility == Visibility.SYSTEMS
        and payload.external_id is not None
        and not owns_identifier(principal, payload.external_id)
    ):
        # Never another EHR's identifier: system|value in one of the credential's own systems
        # (a plain value is its own, filed under its first system).
        raise Forbidden(
            "an ehr credential's external_id names a system that is not one of its own"
            " (use system|value in one of its systems, or a plain value)"
        )
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
                    default_country=request.app.state.runtime.settings.default_country,
                )
            break
        except (IntegrityError, ConcurrentDuplicate):
            if attempt == 2:
                raise
            # A concurrent request with the same key or external_id won; the retry finds it.
    location = f"/v1/screenings/{screening.id}"
    body = ScreeningAccepted(id=screening.id, status=screening.status)
    return model_response(body, status_code=202 if created else 200, headers={"Location": location})
