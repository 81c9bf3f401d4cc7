"""Assess a submitted screening with the rule set and announce the result."""

from __future__ import annotations

import dataclasses
import uuid

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.models import Assessment, RuleSetRecord, outbox
from services.risk.rules import RuleSet, RuleSetError
from shared.events import LevelResponseData, RiskAssessed, ScreeningSubmitted, utcnow
from shared.instruments import is_flagged, parse_answers
from shared.kafka import PoisonMessage
from shared.outbox import add_event
from shared.topics import RISK_ASSESSED

_AUTOMATIC = text("kind = 'automatic'")


async def record_ruleset(session: AsyncSession, *, ruleset: RuleSet) -> None:
    """Keep the rule set's content under its version, so every assessment can be re-derived.

    A file edited without a new version would make assessments cite rules they were not
    computed with: that refuses to start instead.
    """
    await session.execute(
        insert(RuleSetRecord)
        .values(version=ruleset.version, content=ruleset.content, first_used_at=utcnow())
        .on_conflict_do_nothing()
    )
    stored = await session.scalar(
        select(RuleSetRecord.content).where(RuleSetRecord.version == ruleset.version)
    )
    if stored != ruleset.content:
        raise RuleSetError(
            f"rule set {ruleset.version!r} differs from the one recorded under that version; "
            "give the changed rule set a new version"
        )


async def assess_screening(
    session: AsyncSession, *, submitted: ScreeningSubmitted, ruleset: RuleSet, correlation_id: str
) -> Assessment | None:
    """Store the automatic assessment and queue its event; None when it already exists."""
    try:
        answers = parse_answers(submitted.instrument, submitted.answers)
    except (ValidationError, ValueError) as exc:
        raise PoisonMessage(f"screening {submitted.screening_id}: answers do not parse") from exc
    result = ruleset.assess(
        submitted.instrument, answers, imminent_danger=submitted.imminent_danger
    )
    assessment = Assessment(
        id=uuid.uuid4(),
        screening_id=submitted.screening_id,
        kind="automatic",
        instrument=submitted.instrument,
        level=str(result.level),
        flagged=is_flagged(result.level),
        reasons=list(result.reasons),
        details=dict(result.details),
        rules_version=ruleset.version,
        assessed_at=utcnow(),
        correlation_id=correlation_id,
    )
    inserted = await session.scalar(
        insert(Assessment)
        .values({c.key: getattr(assessment, c.key) for c in Assessment.__table__.columns})
        # The partial index's predicate as a literal: a bound parameter here lets PostgreSQL
        # infer the index only while it plans each execution afresh; from the sixth execution
        # of the prepared statement on one connection (a generic plan) the insert fails.
        .on_conflict_do_nothing(index_elements=["screening_id"], index_where=_AUTOMATIC)
        .returning(Assessment.id)
    )
    if inserted is None:
        return None
    response = ruleset.response_for(result.level)
    event = RiskAssessed(
        assessment_id=assessment.id,
        screening_id=assessment.screening_id,
        instrument=assessment.instrument,
        level=assessment.level,  # type: ignore[arg-type]
        flagged=assessment.flagged,
        reasons=assessment.reasons,
        rules_version=assessment.rules_version,
        assessed_at=assessment.assessed_at,
        response=LevelResponseData(**dataclasses.asdict(response)),
        details=assessment.details,
    )
    await add_event(
        session,
        outbox,
        topic=RISK_ASSESSED,
        key=assessment.screening_id,
        event=event.envelope(correlation_id=correlation_id),
    )
    return assessment


async def get_assessments(session: AsyncSession, *, screening_id: uuid.UUID) -> list[Assessment]:
    rows = await session.scalars(
        select(Assessment)
        .where(Assessment.screening_id == screening_id)
        .order_by(Assessment.assessed_at)
    )
    return list(rows)
