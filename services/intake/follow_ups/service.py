"""Follow-up after the call: a flagged screening opens one follow-up, due FOLLOW_UP_FIRST_HOURS
later (988's "Follow Up Matters": a call 24-48 hours after the contact, three to five tries).

Staff record each attempt to reach the person. `reached`, `declined` and `in_treatment` close
the follow-up; `no_answer` and `left_message` leave it open, due again at the next of the
FOLLOW_UP_MAX_ATTEMPTS slots spread evenly until FOLLOW_UP_WINDOW_HOURS after the screening;
after the last unsuccessful attempt, or a `wrong_number`, nobody can reach the person by phone:
the follow-up is `unreachable`, and the supervisor gets a task and a notice (`follow_up.
unreachable`, which notify sends as it sends the reminder for an overdue safety plan).

Events carry ids, codes and times, never the note of an attempt (PHI). Functions here only flush.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.db import outbox
from services.intake.follow_ups.models import FollowUp, FollowUpAttempt, FollowUpTask
from services.intake.screenings.models import Screening
from shared.errors import Conflict, NotFound
from shared.events import FollowUpEvent, utcnow
from shared.outbox import add_event
from shared.topics import FOLLOW_UP_EVENTS

#: What one attempt's outcome does to the follow-up.
CLOSING = frozenset({"reached", "declined", "in_treatment"})
RETRYING = frozenset({"no_answer", "left_message"})
OUTCOMES = (*sorted(CLOSING), *sorted(RETRYING), "wrong_number")


@dataclass(frozen=True)
class Policy:
    """When attempts are due (the settings FOLLOW_UP_*)."""

    first_hours: float = 24.0
    max_attempts: int = 5
    window_hours: float = 48.0

    @classmethod
    def of(cls, settings: Any) -> Policy:
        """From the service's settings (FOLLOW_UP_*)."""
        return cls(
            settings.follow_up_first_hours,
            settings.follow_up_max_attempts,
            settings.follow_up_window_hours,
        )

    def first_due(self, start: datetime) -> datetime:
        return start + timedelta(hours=self.first_hours)

    def due_after(self, start: datetime, attempts: int, now: datetime) -> datetime:
        """When the attempt after `attempts` unsuccessful ones is due: the next of the slots
        spread evenly from the first due time to the window's end, and never sooner than an
        hour after the last attempt (an attempt made late does not crowd the next)."""
        spread = max(self.window_hours - self.first_hours, 0.0)
        step = spread / max(self.max_attempts - 1, 1)
        slot = start + timedelta(hours=self.first_hours + attempts * step)
        return max(slot, now + timedelta(hours=min(step, 1.0)))


@dataclass(frozen=True)
class Actor:
    name: str
    role: str


class FollowUpClosed(Conflict):
    code = "follow_up_closed"


async def open_follow_up(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    risk_level: str,
    start: datetime,
    policy: Policy,
    correlation_id: str,
) -> bool:
    """The screening's one follow-up (a redelivered assessment opens nothing more)."""
    now = utcnow()
    inserted = await session.scalar(
        insert(FollowUp)
        .values(
            id=uuid.uuid4(),
            screening_id=screening_id,
            status="open",
            risk_level=risk_level,
            attempts=0,
            due_at=policy.first_due(start),
            created_at=start,
            updated_at=now,
            correlation_id=correlation_id,
        )
        .on_conflict_do_nothing(index_elements=[FollowUp.screening_id])
        .returning(FollowUp.id)
    )
    return inserted is not None


def scoped(follow_up_id: uuid.UUID, visible: ColumnElement[bool]) -> ColumnElement[bool]:
    """The follow-up, if its screening is one the caller may see (a join on `Screening`)."""
    return (FollowUp.id == follow_up_id) & visible


async def get_follow_up(
    session: AsyncSession,
    *,
    follow_up_id: uuid.UUID,
    visible: ColumnElement[bool] | None = None,
    for_update: bool = False,
) -> FollowUp:
    """The follow-up, if its screening is one the caller may see; 404 otherwise."""
    query = (
        select(FollowUp)
        .join(Screening, Screening.id == FollowUp.screening_id)
        .where(scoped(follow_up_id, true() if visible is None else visible))
    )
    if for_update:
        query = query.with_for_update(of=FollowUp)
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"no follow-up {follow_up_id}")
    return found


