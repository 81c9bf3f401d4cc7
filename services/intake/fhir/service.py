"""FHIR screenings stored: a QuestionnaireResponse checked and mapped (mapping.py, pure), then
stored through intake's own submit path with where it came from, in the caller's transaction.

A transaction or batch Bundle (bundles.py) stores each entry through here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.fhir.mapping import (
    FhirIdentifier,
    MappedResponse,
    if_none_exist_identifier,
    map_questionnaire_response,
    parse_questionnaire_response,
    response_summary,
    screening_payload,
)
from services.intake.fhir.models import FhirResponse
from services.intake.fhir.outcomes import FhirError, Issue, operation_outcome
from services.intake.screenings.models import Screening
from services.intake.screenings.schemas import ScreeningIn
from services.intake.screenings.scope import replay_scope
from services.intake.screenings.service import ConcurrentDuplicate, submit_screening
from shared.auth import Principal, Visibility
from shared.db import SessionFactory, transaction
from shared.errors import Conflict


async def submit_fhir_screening(
    session: AsyncSession,
    *,
    mapped: MappedResponse,
    payload: ScreeningIn,
    answers: dict[str, Any],
    conditional: FhirIdentifier | None,
    correlation_id: str,
    principal: Principal,
) -> tuple[Screening, bool]:
    """Store the screening and its FHIR source in the caller's transaction; (screening, created).

    It is filed under its identifier's system; an ehr credential may post (and so match with
    ``If-None-Exist``) only resources identified in one of its own systems: 403 otherwise.

    ``If-None-Exist`` is a conditional create: a match is returned whatever the body says. Without
    it the identifier is the screening's ``external_id``, whose replay rules are intake's own (the
    same content returns the first screening, different content under one identifier is 409).
    Both look only in the caller's replay scope (``scope.replay_scope``: an ehr credential's the
    identifier's system, anyone else's its own credential), never at another caller's screenings.
    """
    identifier = mapped.identifier or conditional
    if principal.visibility == Visibility.SYSTEMS:
        systems = {i.system for i in (mapped.identifier, conditional) if i is not None}
        if not systems or not systems <= set(principal.identifier_systems):
            raise FhirError.one(
                403,
                "forbidden",
                "this credential posts only resources with an identifier in its own systems",
            )
    if conditional is not None:
        # In the caller's replay scope only, as a replay is (scope.replay_scope).
        existing = await session.scalar(
            select(Screening).where(
                Screening.replay_scope
                == replay_scope(principal, identifier.system if identifier else None),
                Screening.source == "ehr",
                Screening.external_id == conditional.external_id,
            )
        )
        if existing is not None:
            return existing, False
    try:
        screening, created = await submit_screening(
            session,
            payload=payload,
            answers=answers,
            idempotency_key=None,
            correlation_id=correlation_id,
            principal=principal,
            filed_under=identifier.system if identifier else None,
        )
    except Conflict:
        raise FhirError.one(
            409,
            "conflict",
            "this identifier was already used for a different QuestionnaireResponse",
        ) from None
    if created:
        session.add(
            FhirResponse(
                screening_id=screening.id,
                identifier_system=identifier.system if identifier else None,
                identifier_value=identifier.value if identifier else None,
                resource_id=mapped.resource_id,
                questionnaire=mapped.questionnaire,
                status=mapped.status,
                authored=mapped.authored,
                subject=mapped.subject,
                created_at=screening.received_at,
            )
        )
        await session.flush()
    return screening, created


@dataclass(frozen=True)
class Prepared:
    """A QuestionnaireResponse checked and mapped, ready to store."""

    mapped: MappedResponse
    payload: ScreeningIn
    answers: dict[str, Any]
    conditional: FhirIdentifier | None


@dataclass(frozen=True)
class Stored:
    screening: Screening
    created: bool
    source: FhirResponse | None


def prepare(resource: Any, if_none_exist: str | None, where: str) -> Prepared:
    conditional = if_none_exist_identifier(if_none_exist)
    mapped = map_questionnaire_response(
        parse_questionnaire_response(resource, where=where), where=where
    )
    payload, answers = screening_payload(mapped, conditional=conditional)
    return Prepared(mapped, payload, answers, conditional)


async def store(
    session: AsyncSession, prepared: Prepared, correlation_id: str, principal: Principal
) -> Stored:
    screening, created = await submit_fhir_screening(
        session,
        mapped=prepared.mapped,
        payload=prepared.payload,
        answers=prepared.answers,
        conditional=prepared.conditional,
        correlation_id=correlation_id,
        principal=principal,
    )
    return Stored(screening, created, await session.get(FhirResponse, screening.id))


async def store_one(
    sessions: SessionFactory, prepared: Prepared, correlation_id: str, principal: Principal
) -> Stored:
    for attempt in (1, 2):
        try:
            async with transaction(sessions) as session:
                return await store(session, prepared, correlation_id, principal)
        except (IntegrityError, ConcurrentDuplicate):
            if attempt == 2:
                raise
            # A concurrent post of the same identifier won; the retry finds it as a replay.
    raise AssertionError("unreachable")


def location(stored: Stored) -> str:
    return f"QuestionnaireResponse/{stored.screening.id}"


def created_body(stored: Stored, prefer: str | None) -> dict[str, Any] | None:
    """What ``Prefer: return=…`` asks for; the (subsetted) resource by default."""
    wanted = (prefer or "").replace(" ", "").lower()
    if "return=minimal" in wanted:
        return None
    if "return=operationoutcome" in wanted:
        what = "created" if stored.created else "already exists: the first screening is returned"
        issue = Issue(
            "informational", f"screening {stored.screening.id} {what}", severity="information"
        )
        return operation_outcome([issue])
    return response_summary(stored.screening, stored.source)
