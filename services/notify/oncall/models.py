"""On-call configuration: clinicians and their contact methods, schedules (rotations and
overrides), escalation policies and the risk levels each one covers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.notify.models import Base, sealed
from shared.phi import protect


class Clinician(Base):
    __tablename__ = "clinicians"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    created_at: Mapped[datetime]
    #: BCP 47 tags (`en`, `es`, `es-MX`); empty: not stated, taken as English.
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)


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
    #: A phone that texted STOP (or that the provider refused as unsubscribed) is skipped.
    opted_out_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Replies in a row from this phone that changed nothing (services/notify/phones/).
    unanswered_replies: Mapped[int] = mapped_column(default=0)


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


protect(ContactMethod, sealed("contact_methods"))
