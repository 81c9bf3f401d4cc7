"""Safety plans read, for the caller's scope: one plan, the worklist, the revisions; and the
statement that opens a plan (straight to asyncpg: every flagged screening takes it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.safety_plans.document import overdue_at
from services.intake.safety_plans.models import SafetyPlan, SafetyPlanRevision
from services.intake.screenings.models import Screening
from shared.errors import NotFound
from shared.pagination import Columns

#: The plan and its first revision in one statement; nothing when the screening has a plan.
OPEN_PLAN = """
    WITH plan AS (
        INSERT INTO intake.safety_plans (id, screening_id, status, risk_level, version, steps,
                                         emergency_task, due_at, created_at, updated_at,
                                         correlation_id)
        VALUES ($1, $2, 'open', $3, 1, $4, $5, $6, $7, $7, $8)
        ON CONFLICT (screening_id) DO NOTHING
        RETURNING id
    )
    INSERT INTO intake.safety_plan_revisions (plan_id, version, actor, role, action, diff,
                                              snapshot, at)
    SELECT id, 1, $9, $10, 'opened', $12, $11, $7 FROM plan
    RETURNING plan_id
"""


def scoped(plan_id: uuid.UUID, visible: ColumnElement[bool]) -> Select[SafetyPlan]:
    return (
        select(SafetyPlan)
        .join(Screening, Screening.id == SafetyPlan.screening_id)
        .where(SafetyPlan.id == plan_id, visible)
    )


async def get_plan(
    session: AsyncSession, *, plan_id: uuid.UUID, visible: ColumnElement[bool]
) -> SafetyPlan:
    """The plan, if its screening is one the caller may see (`visible`); 404 otherwise."""
    plan = await session.scalar(scoped(plan_id, visible))
    if plan is None:
        raise NotFound(f"no safety plan {plan_id}")
    return plan


@dataclass(frozen=True)
class PlanFilters:
    """What `GET /v1/safety-plans` narrows the list to; None is no condition."""

    overdue: bool | None = None
    status: str | None = None
    screening_id: uuid.UUID | None = None

    def conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.overdue is not None:
            out.append(overdue_at(now) if self.overdue else not_(overdue_at(now)))
        if self.status is not None:
            out.append(SafetyPlan.status == self.status)
        if self.screening_id is not None:
            out.append(SafetyPlan.screening_id == self.screening_id)
        return out


def plans_listed(visible: ColumnElement[bool], filters: PlanFilters, now: datetime) -> Columns:
    """The plans of the screenings the caller may see (`visible`, through the plan's screening,
    as for one plan), with whether each is overdue at `now`.

    Columns, not the entity: loading a `SafetyPlan` decrypts its steps, emergency task and
    review note, and a list shows none of them."""
    return (
        select(
            SafetyPlan.id,
            SafetyPlan.screening_id,
            SafetyPlan.status,
            SafetyPlan.version,
            SafetyPlan.due_at,
            SafetyPlan.created_at,
            SafetyPlan.reviewed_by,
            SafetyPlan.reviewed_at,
            SafetyPlan.risk_level,
            overdue_at(now).label("overdue"),
        )
        .join(Screening, Screening.id == SafetyPlan.screening_id)
        .where(visible, *filters.conditions(now))
    )


async def list_revisions(
    session: AsyncSession, *, plan_id: uuid.UUID, visible: ColumnElement[bool]
) -> list[SafetyPlanRevision]:
    await get_plan(session, plan_id=plan_id, visible=visible)
    return list(
        await session.scalars(
            select(SafetyPlanRevision)
            .where(SafetyPlanRevision.plan_id == plan_id)
            .order_by(SafetyPlanRevision.version)
        )
    )


async def get_revision(
    session: AsyncSession, *, plan_id: uuid.UUID, version: int, visible: ColumnElement[bool]
) -> SafetyPlanRevision:
    await get_plan(session, plan_id=plan_id, visible=visible)
    revision = await session.get(SafetyPlanRevision, (plan_id, version))
    if revision is None:
        raise NotFound(f"safety plan {plan_id} has no revision {version}")
    return revision
