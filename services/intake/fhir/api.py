"""Intake's FHIR R4 endpoints: screenings in, RiskAssessments out, rest-hooks, capabilities.

Every answer of this router is FHIR: ``application/fhir+json``, and errors are OperationOutcomes
with one issue per problem (``FhirRoute``). The work is in mapping.py (a QuestionnaireResponse
read, pure), service.py (storing it), bundles.py (transaction and batch Bundles), risk.py (the
RiskAssessment) and resthooks.py (pushes to the EHR).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.fhir import resthooks
from services.intake.fhir.bundles import process_bundle
from services.intake.fhir.mapping import response_summary
from services.intake.fhir.models import FhirResponse
from services.intake.fhir.outcomes import FHIR_JSON, FhirError, Issue, operation_outcome
from services.intake.fhir.risk import NotAssessed, risk_assessment
from services.intake.fhir.schemas import SubscriptionIn, SubscriptionOut, subscription_out
from services.intake.fhir.service import created_body, location, prepare, store_one
from services.intake.permissions import ROUTES
from services.intake.screenings.service import get_screening
from shared.auth import CurrentPrincipal, Principal, guarded
from shared.db import transaction
from shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
    validation_problems,
)
from shared.events import utcnow
from shared.http import Session, Sessions
from shared.outbound import require_safe_url

log = logging.getLogger(__name__)

#: Media types a FHIR JSON body may come with (the last is DSTU2's, still sent by some clients).
JSON_TYPES: Final = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
_DOMAIN_ISSUE_CODES: Final = {
    NotFound: "not-found",
    Conflict: "conflict",
    Unprocessable: "invalid",
    Unauthenticated: "login",
    Forbidden: "forbidden",
    TooManyRequests: "throttled",
    ServiceUnavailable: "transient",
}


def outcome_response(
    status: int, issues: list[Issue], headers: dict[str, str] | None = None
) -> Response:
    body = OperationOutcome.model_validate(operation_outcome(issues))
    return Response(body.model_dump_json(exclude_none=True), status, headers, media_type=FHIR_JSON)


def fhir_response(
    resource: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = b"" if resource is None else json.dumps(resource, separators=(",", ":")).encode()
    return Response(content, status, headers, media_type=FHIR_JSON)


class FhirRoute(guarded(ROUTES, error_model=None)):  # type: ignore[misc]
    """A route whose every error is an OperationOutcome, including FastAPI's own 422s and the
    gate's 401 / 403 / 429."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirError as exc:
                return outcome_response(exc.status, exc.issues)
            except DomainError as exc:
                code = _DOMAIN_ISSUE_CODES.get(type(exc), "invalid")
                issues = [Issue(code, exc.detail)] + [
                    Issue(code, f"{p['field']}: {p['problem']}") for p in exc.problems
                ]
                return outcome_response(exc.status_code, issues, exc.headers)
            except RequestValidationError as exc:
                errors = list(exc.errors())
                if any(e.get("type") == "json_invalid" for e in errors):
                    return outcome_response(400, [Issue("structure", "the body is not valid JSON")])
                problems = validation_problems(errors)
                return outcome_response(
                    422, [Issue("invalid", f"{p['field']}: {p['problem']}") for p in problems]
                )

        return route


router = APIRouter(prefix="/v1", route_class=FhirRoute, tags=["fhir"])

IfNoneExist = Annotated[str | None, Header(alias="If-None-Exist", max_length=1000)]
Prefer = Annotated[str | None, Header(alias="Prefer", max_length=200)]
CorrelationHeader = Annotated[str | None, Header(alias="X-Correlation-Id", max_length=200)]


