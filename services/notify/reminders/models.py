"""The reminders: one row per overdue safety plan, also the durable timer of its sending."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from services.notify.models import Base


class Reminder(Base):
    __tablename__ = "reminders"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str]
    plan_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    screening_id: Mapped[uuid.UUID]
    risk_level: Mapped[str]
    plan_due_at: Mapped[datetime]
    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_http_status: Mapped[int | None]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    correlation_id: Mapped[str]
