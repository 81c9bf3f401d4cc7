"""The case, kept current from events: an assessment is recorded on its screening (a flagged one
opens the safety plan and the follow-up, an EHR's gets its RiskAssessment pushed back), and
notify's alert events update the case view's copy of each alert. Intake's consumer calls these,
in its transaction.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.cases.queries import RECORD_RISK, UPSERT_ALERT
from services.intake.fhir.resthooks import enqueue_pushes
from services.intake.follow_ups.service import Policy, open_follow_up
from services.intake.safety_plans.service import open_safety_plan
from shared.db import driver
from shared.events import AlertEvent, RiskAssessed, utcnow
from shared.kafka import PoisonMessage


async def apply_assessment(
    session: AsyncSession,
    *,
    assessed: RiskAssessed,
    due_minutes: dict[str, int],
    correlation_id: str,
    follow_up: Policy | None = None,
) -> None:
    """Record the assessment on the case; a flagged one opens the safety plan.

    Every screening passes here: the case update goes straight to asyncpg, one UPDATE that takes
    the row lock itself (no separate SELECT ... FOR UPDATE through the ORM).
    """
    risk = {
        "level": assessed.level,
        "flagged": assessed.flagged,
        "reasons": assessed.reasons,
        "rules_version": assessed.rules_version,
        "assessed_at": assessed.assessed_at.isoformat(),
        "details": assessed.details,
    }
    source = await (await driver(session)).fetchval(
        RECORD_RISK, assessed.screening_id, json.dumps(risk), utcnow()
    )
    if source is None:
        # Screenings commit before their event is published, so this one is not ours.
        raise PoisonMessage(f"assessment for unknown screening {assessed.screening_id}")
    if source == "ehr":
        # An EHR that registered a rest-hook gets the RiskAssessment back (queued in this
        # transaction).
        await enqueue_pushes(
            session, screening_id=assessed.screening_id, assessment_id=assessed.assessment_id
        )
    if assessed.flagged and assessed.response.safety_plan:
        minutes = due_minutes.get(assessed.level, due_minutes.get("moderate", 1440))
        await open_safety_plan(
            session,
            screening_id=assessed.screening_id,
            risk_level=assessed.level,
            emergency_task=assessed.response.emergency_task,
            due_at=assessed.assessed_at + timedelta(minutes=minutes),
            correlation_id=correlation_id,
        )
    if assessed.flagged and follow_up is not None:
        # Nobody flagged is left alone after the call: one follow-up per screening.
        await open_follow_up(
            session,
            screening_id=assessed.screening_id,
            risk_level=assessed.level,
            start=assessed.assessed_at,
            policy=follow_up,
            correlation_id=correlation_id,
        )


async def apply_alert_event(session: AsyncSession, *, event: AlertEvent) -> None:
    """Upsert the case view's copy of an alert; an older state never overwrites a newer one,
    ordered by the alert's version (by time only for events without one)."""
    await (await driver(session)).execute(
        UPSERT_ALERT,
        event.alert_id,
        event.screening_id,
        event.status,
        event.risk_level,
        event.urgency,
        event.escalation_level,
        event.created_at,
        event.changed_at,
        event.version,
        event.interpreter_needed,
    )
