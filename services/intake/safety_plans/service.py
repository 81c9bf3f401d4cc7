"""The Stanley-Brown safety plan a flagged screening opens (clinical-rules.md, last section).

A plan holds the person's own entries per step. For imminent risk it starts with an
emergency-coordination task: reach the crisis line or emergency services of the person's country
(`crisis_resources`, in the person's language first; the plan's JSON and printed copy list them).

The plan is a workflow, not a record: every change takes the plan's row lock, checks the version
the writer last saw (optimistic concurrency: a stale write is refused, never merged blindly),
bumps the version, appends a revision (who, when, what, and the whole plan after it) and queues a
`safety_plan.*` event, all in the caller's transaction. Events carry ids, level, status and due
time, never an entry: entries are the person's own words (PHI). Functions here only flush.

What a plan says is document.py, its reads queries.py, the overdue claim overdue.py.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from services.intake.db import outbox, sealed
from services.intake.safety_plans.document import (
    MAX_ENTRIES_PER_STEP,
    STEP_KEYS,
    completion_problems,
    empty_steps,
    plan_snapshot,
)
from services.intake.safety_plans.models import SafetyPlan, SafetyPlanRevision
from services.intake.safety_plans.queries import OPEN_PLAN, scoped
from shared.db import driver
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.events import SafetyPlanEvent, utcnow
from shared.outbox import add_event
from shared.phi import ring_of
from shared.topics import SAFETY_PLAN_EVENTS

_STEPS, _TASK, _ = sealed("safety_plans")
_DIFF, _SNAPSHOT = sealed("safety_plan_revisions")

EMERGENCY_TASK_TITLE = "Emergency coordination"
#: No number here: the numbers are the person's country's, listed with the plan
#: (`crisis_resources` in its JSON, the printed copy).
EMERGENCY_TASK_DESCRIPTION = (
    "Contact the crisis line or emergency services of the person's country (listed with the"
    " plan), and record the outcome."
)
#: Who may review a plan and change its due time.
CLINICAL_ROLES = frozenset({"clinician", "supervisor", "admin"})
#: The furthest a clinician may move a due time; a plan is built during or soon after the call.
MAX_DUE_EXTENSION = timedelta(days=30)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a person's identifier and the role they act in."""

    name: str
    role: str


SYSTEM = Actor("system", "system")


@dataclass(frozen=True)
class Write:
    """One change request: which plan, the version its writer last saw, and who writes."""

    plan_id: uuid.UUID
    version: int
    actor: Actor
    #: The screenings the writer may see (`scope.visible`): a plan outside them is not found.
    visible: ColumnElement[bool] = field(default_factory=true)


class StaleVersion(Conflict):
    code = "stale_version"


class PlanComplete(Conflict):
    code = "plan_complete"


class PlanIncomplete(Conflict):
    code = "plan_incomplete"


async def publish(
    session: AsyncSession,
    plan: SafetyPlan,
    event_type: str,
    *,
    action: str | None = None,
    at: datetime | None = None,
) -> None:
    event = SafetyPlanEvent(
        plan_id=plan.id,
        screening_id=plan.screening_id,
        status=plan.status,
        risk_level=plan.risk_level,
        due_at=plan.due_at,
        changed_at=at or plan.updated_at,
        version=plan.version,
        action=action,
    )
    await add_event(
        session,
        outbox,
        topic=SAFETY_PLAN_EVENTS,
        key=plan.screening_id,
        event=event.envelope(
            correlation_id=plan.correlation_id or str(plan.screening_id), event_type=event_type
        ),
    )


async def open_safety_plan(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    risk_level: str,
    emergency_task: bool,
    due_at: datetime,
    correlation_id: str,
) -> SafetyPlan | None:
    """Open the screening's plan unless it has one; None when it already existed.

    Every flagged screening passes here, so the plan goes in straight through asyncpg; the
    returned plan is not attached to the session.
    """
    now = utcnow()
    task = (
        {
            "title": EMERGENCY_TASK_TITLE,
            "description": EMERGENCY_TASK_DESCRIPTION,
            "status": "open",
            "outcome": None,
            "declined_reason": None,
            "closed_by": None,
            "closed_at": None,
        }
        if emergency_task
        else None
    )
    plan = SafetyPlan(
        id=uuid.uuid4(),
        screening_id=screening_id,
        status="open",
        risk_level=risk_level,
        version=1,
        steps=empty_steps(),
        emergency_task=task,
        due_at=due_at,
        created_at=now,
        updated_at=now,
        correlation_id=correlation_id,
    )
    ring, revision = ring_of(session), {"plan_id": plan.id, "version": 1}
    opened = await (await driver(session)).fetchval(
        OPEN_PLAN,
        plan.id,
        screening_id,
        risk_level,
        _STEPS.seal(ring, plan, plan.steps),
        _TASK.seal(ring, plan, task),
        due_at,
        now,
        correlation_id,
        SYSTEM.name,
        SYSTEM.role,
        _SNAPSHOT.seal(ring, revision, plan_snapshot(plan)),
        _DIFF.seal(ring, revision, {}),
    )
    if opened is None:
        return None
    await publish(session, plan, "safety_plan.opened")
    return plan


