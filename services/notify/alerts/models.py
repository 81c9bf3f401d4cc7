"""The alert: one per flagged screening (and one per risky reply to a Caring Contact), the
durable state of its paging."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.notify.models import Base
from services.notify.oncall import models as _oncall  # noqa: F401  (policies: the foreign key)

#: Alerts still being paged. `failed` means nobody answered the whole policy; it is re-paged.
OPEN = ("pending", "delivered", "escalated", "failed")


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID]
    #: A risky reply to a Caring Contact this alert is for (None: the screening's own alert).
    reply_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    assessment_id: Mapped[uuid.UUID | None]  # None: opened by the assessment watchdog
    risk_level: Mapped[str]
    urgency: Mapped[str | None]
    reasons: Mapped[list[str]]
    status: Mapped[str]
    escalation_level: Mapped[int] = mapped_column(default=0)
    ack_deadline_seconds: Mapped[int]
    escalate_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    #: Bumped by every change (each one publishes an event carrying it): orders the events.
    version: Mapped[int] = mapped_column(default=0)
    #: The trace context the alert was opened in: its pages continue that trace.
    traceparent: Mapped[str | None] = mapped_column(default=None)
    first_delivered_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    correlation_id: Mapped[str]
    policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("policies.id"))
    repeat_round: Mapped[int] = mapped_column(default=0)
    assessed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    #: The short code its texts name ("Reply 7K3Q or 1"), given at its first text; unique
    #: among the open alerts (services/notify/phones/codes.py).
    reply_code: Mapped[str | None] = mapped_column(default=None)
    #: The person's language (BCP 47), and whether nobody on call speaks it (no PHI).
    language: Mapped[str] = mapped_column(default="en")
    interpreter_needed: Mapped[bool] = mapped_column(default=False)
