"""The Stanley-Brown safety plan a flagged screening opens (clinical-rules.md, last section).

A plan holds the person's own entries per step. For imminent risk it starts with an
emergency-coordination task (988 Lifeline / local emergency services).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import SafetyPlan, outbox
from shared.errors import NotFound
from shared.events import SafetyPlanEvent, utcnow
from shared.outbox import add_event
from shared.topics import SAFETY_PLAN_EVENTS

#: (key, title, required) in the order the plan is used, step by step.
STEPS: tuple[tuple[str, str, bool], ...] = (
    ("warning_signs", "Warning signs that a crisis may be developing", True),
    ("internal_coping", "Internal coping strategies", True),
    ("social_distraction", "People and social settings that provide distraction", True),
    ("help_contacts", "People I can ask for help", True),
    ("professional_contacts", "Professionals or agencies to contact in a crisis", True),
    ("environment_safety", "Making the environment safe", True),
    ("reason_for_living", "The one thing most important to me and worth living for", False),
)

EMERGENCY_TASK_TITLE = "Emergency coordination"
EMERGENCY_TASK_DESCRIPTION = (
    "Contact the 988 Suicide & Crisis Lifeline or local emergency services, and record the outcome."
)


def empty_steps() -> dict[str, Any]:
    return {
        key: {"title": title, "required": required, "entries": [], "not_applicable_reason": None}
        for key, title, required in STEPS
    }


async def open_safety_plan(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    risk_level: str,
    emergency_task: bool,
    due_at: datetime,
    correlation_id: str,
) -> SafetyPlan | None:
    """Open the screening's plan unless it has one; None when it already existed."""
    now = utcnow()
    plan_id = uuid.uuid4()
    task = (
        {
            "title": EMERGENCY_TASK_TITLE,
            "description": EMERGENCY_TASK_DESCRIPTION,
            "status": "open",
            "outcome": None,
        }
        if emergency_task
        else None
    )
    inserted = await session.scalar(
        insert(SafetyPlan)
        .values(
            id=plan_id,
            screening_id=screening_id,
            status="open",
            risk_level=risk_level,
            version=1,
            steps=empty_steps(),
            emergency_task=task,
            due_at=due_at,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[SafetyPlan.screening_id])
        .returning(SafetyPlan.id)
    )
    if inserted is None:
        return None
    event = SafetyPlanEvent(
        plan_id=plan_id,
        screening_id=screening_id,
        status="open",
        risk_level=risk_level,  # type: ignore[arg-type]
        due_at=due_at,
        changed_at=now,
    )
    await add_event(
        session, outbox, topic=SAFETY_PLAN_EVENTS, key=screening_id,
        event=event.envelope(correlation_id=correlation_id, event_type="safety_plan.opened"),
    )
    return await session.get(SafetyPlan, plan_id)


async def get_plan(session: AsyncSession, *, plan_id: uuid.UUID) -> SafetyPlan:
    plan = await session.scalar(select(SafetyPlan).where(SafetyPlan.id == plan_id))
    if plan is None:
        raise NotFound(f"no safety plan {plan_id}")
    return plan


def plan_document(plan: SafetyPlan) -> dict[str, Any]:
    return {
        "id": str(plan.id),
        "screening_id": str(plan.screening_id),
        "status": plan.status,
        "risk_level": plan.risk_level,
        "version": plan.version,
        "due_at": plan.due_at.isoformat(),
        "emergency_task": plan.emergency_task,
        "steps": [{"key": key, **plan.steps[key]} for key, _, _ in STEPS],
        "created_at": plan.created_at.isoformat(),
        "updated_at": plan.updated_at.isoformat(),
    }
