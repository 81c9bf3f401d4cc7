"""Assess a submitted screening with the rule set and announce the result."""

from __future__ import annotations

import dataclasses
import json
import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.models import Assessment, RuleSetRecord, outbox
from services.risk.rules import RuleSet, RuleSetError
from shared.db import driver
from shared.events import LevelResponseData, RiskAssessed, ScreeningSubmitted, utcnow
from shared.instruments import parse_answers
from shared.kafka import PoisonMessage
from shared.outbox import add_event_after, event_row
from shared.topics import RISK_ASSESSED, SCREENING_SUBMITTED


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


#: The automatic assessment, at most one per screening, and its event; and the submission's
#: event id among those applied (`triage dlq` asks there), which the consumer does not claim
#: for a submission alone in its poll (`shared.kafka.Idempotent`). The conflict target names
#: the partial index's predicate as a literal: with a bound parameter there, PostgreSQL can
#: infer the index only while it plans each execution afresh; from the sixth execution of the
#: prepared statement on one connection (a generic plan) the insert would fail.
_INSERT_AUTOMATIC = f"""
    WITH applied AS (
        INSERT INTO risk.processed_events (event_id, topic) VALUES ($16, $17)
        ON CONFLICT DO NOTHING
    ), assessment AS (
        INSERT INTO risk.assessments (id, screening_id, kind, instrument, level, flagged, reasons,
                                      details, rules_version, assessed_at, correlation_id)
        VALUES ($1, $2, 'automatic', $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (screening_id) WHERE kind = 'automatic' DO NOTHING
        RETURNING id
    )
    {add_event_after(outbox, "assessment", first_param=11)}
"""


async def assess_screening(
    session: AsyncSession,
    *,
    submitted: ScreeningSubmitted,
    ruleset: RuleSet,
    correlation_id: str,
    event_id: uuid.UUID,
) -> RiskAssessed | None:
    """Store the automatic assessment and queue its event; None when it already exists.

    Every screening passes here, so the insert goes straight to asyncpg (`shared.db.driver`),
    and it is all one statement: without a transaction open (a submission alone in its poll,
    `shared.kafka.Idempotent`) it commits on its own.
    """
    try:
        answers = parse_answers(submitted.instrument, submitted.answers)
    except (ValidationError, ValueError) as exc:
        raise PoisonMessage(f"screening {submitted.screening_id}: answers do not parse") from exc
    result = ruleset.assess(
        submitted.instrument, answers, imminent_danger=submitted.imminent_danger
    )
    assessed = RiskAssessed(
        assessment_id=uuid.uuid4(),
        screening_id=submitted.screening_id,
        instrument=submitted.instrument,
        level=str(result.level),
        flagged=ruleset.flagged(result.level),
        reasons=list(result.reasons),
        rules_version=ruleset.version,
        assessed_at=utcnow(),
        response=LevelResponseData(**dataclasses.asdict(ruleset.response_for(result.level))),
        details=dict(result.details),
        language=submitted.language,
    )
    envelope = assessed.envelope(correlation_id=correlation_id)
    queued = await (await driver(session, begin=False)).fetchval(
        _INSERT_AUTOMATIC,
        assessed.assessment_id,
        assessed.screening_id,
        assessed.instrument,
        assessed.level,
        assessed.flagged,
        json.dumps(assessed.reasons),
        json.dumps(assessed.details),
        assessed.rules_version,
        assessed.assessed_at,
        correlation_id,
        *event_row(topic=RISK_ASSESSED, key=assessed.screening_id, event=envelope),
        event_id,
        SCREENING_SUBMITTED,
    )
    if queued is None:
        return None
    return assessed


async def get_assessments(session: AsyncSession, *, screening_id: uuid.UUID) -> list[Assessment]:
    rows = await session.scalars(
        select(Assessment)
        .where(Assessment.screening_id == screening_id)
        .order_by(Assessment.assessed_at)
    )
    return list(rows)
