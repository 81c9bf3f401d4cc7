"""The overdue watcher: one `safety_plan.overdue` event per plan that passes its due time open.

It sleeps until the earliest due time of an open plan, not in a polling loop. A trigger on
`intake.safety_plans` sends a NOTIFY when a plan is opened, completed or its due time changes,
so every replica recomputes its sleep the moment the earliest due time may have moved. The claim
itself (`claim_overdue`) marks the plan and queues the event in one transaction with
`FOR UPDATE SKIP LOCKED`: with several replicas awake at once, each plan is announced once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.safety_plans.models import SafetyPlan
from services.intake.safety_plans.service import publish
from shared.db import SessionFactory, asyncpg_dsn, transaction
from shared.events import utcnow
from shared.runtime import Runtime
from shared.wakeup import WakeLoop

log = logging.getLogger(__name__)

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


class OverdueWatcher:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        listen_dsn: str,
        batch_size: int = 100,
        max_sleep_seconds: float = 60.0,
        busy_retry_seconds: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        #: When a due plan is locked by another replica's claim, look again after this long.
        self._busy_retry = busy_retry_seconds
        self._loop = WakeLoop(
            name="overdue watcher",
            listen_dsn=listen_dsn,
            channels=[SAFETY_PLANS_CHANNEL],
            # A ceiling on the sleep, in case a NOTIFY was lost while LISTEN was down.
            max_sleep=max_sleep_seconds,
        )
        self.announced = 0

    def wake(self) -> None:
        self._loop.wake()

    async def run(self) -> None:
        """Watch until cancelled."""
        await self._loop.run(self.run_due, self._next_due_in)

    async def run_due(self) -> int:
        """Announce every plan that is overdue now; returns how many this replica announced."""
        total = 0
        while True:
            async with transaction(self._sessions) as session:
                claimed = len(await claim_overdue(session, limit=self._batch_size))
            total += claimed
            if claimed < self._batch_size:
                break
        if total:
            log.info("announced %d overdue safety plan(s)", total)
        self.announced += total
        return total

    async def _next_due_in(self) -> float | None:
        async with self._sessions() as session:
            due = await next_overdue_at(session)
        if due is None:
            return None
        left = (due - utcnow()).total_seconds()
        # Past due but not claimable: another replica holds it mid-claim; look again soon.
        return left if left > 0 else self._busy_retry


def start_watcher(runtime: Runtime) -> OverdueWatcher:
    """Run the watcher for the service's lifetime (the runtime cancels it at shutdown)."""
    watcher = OverdueWatcher(
        sessions=runtime.sessions, listen_dsn=asyncpg_dsn(runtime.settings.database_url)
    )
    runtime.spawn(watcher.run(), name="intake-overdue-watcher")
    return watcher