async def _resource_body(request: Request) -> Any:
    """The JSON body of a FHIR request; 415 for another media type, 400 if it is not JSON."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media not in JSON_TYPES:
        raise FhirError.one(415, "not-supported", "send application/fhir+json or application/json")
    try:
        return json.loads(await request.body())
    except ValueError:
        raise FhirError.one(400, "structure", "the body is not valid JSON") from None


# --- create ------------------------------------------------------------------------------------


@router.post(
    "/fhir/QuestionnaireResponse",
    status_code=202,
    responses={200: {"description": "a repeat of an earlier QuestionnaireResponse"}},
)
async def create_questionnaire_response(
    request: Request,
    sessions: Sessions,
    principal: CurrentPrincipal,
    if_none_exist: IfNoneExist = None,
    prefer: Prefer = None,
    correlation_id: CorrelationHeader = None,
) -> Response:
    """A screening from a QuestionnaireResponse: 202 the first time, 200 with the same id after.

    A transaction or batch Bundle posted here is handled as if posted to the base (``/v1/fhir``).
    """
    body = await _resource_body(request)
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        return fhir_response(
            await process_bundle(
                sessions, body, prefer, correlation_id or str(uuid.uuid4()), principal
            )
        )
    prepared = prepare(body, if_none_exist, "QuestionnaireResponse")
    stored = await store_one(sessions, prepared, correlation_id or str(uuid.uuid4()), principal)
    headers = {
        "Location": f"/v1/fhir/{location(stored)}",
        "ETag": 'W/"1"',
        "Last-Modified": stored.screening.received_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    return fhir_response(created_body(stored, prefer), 202 if stored.created else 200, headers)


@router.get("/fhir/QuestionnaireResponse/{screening_id}")
async def read_questionnaire_response(
    screening_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> Response:
    """Our copy, subsetted: identifier, questionnaire, subject and status, not the answers' form."""
    try:
        screening = await get_screening(session, screening_id=screening_id, principal=principal)
    except NotFound:
        raise FhirError.one(404, "not-found", f"no QuestionnaireResponse {screening_id}") from None
    return fhir_response(response_summary(screening, await session.get(FhirResponse, screening_id)))


# --- Bundle ------------------------------------------------------------------------------------


@router.post("/fhir")
async def post_bundle(
    request: Request,
    sessions: Sessions,
    principal: CurrentPrincipal,
    prefer: Prefer = None,
    correlation_id: CorrelationHeader = None,
) -> Response:
    """A transaction (all or nothing) or batch (each entry alone) of QuestionnaireResponses."""
    body = await _resource_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError.one(
            400, "structure", "expected a Bundle of type transaction or batch", "Bundle"
        )
    return fhir_response(
        await process_bundle(sessions, body, prefer, correlation_id or str(uuid.uuid4()), principal)
    )


# --- RiskAssessment ------------------------------------------------------------------------------


async def _risk_assessment(
    session: AsyncSession, screening_id: uuid.UUID, principal: Principal
) -> Response:
    try:
        screening = await get_screening(session, screening_id=screening_id, principal=principal)
    except NotFound:
        raise FhirError.one(404, "not-found", f"no screening {screening_id}") from None
    try:
        resource = risk_assessment(screening, await session.get(FhirResponse, screening_id))
    except NotAssessed:
        return outcome_response(
            404,
            [Issue("not-found", f"screening {screening_id} is not assessed yet; retry shortly")],
            {"Retry-After": "1"},
        )
    return Response(resource.model_dump_json(exclude_none=True), media_type=FHIR_JSON)


