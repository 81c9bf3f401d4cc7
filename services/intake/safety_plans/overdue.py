"""The overdue watcher: one `safety_plan.overdue` event per plan that passes its due time open.

It sleeps until the earliest due time of an open plan, not in a polling loop. A trigger on
`intake.safety_plans` sends a NOTIFY when a plan is opened, completed or its due time changes,
so every replica recomputes its sleep the moment the earliest due time may have moved. The claim
itself (`claim_overdue`) marks the plan and queues the event in one transaction with
`FOR UPDATE SKIP LOCKED`: with several replicas awake at once, each plan is announced once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.safety_plans.models import SafetyPlan
from services.intake.safety_plans.service import publish
from shared.events import utcnow
from shared.runtime import Runtime
from shared.wakeup import DueWatcher

#: The channel the safety_plans trigger signals on (migrations/0002_safety_plan_revisions.sql).
SAFETY_PLANS_CHANNEL = "intake_safety_plans"


async def claim_overdue(session: AsyncSession, *, limit: int = 100) -> list[SafetyPlan]:
    """Mark open plans past their due time and queue one `safety_plan.overdue` event each.

    `FOR UPDATE SKIP LOCKED` keeps two replicas off the same plan at once, and the marker makes
    the claim happen once: a replica whose query raced a committed claim re-checks the row under
    its lock and finds it marked. The overdue marker is not a revision (nobody changed the plan),
    so it does not bump the version a hotline worker is editing against.
    """
    now = utcnow()
    plans = list(
        await session.scalars(
            select(SafetyPlan)
            .where(
                SafetyPlan.status == "open",
                SafetyPlan.overdue_notified_at.is_(None),
                SafetyPlan.due_at <= now,
            )
            .order_by(SafetyPlan.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for plan in plans:
        plan.overdue_notified_at = now
        await publish(session, plan, "safety_plan.overdue", at=now)
    await session.flush()
    return plans


async def next_overdue_at(session: AsyncSession) -> datetime | None:
    """The earliest due time of an open plan whose overdue event is not queued yet."""
    due: datetime | None = await session.scalar(
        select(func.min(SafetyPlan.due_at)).where(
            SafetyPlan.status == "open", SafetyPlan.overdue_notified_at.is_(None)
        )
    )
    return due


def start_watcher(runtime: Runtime) -> DueWatcher:
    """Run the watcher for the service's lifetime (the runtime cancels it at shutdown)."""
    watcher = DueWatcher(
        name="overdue watcher",
        what="overdue safety plan(s)",
        sessions=runtime.sessions,
        listener=runtime.listener,
        channel=SAFETY_PLANS_CHANNEL,
        claim=lambda session, limit: claim_overdue(session, limit=limit),
        next_due=next_overdue_at,
    )
    runtime.spawn(watcher.run(), name="intake-overdue-watcher")
    return watcher
