"""What a safety plan is and says: its steps (Stanley-Brown, in the order they are used), the
document a plan is read as, and what still stands between it and completion. Pure: no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_

from services.intake.safety_plans.models import SafetyPlan
from shared.events import utcnow

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
STEP_KEYS: tuple[str, ...] = tuple(key for key, _, _ in STEPS)

#: A plan is a short, prioritised list the person can use in a crisis, not a journal.
MAX_ENTRIES_PER_STEP = 20


def empty_steps() -> dict[str, Any]:
    return {
        key: {"title": title, "required": required, "entries": [], "not_applicable_reason": None}
        for key, title, required in STEPS
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plan_snapshot(plan: SafetyPlan) -> dict[str, Any]:
    """The plan as stored at its current version: what a revision keeps."""
    return {
        "id": str(plan.id),
        "screening_id": str(plan.screening_id),
        "status": plan.status,
        "risk_level": plan.risk_level,
        "version": plan.version,
        "due_at": plan.due_at.isoformat(),
        "emergency_task": plan.emergency_task,
        "steps": [{"key": key, **plan.steps[key]} for key in STEP_KEYS],
        "reviewed_by": plan.reviewed_by,
        "reviewed_at": _iso(plan.reviewed_at),
        "review_note": plan.review_note,
        "completed_by": plan.completed_by,
        "completed_at": _iso(plan.completed_at),
        "created_at": plan.created_at.isoformat(),
        "updated_at": plan.updated_at.isoformat(),
    }


def is_overdue(plan: SafetyPlan, now: datetime | None = None) -> bool:
    return plan.status == "open" and plan.due_at < (now or utcnow())


def overdue_at(now: datetime) -> ColumnElement[bool]:
    """`is_overdue` as SQL, for lists: the same rule (open, and past its due time)."""
    return and_(SafetyPlan.status == "open", SafetyPlan.due_at < now)


def completion_problems(plan: SafetyPlan) -> list[dict[str, str]]:
    """What still stands between the plan and `complete` (empty when it may be completed)."""
    problems = []
    task = plan.emergency_task
    if task is not None and task.get("status") == "open":
        problems.append(
            {
                "field": "emergency_task",
                "problem": "emergency coordination is open: complete it with the outcome, "
                "or decline it with a reason",
            }
        )
    for key, _, required in STEPS:
        step = plan.steps[key]
        if required and not step["entries"] and not step["not_applicable_reason"]:
            problems.append({"field": f"steps.{key}", "problem": "no entry and no reason why not"})
    if plan.reviewed_at is None:
        problems.append(
            {"field": "review", "problem": "not reviewed by a clinician since the last change"}
        )
    return problems


def plan_document(plan: SafetyPlan, now: datetime | None = None) -> dict[str, Any]:
    """What `GET /v1/safety-plans/{id}` answers: the snapshot, plus what follows from it now."""
    return {
        **plan_snapshot(plan),
        "overdue": is_overdue(plan, now),
        "overdue_notified_at": _iso(plan.overdue_notified_at),
        "outstanding": completion_problems(plan) if plan.status == "open" else [],
    }