# --- changes: each one locks, checks the version, mutates, and records a revision -------------


async def _lock(session: AsyncSession, write: Write) -> SafetyPlan:
    """The plan under its row lock, if the writer saw its current version and it is still open."""
    plan = await session.scalar(
        scoped(write.plan_id, write.visible)
        .with_for_update(of=SafetyPlan)
        .execution_options(populate_existing=True)
    )
    if plan is None:
        raise NotFound(f"no safety plan {write.plan_id}")
    if plan.status == "complete":
        raise PlanComplete("the safety plan is complete; it can be read, not changed")
    if plan.version != write.version:
        raise StaleVersion(
            f"the safety plan is at version {plan.version}, not {write.version}: "
            "reload it and apply the change again",
            problems=[{"field": "version", "problem": f"current version is {plan.version}"}],
        )
    return plan


async def _record(
    session: AsyncSession,
    plan: SafetyPlan,
    write: Write,
    *,
    action: str,
    diff: dict[str, Any],
    event_type: str = "safety_plan.revised",
) -> SafetyPlan:
    now = utcnow()
    plan.version += 1
    plan.updated_at = now
    session.add(
        SafetyPlanRevision(
            plan_id=plan.id,
            version=plan.version,
            actor=write.actor.name,
            role=write.actor.role,
            action=action,
            diff=diff,
            snapshot=plan_snapshot(plan),
            at=now,
        )
    )
    await publish(session, plan, event_type, action=action)
    await session.flush()
    return plan


def _clear_review(plan: SafetyPlan, diff: dict[str, Any]) -> None:
    """A change to what the person will use voids the clinician's review of the earlier text."""
    if plan.reviewed_at is not None:
        diff["review_cleared"] = {"by": plan.reviewed_by, "at": plan.reviewed_at.isoformat()}
        plan.reviewed_by = plan.reviewed_at = plan.review_note = None


