"""Escalation policies: which step follows which, and how long each one waits.

A policy is ordered levels, each naming a schedule and/or clinicians and a delay, and a repeat
count: after the last level the policy starts again at the first, `repeats` more times, until
someone acknowledges. A level without its own delay waits the acknowledgement deadline of the
alert's risk level (ACK_DEADLINE_SECONDS; clinical-rules.md: imminent 2 min, high 5 min,
moderate 30 min), so the clinical defaults stay configuration. An alert that no policy covers
follows the fallback plan of the contract: ONCALL_WEBHOOK_URL at every level up to
MAX_ESCALATION_LEVEL.

Stored policies (`notify.policies`) are managed here too; an alert reads its plan when it
opens and at each step, so an edit applies from the next step on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.oncall.clinicians import require_clinicians
from services.notify.oncall.models import (
    Policy,
    PolicyRiskLevel,
    Schedule,
)
from services.notify.oncall.schemas import (
    PolicyIn,
    PolicyOut,
)
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import utcnow
from shared.pagination import keyset_page


@dataclass(frozen=True)
class Level:
    delay_seconds: int | None = None
    schedule_id: uuid.UUID | None = None
    clinician_ids: tuple[uuid.UUID, ...] = ()
    #: The fallback level pages ONCALL_WEBHOOK_URL instead of anyone named.
    fallback: bool = False
    #: High and imminent alerts: also page, at the same moment, a clinician on call who speaks
    #: the person's language when none of this level's does (oncall/languages.py).
    prefer_language: bool = False


@dataclass(frozen=True)
class Plan:
    levels: tuple[Level, ...]
    repeats: int = 0
    policy_id: uuid.UUID | None = None
    name: str = field(default="fallback")


@dataclass(frozen=True)
class Step:
    """Where an alert stands: level `level` of round `repeat` (both from 0)."""

    level: int
    repeat: int


def fallback_plan(max_escalation_level: int) -> Plan:
    return Plan(levels=tuple(Level(fallback=True) for _ in range(max_escalation_level + 1)))


def plan_from_row(
    policy_id: uuid.UUID, name: str, levels: list[dict[str, Any]], repeats: int
) -> Plan:
    """The stored policy (levels as JSON) as a Plan."""
    return Plan(
        policy_id=policy_id,
        name=name,
        repeats=repeats,
        levels=tuple(
            Level(
                delay_seconds=lv.get("delay_seconds"),
                schedule_id=uuid.UUID(lv["schedule_id"]) if lv.get("schedule_id") else None,
                clinician_ids=tuple(uuid.UUID(c) for c in lv.get("clinician_ids") or ()),
                prefer_language=bool(lv.get("prefer_language", False)),
            )
            for lv in levels
        ),
    )


def next_step(plan: Plan, step: Step) -> Step | None:
    """The next level, or the first level of the next round; None after the last one."""
    if step.level + 1 < len(plan.levels):
        return Step(step.level + 1, step.repeat)
    if step.repeat < plan.repeats:
        return Step(0, step.repeat + 1)
    return None


def level_delay(plan: Plan, step: Step, *, default: int) -> int:
    """Seconds the step waits for an acknowledgement before the next one pages.

    `default` is the alert's own deadline, fixed when it opened from its risk level.
    """
    if 0 <= step.level < len(plan.levels):
        own = plan.levels[step.level].delay_seconds
        if own is not None:
            return own
    return default


# Stored policies.


async def _policy_out(session: AsyncSession, policy: Policy) -> PolicyOut:
    levels = await session.scalars(
        select(PolicyRiskLevel.risk_level)
        .where(PolicyRiskLevel.policy_id == policy.id)
        .order_by(PolicyRiskLevel.risk_level)
    )
    return PolicyOut(
        id=policy.id,
        name=policy.name,
        risk_levels=list(levels),
        levels=policy.levels,
        repeats=policy.repeats,
        created_at=policy.created_at,
        changed_at=policy.changed_at,
    )


async def _put_policy(session: AsyncSession, policy: Policy, data: PolicyIn) -> None:
    for i, level in enumerate(data.levels):
        await require_clinicians(session, level.clinician_ids, field=f"levels.{i}.clinician_ids")
        if level.schedule_id is not None and await session.get(Schedule, level.schedule_id) is None:
            raise Unprocessable(
                "unknown schedule",
                problems=[{"field": f"levels.{i}.schedule_id", "problem": "unknown schedule id"}],
            )
    taken = await session.scalars(
        select(PolicyRiskLevel.risk_level).where(
            PolicyRiskLevel.risk_level.in_(data.risk_levels), PolicyRiskLevel.policy_id != policy.id
        )
    )
    if clash := sorted(taken):
        raise Conflict(f"another policy already covers risk level(s) {', '.join(clash)}")
    policy.name = data.name
    policy.repeats = data.repeats
    policy.levels = [lv.model_dump(mode="json") for lv in data.levels]
    policy.changed_at = utcnow()
    await session.flush()
    await session.execute(delete(PolicyRiskLevel).where(PolicyRiskLevel.policy_id == policy.id))
    session.add_all(
        PolicyRiskLevel(risk_level=r, policy_id=policy.id) for r in set(data.risk_levels)
    )
    await session.flush()


async def create_policy(session: AsyncSession, *, data: PolicyIn) -> PolicyOut:
    now = utcnow()
    policy = Policy(
        id=uuid.uuid4(), name=data.name, levels=[], repeats=0, created_at=now, changed_at=now
    )
    session.add(policy)
    await session.flush()
    await _put_policy(session, policy, data)
    return await _policy_out(session, policy)


async def _live_policy(session: AsyncSession, policy_id: uuid.UUID) -> Policy:
    policy = await session.get(Policy, policy_id, with_for_update=True)
    if policy is None or policy.deleted_at is not None:
        raise NotFound(f"no policy {policy_id}")
    return policy


async def replace_policy(
    session: AsyncSession, *, policy_id: uuid.UUID, data: PolicyIn
) -> PolicyOut:
    """Open alerts follow the new levels from their next step on."""
    policy = await _live_policy(session, policy_id)
    await _put_policy(session, policy, data)
    return await _policy_out(session, policy)


async def delete_policy(session: AsyncSession, *, policy_id: uuid.UUID) -> None:
    """New alerts of its risk levels fall back; open alerts that follow it finish with it."""
    policy = await _live_policy(session, policy_id)
    await session.execute(delete(PolicyRiskLevel).where(PolicyRiskLevel.policy_id == policy.id))
    policy.deleted_at = utcnow()
    await session.flush()


async def get_policy(session: AsyncSession, *, policy_id: uuid.UUID) -> PolicyOut:
    policy = await session.get(Policy, policy_id)
    if policy is None or policy.deleted_at is not None:
        raise NotFound(f"no policy {policy_id}")
    return await _policy_out(session, policy)


async def list_policies(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[PolicyOut], str | None]:
    live = select(Policy).where(Policy.deleted_at.is_(None))
    found, following = await keyset_page(session, live, Policy, limit=limit, cursor=cursor)
    return [await _policy_out(session, p) for p in found], following
