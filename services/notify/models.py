"""The notify service's tables (schema `notify`; DDL in migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, MetaData, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.runtime import plumbing_tables

SCHEMA = "notify"
DELIVERIES_CHANNEL = "notify_deliveries"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[str]: JSONB,
        str: Text,
    }


outbox, processed_events = plumbing_tables(Base.metadata)


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    assessment_id: Mapped[uuid.UUID]
    risk_level: Mapped[str]
    urgency: Mapped[str | None]
    reasons: Mapped[list[str]]
    status: Mapped[str]
    escalation_level: Mapped[int] = mapped_column(default=0)
    ack_deadline_seconds: Mapped[int]
    escalate_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    first_delivered_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    correlation_id: Mapped[str]


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