def _step(steps: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in steps:
        raise NotFound(
            "no such step; the steps are " + ", ".join(STEP_KEYS),
            problems=[{"field": "step", "problem": "unknown step"}],
        )
    step: dict[str, Any] = steps[key]
    return step


def _entry_index(step: dict[str, Any], entry_id: str) -> int:
    for i, entry in enumerate(step["entries"]):
        if entry["id"] == entry_id:
            return i
    raise NotFound(
        "no such entry in this step", problems=[{"field": "entry_id", "problem": "unknown entry"}]
    )


async def _change_step(
    session: AsyncSession,
    write: Write,
    step_key: str,
    action: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> SafetyPlan:
    """Apply `change(step) -> diff` to a copy of one step, then store it as a new revision."""
    plan = await _lock(session, write)
    steps = copy.deepcopy(plan.steps)
    diff: dict[str, Any] = {"step": step_key, **change(_step(steps, step_key))}
    plan.steps = steps
    flag_modified(plan, "steps")
    _clear_review(plan, diff)
    return await _record(session, plan, write, action=action, diff=diff)


async def add_entry(
    session: AsyncSession, write: Write, *, step: str, text: str
) -> tuple[SafetyPlan, str]:
    """Add the person's words as the step's last entry; returns the plan and the entry's id."""
    entry_id = secrets.token_hex(6)

    def change(s: dict[str, Any]) -> dict[str, Any]:
        if s["not_applicable_reason"]:
            raise Unprocessable(
                "the step is marked not applicable: clear that first, then add entries",
                problems=[{"field": "step", "problem": "marked not applicable"}],
            )
        if len(s["entries"]) >= MAX_ENTRIES_PER_STEP:
            raise Unprocessable(
                f"a step holds at most {MAX_ENTRIES_PER_STEP} entries",
                problems=[{"field": "text", "problem": "too many entries in this step"}],
            )
        s["entries"].append({"id": entry_id, "text": text})
        return {"entry_id": entry_id, "text": text}

    plan = await _change_step(session, write, step, "entry_added", change)
    return plan, entry_id


async def edit_entry(
    session: AsyncSession, write: Write, *, step: str, entry_id: str, text: str
) -> SafetyPlan:
    def change(s: dict[str, Any]) -> dict[str, Any]:
        entry = s["entries"][_entry_index(s, entry_id)]
        before, entry["text"] = entry["text"], text
        return {"entry_id": entry_id, "from": before, "to": text}

    return await _change_step(session, write, step, "entry_edited", change)


async def remove_entry(
    session: AsyncSession, write: Write, *, step: str, entry_id: str
) -> SafetyPlan:
    def change(s: dict[str, Any]) -> dict[str, Any]:
        removed = s["entries"].pop(_entry_index(s, entry_id))
        return {"entry_id": entry_id, "text": removed["text"]}

    return await _change_step(session, write, step, "entry_removed", change)


async def reorder_entries(
    session: AsyncSession, write: Write, *, step: str, entry_ids: list[str]
) -> SafetyPlan:
    """Put the step's entries in the given order (the person's priority); all ids, each once."""

    def change(s: dict[str, Any]) -> dict[str, Any]:
        current = [e["id"] for e in s["entries"]]
        if sorted(current) != sorted(entry_ids):
            raise Unprocessable(
                "the new order must list every entry of the step exactly once",
                problems=[{"field": "entry_ids", "problem": "not the step's entries, each once"}],
            )
        by_id = {e["id"]: e for e in s["entries"]}
        s["entries"] = [by_id[i] for i in entry_ids]
        return {"from": current, "to": list(entry_ids)}

    return await _change_step(session, write, step, "entries_reordered", change)


async def mark_not_applicable(
    session: AsyncSession, write: Write, *, step: str, reason: str
) -> SafetyPlan:
    """Record why a step has no entry; only an empty step can be 'not applicable'."""

    def change(s: dict[str, Any]) -> dict[str, Any]:
        if s["entries"]:
            raise Unprocessable(
                "a step with entries is not 'not applicable': remove its entries first",
                problems=[{"field": "step", "problem": "has entries"}],
            )
        before, s["not_applicable_reason"] = s["not_applicable_reason"], reason
        return {"reason": reason, "previous_reason": before}

    return await _change_step(session, write, step, "step_not_applicable", change)


async def clear_not_applicable(session: AsyncSession, write: Write, *, step: str) -> SafetyPlan:
    def change(s: dict[str, Any]) -> dict[str, Any]:
        if not s["not_applicable_reason"]:
            raise Unprocessable(
                "the step is not marked not applicable",
                problems=[{"field": "step", "problem": "not marked not applicable"}],
            )
        before, s["not_applicable_reason"] = s["not_applicable_reason"], None
        return {"reason": before}

    return await _change_step(session, write, step, "step_not_applicable_cleared", change)


async def close_emergency_task(
    session: AsyncSession,
    write: Write,
    *,
    status: str,
    outcome: str | None = None,
    reason: str | None = None,
) -> SafetyPlan:
    """Record emergency coordination as `completed` (with the outcome) or `declined` (why)."""
    needed = {"completed": ("outcome", outcome), "declined": ("reason", reason)}
    if status not in needed:
        raise Unprocessable(
            "emergency coordination is completed or declined",
            problems=[{"field": "status", "problem": "must be completed or declined"}],
        )
    field, value = needed[status]
    if not value:
        raise Unprocessable(
            f"{status} emergency coordination needs its {field}",
            problems=[{"field": field, "problem": f"required when status is {status}"}],
        )
    plan = await _lock(session, write)
    if plan.emergency_task is None:
        raise Conflict("this plan has no emergency-coordination task (only imminent-risk plans do)")
    task = dict(plan.emergency_task)
    diff: dict[str, Any] = {"status": {"from": task.get("status"), "to": status}}
    task.update(
        status=status,
        outcome=outcome if status == "completed" else None,
        declined_reason=reason if status == "declined" else None,
        closed_by=write.actor.name,
        closed_at=utcnow().isoformat(),
    )
    diff.update(outcome=task["outcome"], declined_reason=task["declined_reason"])
    plan.emergency_task = task
    _clear_review(plan, diff)
    return await _record(session, plan, write, action=f"emergency_task_{status}", diff=diff)


def _require_clinical(actor: Actor, what: str) -> None:
    if actor.role not in CLINICAL_ROLES:
        raise Forbidden(f"only a clinician (or an admin) may {what}")


async def review(session: AsyncSession, write: Write, *, note: str | None) -> SafetyPlan:
    """A clinician's review of the plan as it is at `version`; a later change voids it."""
    _require_clinical(write.actor, "review a safety plan")
    plan = await _lock(session, write)
    now = utcnow()
    plan.reviewed_by, plan.reviewed_at, plan.review_note = write.actor.name, now, note
    diff = {"reviewed_version": write.version, "note": note}
    return await _record(session, plan, write, action="reviewed", diff=diff)


async def change_due(session: AsyncSession, write: Write, *, due_at: datetime) -> SafetyPlan:
    """A clinician moves the due time (a revision). The overdue event still fires at most once."""
    _require_clinical(write.actor, "change a safety plan's due time")
    plan = await _lock(session, write)
    if not plan.created_at <= due_at <= utcnow() + MAX_DUE_EXTENSION:
        raise Unprocessable(
            "the due time must be between the plan's opening and 30 days from now",
            problems=[{"field": "due_at", "problem": "out of range"}],
        )
    diff = {"from": plan.due_at.isoformat(), "to": due_at.isoformat()}
    plan.due_at = due_at
    return await _record(session, plan, write, action="due_changed", diff=diff)


async def complete(session: AsyncSession, write: Write) -> SafetyPlan:
    """Close the plan: every step answered, emergency coordination closed, a clinician's review."""
    plan = await _lock(session, write)
    problems = completion_problems(plan)
    if problems:
        raise PlanIncomplete(
            f"the safety plan cannot be completed yet: {len(problems)} thing(s) outstanding",
            problems=problems,
        )
    plan.status = "complete"
    plan.completed_by, plan.completed_at = write.actor.name, utcnow()
    return await _record(
        session, plan, write, action="completed", diff={}, event_type="safety_plan.completed"
    )
