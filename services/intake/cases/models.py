"""The case view's own table: its copy of each alert of a screening (notify's state, from its
events)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base


class AlertView(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"))
    status: Mapped[str]
    risk_level: Mapped[str]
    urgency: Mapped[str | None]
    escalation_level: Mapped[int]
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    #: notify's version of the alert state held here (None: from an event without one).
    version: Mapped[int | None]
    #: Nobody on call speaks the person's language (notify, on the alert's events).
    interpreter_needed: Mapped[bool | None]
