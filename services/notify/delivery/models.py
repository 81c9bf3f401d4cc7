"""Pages: one delivery per contact method an alert's step reaches, and every attempt of it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.notify.alerts import models as _alerts  # noqa: F401  (the foreign keys)
from services.notify.models import Base, sealed
from shared.phi import protect

#: The channel the triggers on deliveries.due_at and alerts.escalate_at signal on.
DELIVERIES_CHANNEL = "notify_deliveries"


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id"))
    escalation_level: Mapped[int]
    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    repeat_round: Mapped[int] = mapped_column(default=0)
    contact_method_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contact_methods.id"))
    channel: Mapped[str] = mapped_column(default="webhook")
    #: The address when the delivery was planned; None pages ONCALL_WEBHOOK_URL (the fallback).
    target: Mapped[str | None]
    #: The provider's id of the last text or call sent for this page, and its last status.
    provider_sid: Mapped[str | None] = mapped_column(default=None)
    provider_status: Mapped[str | None] = mapped_column(default=None)
    #: What the phone answered, as the command it was read as (never a reply's free text).
    reply: Mapped[str | None] = mapped_column(default=None)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id"))
    attempt: Mapped[int]
    target: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    http_status: Mapped[int | None]
    outcome: Mapped[str]
    error: Mapped[str | None]
    worker: Mapped[str | None] = mapped_column(default=None)


protect(Delivery, sealed("deliveries"))
protect(DeliveryAttempt, sealed("delivery_attempts"))
