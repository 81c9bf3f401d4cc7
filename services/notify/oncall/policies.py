"""Escalation policies as plain data: which step follows which, and how long each one waits.

A policy is ordered levels, each naming a schedule and/or clinicians and a delay, and a repeat
count: after the last level the policy starts again at the first, `repeats` more times, until
someone acknowledges. A level without its own delay waits the acknowledgement deadline of the
alert's risk level (ACK_DEADLINE_SECONDS; clinical-rules.md: imminent 2 min, high 5 min,
moderate 30 min), so the clinical defaults stay configuration. An alert that no policy covers
follows the fallback plan of the contract: ONCALL_WEBHOOK_URL at every level up to
MAX_ESCALATION_LEVEL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Level:
    delay_seconds: int | None = None
    schedule_id: uuid.UUID | None = None
    clinician_ids: tuple[uuid.UUID, ...] = ()
    #: The fallback level pages ONCALL_WEBHOOK_URL instead of anyone named.
    fallback: bool = False


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
