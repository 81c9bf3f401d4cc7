"""The safety plans' tables: the plan, and its append-only revisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base, sealed
from shared.phi import protect


class SafetyPlan(Base):
    __tablename__ = "safety_plans"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"), unique=True)
    status: Mapped[str] = mapped_column(default="open")
    risk_level: Mapped[str]
    version: Mapped[int] = mapped_column(default=1)
    #: PHI: the person's entries and reasons, and the emergency task's outcome. Stored encrypted
    #: (text holding a token of the JSON, see SEALED); the attributes hold the JSON in clear.
    steps: Mapped[dict[str, Any]] = mapped_column(Text)
    emergency_task: Mapped[dict[str, Any] | None] = mapped_column(Text)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    reviewed_by: Mapped[str | None]
    reviewed_at: Mapped[datetime | None]
    review_note: Mapped[str | None]  # PHI: a clinician's free text, encrypted
    completed_by: Mapped[str | None]
    completed_at: Mapped[datetime | None]
    overdue_notified_at: Mapped[datetime | None]
    correlation_id: Mapped[str | None]


class SafetyPlanRevision(Base):
    """One change to a plan; append-only (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "safety_plan_revisions"

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("safety_plans.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str]
    role: Mapped[str]
    action: Mapped[str]
    #: PHI, encrypted: the entries changed, in the person's own words, and the whole plan after.
    diff: Mapped[dict[str, Any]] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]] = mapped_column(Text)
    at: Mapped[datetime]


# Stored encrypted, read back in clear (db.SEALED).
protect(SafetyPlan, *sealed("safety_plans"))
protect(SafetyPlanRevision, *sealed("safety_plan_revisions"))
