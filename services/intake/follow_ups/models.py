"""The follow-ups' tables: one follow-up per flagged screening, its attempts, and the tasks it
leaves for people (a supervisor's for an unreachable person, the team's for a reply)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base, sealed
from shared.phi import protect


class FollowUp(Base):
    __tablename__ = "follow_ups"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"), unique=True)
    status: Mapped[str] = mapped_column(default="open")
    risk_level: Mapped[str]
    outcome: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    overdue_notified_for: Mapped[datetime | None]
    correlation_id: Mapped[str | None]


class FollowUpAttempt(Base):
    __tablename__ = "follow_up_attempts"

    follow_up_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("follow_ups.id"), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    outcome: Mapped[str]
    note: Mapped[str | None]  # PHI: encrypted (SEALED)
    actor: Mapped[str]
    role: Mapped[str]
    at: Mapped[datetime]


class FollowUpTask(Base):
    __tablename__ = "follow_up_tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    follow_up_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("follow_ups.id"))
    kind: Mapped[str]
    for_role: Mapped[str]
    status: Mapped[str] = mapped_column(default="open")
    reply_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    done_by: Mapped[str | None]
    done_at: Mapped[datetime | None]


protect(FollowUpAttempt, *sealed("follow_up_attempts"))