@router.get("/screenings/{screening_id}/fhir/RiskAssessment")
async def get_screening_risk_assessment(
    screening_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> Response:
    """The screening's assessment as a FHIR R4 RiskAssessment (404 until it is assessed)."""
    return await _risk_assessment(session, screening_id, principal)


@router.get("/fhir/RiskAssessment/{screening_id}")
async def read_risk_assessment(
    screening_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> Response:
    """The same RiskAssessment, read the FHIR way (its id is the screening's)."""
    return await _risk_assessment(session, screening_id, principal)


# --- rest-hooks --------------------------------------------------------------------------------


@router.post(
    "/fhir/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    response_model_exclude_none=True,
)
async def register_subscription(
    spec: SubscriptionIn,
    request: Request,
    sessions: Sessions,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """Register (or reactivate) a rest-hook: 201 when new (with any generated secret), else 200.

    An ehr credential registers only for one of its own identifier systems; the endpoint must
    pass the SSRF policy (https, a public address: 422 otherwise)."""
    await require_safe_url(request.app.state.runtime.settings, spec.endpoint, field="endpoint")
    async with transaction(sessions) as session:
        sub, created, secret = await resthooks.register(session, spec=spec, principal=principal)
    body = subscription_out(sub, secret=secret).model_dump(mode="json", exclude_none=True)
    return JSONResponse(
        body, 201 if created else 200, headers={"Location": f"/v1/fhir/subscriptions/{sub.id}"}
    )


@router.get("/fhir/subscriptions/{subscription_id}")
async def get_subscription(
    subscription_id: uuid.UUID, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The rest-hook and its latest pushes (never the secret)."""
    sub = await resthooks.get_subscription(
        session, subscription_id=subscription_id, principal=principal
    )
    pushes = await resthooks.recent_pushes(session, subscription_id=subscription_id)
    return {
        **subscription_out(sub).model_dump(mode="json", exclude_none=True),
        "pushes": pushes,
    }


@router.delete("/fhir/subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(
    subscription_id: uuid.UUID, sessions: Sessions, principal: CurrentPrincipal
) -> Response:
    """Stop the rest-hook; pushes not yet delivered are cancelled."""
    async with transaction(sessions) as session:
        await resthooks.deactivate(session, subscription_id=subscription_id, principal=principal)
    return Response(status_code=204)


# --- CapabilityStatement -----------------------------------------------------------------------


def _software_version() -> str:
    try:
        return version("crisis-triage")
    except PackageNotFoundError:
        return "unknown"


@router.get("/fhir/metadata")
async def capability_statement(request: Request) -> Response:
    """What this FHIR endpoint supports, for clients that discover before they post."""
    base = str(request.base_url).rstrip("/") + "/v1/fhir"
    resource = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utcnow().date().isoformat(),
        "publisher": "crisis triage",
        "kind": "instance",
        "software": {"name": "crisis-triage intake", "version": _software_version()},
        "implementation": {
            "description": "Crisis triage intake: screenings in, risk out",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ],
                            "text": "Bearer credential",
                        }
                    ],
                    "description": (
                        "Every interaction but this CapabilityStatement needs Authorization: "
                        "Bearer <credential>: an API key issued by this system, or an access "
                        "token (JWT, RS256/ES256) from the clinic's identity provider when one "
                        "is configured. An ehr credential posts and reads only resources "
                        "identified in its own identifier systems."
                    ),
                },
                "documentation": (
                    "Screenings in as QuestionnaireResponses (PHQ-9, LOINC 44249-1; C-SSRS "
                    "screener, LOINC 93373-9), assessments out as RiskAssessments. Rest-hooks: "
                    "POST /v1/fhir/subscriptions {endpoint, identifier_system, secret?}; each "
                    "RiskAssessment of a screening identified with that system is POSTed to the "
                    "endpoint, signed X-Triage-Signature: v1=<HMAC-SHA256 of "
                    '"<X-Triage-Timestamp>.<body>">, retried with backoff.'
                ),
                "resource": [
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [{"code": "create"}, {"code": "read"}],
                        "conditionalCreate": True,
                        "documentation": (
                            "status completed or amended; items matched by LOINC code in linkId, "
                            "definition or a contained Questionnaire; answers valueCoding (LOINC "
                            "answer codes), valueInteger or valueBoolean. Idempotent on "
                            "identifier; If-None-Exist: identifier=system|value. Read returns a "
                            "SUBSETTED copy."
                        ),
                    },
                    {
                        "type": "RiskAssessment",
                        "interaction": [{"code": "read"}],
                        "documentation": (
                            "id = screening id; also at /v1/screenings/{id}/fhir/RiskAssessment. "
                            "prediction[0].qualitativeRisk: LOINC 93374-7 answers (low, moderate, "
                            "high) and urn:crisis-triage:fhir:risk-level (none..imminent)."
                        ),
                    },
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
    validated = CapabilityStatement.model_validate(resource)
    return Response(validated.model_dump_json(exclude_none=True), media_type=FHIR_JSON)
