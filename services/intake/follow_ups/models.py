"""The follow-ups' tables: one follow-up per flagged screening, its attempts, and the tasks it
leaves for people (a supervisor's for an unreachable person, the team's for a reply)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Text
from sqlalchemy.dialects.postgresql import ARRAY
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


class CaringContact(Base):
    """The person's consent to Caring Contacts, and where to send them (PHI, encrypted)."""

    __tablename__ = "caring_contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    follow_up_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("follow_ups.id"))
    status: Mapped[str]
    channel: Mapped[str]
    address: Mapped[str]  # PHI: E.164 number or email address, encrypted (SEALED)
    time_zone: Mapped[str]
    language: Mapped[str]
    schedule: Mapped[str]
    texts_version: Mapped[str]
    recorded_by: Mapped[str]
    recorded_role: Mapped[str]
    recorded_at: Mapped[datetime]
    ended_reason: Mapped[str | None]
    ended_by: Mapped[str | None]
    ended_at: Mapped[datetime | None]


class CaringMessage(Base):
    """One scheduled message: also the durable timer of its sending (shared/workqueue.py)."""

    __tablename__ = "caring_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("caring_contacts.id"))
    sequence: Mapped[int]
    status: Mapped[str]
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None]
    provider_sid: Mapped[str | None]
    provider_status: Mapped[str | None]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


protect(CaringContact, *sealed("caring_contacts"))


class CaringReply(Base):
    """A reply from the person (PHI: the body, encrypted)."""

    __tablename__ = "caring_replies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("caring_contacts.id"))
    follow_up_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("follow_ups.id"))
    provider_sid: Mapped[str] = mapped_column(unique=True)
    body: Mapped[str]
    classification: Mapped[str]
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    words_version: Mapped[str]
    received_at: Mapped[datetime]


protect(CaringReply, *sealed("caring_replies"))
