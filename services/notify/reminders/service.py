"""Reminders to the on-call clinician when a safety plan passes its due time still open.

Intake announces `safety_plan.overdue` once per plan on triage.safety-plan.events.v1. Here the
announcement becomes one reminder row, unique per plan, so a redelivered (or re-announced) event
adds nothing; the sender (sender.py) sends it.

A reminder carries ids, the level and the due time, never an entry of the plan (PHI).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.reminders.models import Reminder
from shared.events import Envelope, FollowUpEvent, SafetyPlanEvent, utcnow

KIND = "safety_plan_overdue"
#: Follow-ups after the call (intake's triage.follow-up.events.v1): one past its due time with
#: no attempt (for the team), and one nobody could reach (for the supervisor).
FOLLOW_UP_KINDS = {
    "follow_up.overdue": "follow_up_overdue",
    "follow_up.unreachable": "follow_up_unreachable",
}


async def record_overdue(
    session: AsyncSession, *, event: SafetyPlanEvent, correlation_id: str
) -> bool:
    """One reminder per plan, due now; False when the plan already has one."""
    return await _remind(
        session,
        kind=KIND,
        notice_id=event.plan_id,
        screening_id=event.screening_id,
        risk_level=event.risk_level,
        due_at=event.due_at or event.changed_at,
        correlation_id=correlation_id,
    )


async def _remind(
    session: AsyncSession,
    *,
    kind: str,
    notice_id: uuid.UUID,
    screening_id: uuid.UUID,
    risk_level: str,
    due_at: datetime,
    correlation_id: str,
) -> bool:
    """A reminder of `kind`, due now; one per notice (the row's `plan_id` holds the plan's or the
    notice's id, unique), so a redelivery adds nothing: False then."""
    now = utcnow()
    inserted = await session.scalar(
        insert(Reminder)
        .values(
            id=uuid.uuid4(),
            kind=kind,
            plan_id=notice_id,
            screening_id=screening_id,
            risk_level=risk_level,
            plan_due_at=due_at,
            status="pending",
            attempts=0,
            due_at=now,
            created_at=now,
            correlation_id=correlation_id,
        )
        .on_conflict_do_nothing(index_elements=[Reminder.plan_id])
        .returning(Reminder.id)
    )
    return inserted is not None


async def on_safety_plan_event(session: AsyncSession, envelope: Envelope) -> None:
    """The consumer's handler for triage.safety-plan.events.v1: only `overdue` pages anyone."""
    if envelope.type != "safety_plan.overdue":
        return
    event = SafetyPlanEvent.model_validate(envelope.data)
    await record_overdue(session, event=event, correlation_id=envelope.correlation_id)


async def on_follow_up_event(session: AsyncSession, envelope: Envelope) -> None:
    """Overdue and unreachable follow-ups remind people as an overdue plan does: one reminder per
    notice (the row's `plan_id` holds the notice's id, unique), so a redelivery adds nothing."""
    kind = FOLLOW_UP_KINDS.get(envelope.type)
    if kind is None:
        return
    event = FollowUpEvent.model_validate(envelope.data)
    await _remind(
        session,
        kind=kind,
        notice_id=event.notice_id,
        screening_id=event.screening_id,
        risk_level=event.risk_level,
        due_at=event.due_at or event.changed_at,
        correlation_id=envelope.correlation_id,
    )