async def publish(
    session: AsyncSession,
    follow_up: FollowUp,
    event_type: str,
    *,
    notice_id: uuid.UUID,
    audience: str = "team",
    reasons: list[str] | None = None,
    at: datetime | None = None,
) -> None:
    event = FollowUpEvent(
        follow_up_id=follow_up.id,
        screening_id=follow_up.screening_id,
        notice_id=notice_id,
        status=follow_up.status,
        risk_level=follow_up.risk_level,
        due_at=follow_up.due_at,
        attempts=follow_up.attempts,
        changed_at=at or follow_up.updated_at,
        audience=audience,
        reasons=reasons or [],
    )
    await add_event(
        session,
        outbox,
        topic=FOLLOW_UP_EVENTS,
        key=follow_up.screening_id,
        event=event.envelope(
            correlation_id=follow_up.correlation_id or str(follow_up.screening_id),
            event_type=event_type,
        ),
    )


async def add_task(
    session: AsyncSession,
    follow_up: FollowUp,
    *,
    kind: str,
    for_role: str,
    reply_id: uuid.UUID | None = None,
) -> FollowUpTask:
    task = FollowUpTask(
        id=uuid.uuid4(),
        follow_up_id=follow_up.id,
        kind=kind,
        for_role=for_role,
        status="open",
        reply_id=reply_id,
        created_at=utcnow(),
    )
    session.add(task)
    await session.flush()
    return task


async def record_attempt(
    session: AsyncSession,
    *,
    follow_up_id: uuid.UUID,
    visible: ColumnElement[bool],
    outcome: str,
    note: str | None,
    actor: Actor,
    policy: Policy,
) -> tuple[FollowUp, FollowUpAttempt]:
    """Record one attempt to reach the person and move the follow-up on (see the module)."""
    follow_up = await get_follow_up(
        session, follow_up_id=follow_up_id, visible=visible, for_update=True
    )
    if follow_up.status != "open":
        raise FollowUpClosed(f"the follow-up is {follow_up.status}: no attempt is due")
    now = utcnow()
    follow_up.attempts += 1
    attempt = FollowUpAttempt(
        follow_up_id=follow_up.id,
        number=follow_up.attempts,
        outcome=outcome,
        note=note,
        actor=actor.name,
        role=actor.role,
        at=now,
    )
    session.add(attempt)
    follow_up.outcome, follow_up.updated_at = outcome, now
    if outcome in CLOSING:
        follow_up.status, follow_up.closed_at = "completed", now
    elif outcome in RETRYING and follow_up.attempts < policy.max_attempts:
        follow_up.due_at = policy.due_after(follow_up.created_at, follow_up.attempts, now)
    else:
        follow_up.status, follow_up.closed_at = "unreachable", now
        await add_task(session, follow_up, kind="unreachable", for_role="supervisor")
        await publish(
            session,
            follow_up,
            "follow_up.unreachable",
            notice_id=uuid.uuid5(follow_up.id, "unreachable"),
            audience="supervisor",
            reasons=[outcome],
            at=now,
        )
    await session.flush()
    return follow_up, attempt


async def claim_overdue(session: AsyncSession, *, limit: int = 100) -> list[FollowUp]:
    """Announce open follow-ups past their due time, once per due time (`follow_up.overdue`),
    claimed with `FOR UPDATE SKIP LOCKED` so that replicas never announce one twice."""
    now = utcnow()
    found = list(
        await session.scalars(
            select(FollowUp)
            .where(
                FollowUp.status == "open",
                FollowUp.due_at <= now,
                FollowUp.overdue_notified_for.is_distinct_from(FollowUp.due_at),
            )
            .order_by(FollowUp.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for follow_up in found:
        follow_up.overdue_notified_for = follow_up.due_at
        notice = uuid.uuid5(follow_up.id, f"overdue:{follow_up.due_at.isoformat()}")
        await publish(session, follow_up, "follow_up.overdue", notice_id=notice, at=now)
    await session.flush()
    return found


async def next_overdue_at(session: AsyncSession) -> datetime | None:
    due: datetime | None = await session.scalar(
        select(FollowUp.due_at)
        .where(
            FollowUp.status == "open",
            FollowUp.overdue_notified_for.is_distinct_from(FollowUp.due_at),
        )
        .order_by(FollowUp.due_at)
        .limit(1)
    )
    return due
