"""The intake service's tables (schema `intake`; DDL in migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, MetaData, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP
from shared.phi import Sealed, columns_of, protect
from shared.retention import Rule
from shared.runtime import plumbing_tables
from shared.settings import ServiceSettings

SCHEMA = "intake"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = TYPE_ANNOTATION_MAP


outbox, processed_events = plumbing_tables(Base.metadata)


class Screening(Base):
    __tablename__ = "screenings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_id: Mapped[str]
    source: Mapped[str]
    external_id: Mapped[str | None]
    instrument: Mapped[str]
    answers: Mapped[dict[str, Any]]
    imminent_danger: Mapped[bool]
    contact: Mapped[str | None]  # PHI: JSON, encrypted (shared/phi.py)
    notes: Mapped[str | None]  # PHI: encrypted (shared/phi.py)
    request_hash: Mapped[str]
    status: Mapped[str] = mapped_column(default="received")
    risk: Mapped[dict[str, Any] | None]
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: The credential that submitted it, and the identifier system it is filed under.
    submitted_by: Mapped[str | None]
    filed_under: Mapped[str | None]
    #: Where its external_id is unique: an EHR's system, or the submitter (scope.replay_scope).
    replay_scope: Mapped[str | None]


class ApiKey(Base):
    """An API key: its SHA-256 digest, never the key (shown once, when issued)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    role: Mapped[str]
    identifier_systems: Mapped[list[str]] = mapped_column(ARRAY(Text))
    key_hash: Mapped[str]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(primary_key=True)
    request_hash: Mapped[str]
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"))
    created_at: Mapped[datetime]


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


_REVISION = ("plan_id", "version")

#: Every column of intake stored encrypted (shared/phi.py): the case's contact and notes, the
#: plan's entries, reasons, emergency outcome and review note, its revisions, and the secrets
#: that sign FHIR rest-hook pushes. `triage phi rotate` and the start-up check read this list.
SEALED = (
    Sealed("intake.screenings", "contact"),
    Sealed("intake.screenings", "notes"),
    Sealed("intake.safety_plans", "steps", json=True),
    Sealed("intake.safety_plans", "emergency_task", json=True),
    Sealed("intake.safety_plans", "review_note"),
    Sealed("intake.safety_plan_revisions", "diff", key=_REVISION, json=True),
    Sealed("intake.safety_plan_revisions", "snapshot", key=_REVISION, json=True),
    Sealed("intake.fhir_subscriptions", "secret"),
)


def sealed(table: str) -> tuple[Sealed, ...]:
    return columns_of(SEALED, f"{SCHEMA}.{table}")


# The screening's contact and notes are sealed and opened explicitly (screenings/service.py):
# they are written straight through asyncpg and opened only for a caller who may see them.
protect(SafetyPlan, *sealed("safety_plans"))
protect(SafetyPlanRevision, *sealed("safety_plan_revisions"))


def retention(settings: ServiceSettings) -> list[Rule]:
    """Intake's tables pruned (shared/retention.py); children before parents."""
    records = settings.records_days
    pushes_done = "status <> 'pending' AND finished_at < $1"
    return [
        Rule("intake.idempotency_keys", "key", "created_at < $1", settings.idempotency_keys_days),
        Rule(
            "intake.fhir_push_attempts",
            "id",
            f"push_id IN (SELECT id FROM intake.fhir_pushes WHERE {pushes_done})",
            records,
        ),
        Rule(
            "intake.fhir_pushes",
            "id",
            f"{pushes_done} AND NOT EXISTS (SELECT 1 FROM intake.fhir_push_attempts a"
            " WHERE a.push_id = intake.fhir_pushes.id)",
            records,
        ),
    ]
