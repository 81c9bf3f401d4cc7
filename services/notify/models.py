"""The notify service's tables (schema `notify`; DDL in migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, MetaData
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP
from shared.phi import Sealed, columns_of, protect
from shared.retention import Rule
from shared.runtime import plumbing_tables
from shared.settings import ServiceSettings

SCHEMA = "notify"
DELIVERIES_CHANNEL = "notify_deliveries"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = TYPE_ANNOTATION_MAP


outbox, processed_events = plumbing_tables(Base.metadata)


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(unique=True)
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


class Clinician(Base):
    __tablename__ = "clinicians"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    created_at: Mapped[datetime]


class ContactMethod(Base):
    __tablename__ = "contact_methods"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    clinician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinicians.id"))
    kind: Mapped[str]
    address: Mapped[str]
    position: Mapped[int]
    delay_seconds: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime]


class RotationRow(Base):
    __tablename__ = "rotations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    layer: Mapped[int]
    clinician_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    shift_hours: Mapped[int]
    #: Wall-clock times in time_zone (no offset): handoffs keep their local time across DST.
    starts_local: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=False))
    ends_local: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=False))
    time_zone: Mapped[str]


class OverrideRow(Base):
    __tablename__ = "overrides"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    clinician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinicians.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_at: Mapped[datetime]


class Policy(Base):
    __tablename__ = "policies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    repeats: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class PolicyRiskLevel(Base):
    __tablename__ = "policy_risk_levels"

    risk_level: Mapped[str] = mapped_column(primary_key=True)
    policy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("policies.id"))


#: Every column of notify stored encrypted (shared/phi.py): clinicians' contact addresses, where
#: each page went, and the webhook signing secret this service generated (settings).
SEALED = (
    Sealed("notify.settings", "value", key=("key",)),
    Sealed("notify.contact_methods", "address"),
    Sealed("notify.deliveries", "target"),
    Sealed("notify.delivery_attempts", "target", key=("delivery_id", "attempt")),
)


def sealed(table: str) -> Sealed:
    """The one sealed column of `notify.<table>`."""
    (column,) = columns_of(SEALED, f"{SCHEMA}.{table}")
    return column


protect(Setting, sealed("settings"))
protect(ContactMethod, sealed("contact_methods"))
protect(Delivery, sealed("deliveries"))
protect(DeliveryAttempt, sealed("delivery_attempts"))


def retention(settings: ServiceSettings) -> list[Rule]:
    """Notify's tables pruned (shared/retention.py); children before parents. Alerts are kept."""
    records = settings.records_days
    done = "status <> 'pending' AND finished_at < $1"
    return [
        Rule(
            "notify.delivery_attempts",
            "id",
            f"delivery_id IN (SELECT id FROM notify.deliveries WHERE {done})",
            records,
        ),
        Rule(
            "notify.deliveries",
            "id",
            f"{done} AND NOT EXISTS (SELECT 1 FROM notify.delivery_attempts a"
            " WHERE a.delivery_id = notify.deliveries.id)",
            records,
        ),
        Rule("notify.reminders", "id", done, records),
        Rule(
            "notify.awaited_assessments",
            "screening_id",
            "seen_at < $1 AND (assessed_at IS NOT NULL OR alerted_at IS NOT NULL)",
            settings.processed_events_days,
        ),
    ]
