"""Follow-ups read, in the caller's scope (the screening's `visible` in the WHERE): the
worklist, one follow-up with its attempts and tasks, and the case view's copy."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.follow_ups.models import FollowUp, FollowUpAttempt, FollowUpTask
from services.intake.follow_ups.schemas import FollowUpSummary
from services.intake.screenings.models import Screening
from shared.pagination import Columns


def worklist(visible: ColumnElement[bool], status: str | None) -> Columns:
    """The follow-ups of the screenings the caller may see (no note is read)."""
    query = select(
        FollowUp.id,
        FollowUp.screening_id,
        FollowUp.status,
        FollowUp.risk_level,
        FollowUp.outcome,
        FollowUp.attempts,
        FollowUp.due_at,
        FollowUp.created_at,
    ).join(Screening, Screening.id == FollowUp.screening_id)
    query = query.where(visible)
    if status is not None:
        query = query.where(FollowUp.status == status)
    return query


def summary(row: FollowUp, now: datetime) -> FollowUpSummary:
    return FollowUpSummary(
        id=row.id,
        screening_id=row.screening_id,
        status=row.status,
        risk_level=row.risk_level,
        outcome=row.outcome,
        attempts=row.attempts,
        due_at=row.due_at,
        overdue=row.status == "open" and row.due_at < now,
        created_at=row.created_at,
    )


async def attempts_of(session: AsyncSession, follow_up_id: uuid.UUID) -> list[FollowUpAttempt]:
    """Every attempt, oldest first (the notes decrypted: the caller's read is audited)."""
    return list(
        await session.scalars(
            select(FollowUpAttempt)
            .where(FollowUpAttempt.follow_up_id == follow_up_id)
            .order_by(FollowUpAttempt.number)
        )
    )


async def tasks_of(session: AsyncSession, follow_up_id: uuid.UUID) -> list[FollowUpTask]:
    return list(
        await session.scalars(
            select(FollowUpTask)
            .where(FollowUpTask.follow_up_id == follow_up_id)
            .order_by(FollowUpTask.created_at)
        )
    )


async def for_screening(session: AsyncSession, screening_id: uuid.UUID) -> FollowUp | None:
    """The screening's follow-up, for the case view (whose scope the caller has passed)."""
    found: FollowUp | None = await session.scalar(
        select(FollowUp).where(FollowUp.screening_id == screening_id)
    )
    return found


def open_tasks(visible: ColumnElement[bool], for_role: str | None) -> Columns:
    """Open tasks of the follow-ups the caller may see, oldest first."""
    query = (
        select(
            FollowUpTask.id,
            FollowUpTask.follow_up_id,
            FollowUpTask.kind,
            FollowUpTask.for_role,
            FollowUpTask.status,
            FollowUpTask.reply_id,
            FollowUpTask.created_at,
            FollowUpTask.done_by,
            FollowUpTask.done_at,
        )
        .join(FollowUp, FollowUp.id == FollowUpTask.follow_up_id)
        .join(Screening, Screening.id == FollowUp.screening_id)
        .where(visible, FollowUpTask.status == "open")
    )
    if for_role is not None:
        query = query.where(FollowUpTask.for_role == for_role)
    return query
