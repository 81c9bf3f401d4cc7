"""The case, kept current from events: an assessment is recorded on its screening (a flagged one
opens the safety plan and the follow-up, an EHR's gets its RiskAssessment pushed back), and
notify's alert events update the case view's copy of each alert. Intake's consumer calls these,
in its transaction.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.cases.queries import RECORD_RISKS, UPSERT_ALERTS
from services.intake.fhir.resthooks import enqueue_pushes, subscriptions_of
from services.intake.follow_ups.service import Policy, open_follow_up
from services.intake.safety_plans.service import open_safety_plan
from shared.db import driver, rounds
from shared.events import AlertEvent, RiskAssessed, utcnow
from shared.kafka import PoisonMessage


async def record_assessments(session: AsyncSession, assessments: list[RiskAssessed]) -> None:
    """Record a poll's assessments on their screenings; an EHR's gets its RiskAssessment pushed
    back to the rest-hooks it registered.

    Every screening passes here, so a poll's assessments are one UPDATE (which takes the rows'
    locks itself) and one look-up of the EHR screenings' rest-hooks, not two statements each. A
    screening assessed twice in the poll takes them in order, in rounds: the later one stands.
    """
    conn = await driver(session)
    now = utcnow()
    from_ehr: list[RiskAssessed] = []
    for batch in rounds(assessments, key=lambda a: a.screening_id):
        rows = await conn.fetch(
            RECORD_RISKS,
            [a.screening_id for a in batch],
            [json.dumps(_risk(a)) for a in batch],
            now,
        )
        sources = {row["id"]: row["source"] for row in rows}
        for assessed in batch:
            if assessed.screening_id not in sources:
                # Screenings commit before their event is published, so this one is not ours.
                raise PoisonMessage(f"assessment for unknown screening {assessed.screening_id}")
            if sources[assessed.screening_id] == "ehr":
                from_ehr.append(assessed)
    if from_ehr:
        listened = await subscriptions_of(session, [a.screening_id for a in from_ehr])
        for assessed in from_ehr:
            if subscriptions := listened.get(assessed.screening_id):
                await enqueue_pushes(
                    session,
                    screening_id=assessed.screening_id,
                    assessment_id=assessed.assessment_id,
                    subscriptions=subscriptions,
                )


def _risk(assessed: RiskAssessed) -> dict[str, Any]:
    """The assessment as the case keeps it (the screening's `risk`)."""
    return {
        "level": assessed.level,
        "flagged": assessed.flagged,
        "reasons": assessed.reasons,
        "rules_version": assessed.rules_version,
        "assessed_at": assessed.assessed_at.isoformat(),
        "details": assessed.details,
    }


async def open_case_work(
    session: AsyncSession,
    *,
    assessed: RiskAssessed,
    due_minutes: dict[str, int],
    correlation_id: str,
    follow_up: Policy | None = None,
) -> None:
    """A flagged assessment opens the screening's safety plan and its follow-up (after
    `record_assessments` recorded it, in the same transaction); any other does nothing."""
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


async def apply_alert_events(session: AsyncSession, events: list[AlertEvent]) -> None:
    """Upsert the case view's copy of each alert; an older state never overwrites a newer one,
    ordered by the alert's version (by time only for events without one). One statement for a
    poll's events (in rounds when one alert changed more than once in it, in order)."""
    conn = await driver(session)
    for batch in rounds(events, key=lambda e: e.alert_id):
        await conn.execute(
            UPSERT_ALERTS,
            [e.alert_id for e in batch],
            [e.screening_id for e in batch],
            [e.status for e in batch],
            [e.risk_level for e in batch],
            [e.urgency for e in batch],
            [e.escalation_level for e in batch],
            [e.created_at for e in batch],
            [e.changed_at for e in batch],
            [e.version for e in batch],
            [e.interpreter_needed for e in batch],
        )
