"""Intake's FHIR tables (DDL in migrations/0003_fhir.sql).

None of these rows is ever published: the subject reference and identifiers came from the EHR
and go back only to that EHR.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base, sealed
from shared.phi import protect


class FhirResponse(Base):
    """Where a FHIR screening came from: enough to point a RiskAssessment back at its source.

    The QuestionnaireResponse itself is not kept: its answers are in the screening, and what else
    it may hold (contained Patient, names in ``display``) is PHI that nothing here needs.
    """

    __tablename__ = "fhir_responses"

    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"), primary_key=True)
    identifier_system: Mapped[str | None]
    identifier_value: Mapped[str | None]
    resource_id: Mapped[str | None]
    questionnaire: Mapped[str | None]
    status: Mapped[str]
    authored: Mapped[str | None]
    #: The subject as a FHIR Reference (``reference``, ``type``, ``identifier``), never ``display``.
    subject: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class FhirSubscription(Base):
    """An EHR's rest-hook: RiskAssessments of the screenings it identified with its system."""

    __tablename__ = "fhir_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    identifier_system: Mapped[str]
    endpoint: Mapped[str]
    secret: Mapped[str]  # signs the pushes, so kept, but encrypted (intake.models.SEALED)
    status: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: The credential that registered it.
    owner: Mapped[str | None]


protect(FhirSubscription, *sealed("fhir_subscriptions"))


class FhirPush(Base):
    """One RiskAssessment to POST to one subscription; a durable timer (``due_at``) with a lease.

    ``id`` is the ``X-Triage-Event-Id``: the same on every retry, so the EHR can deduplicate.
    """

    __tablename__ = "fhir_pushes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fhir_subscriptions.id"))
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"))
    assessment_id: Mapped[uuid.UUID]
    body: Mapped[str]
    status: Mapped[str]
    attempts: Mapped[int]
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class FhirPushAttempt(Base):
    __tablename__ = "fhir_push_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    push_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fhir_pushes.id"))
    attempt: Mapped[int]
    target: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    http_status: Mapped[int | None]
    outcome: Mapped[str]
    error: Mapped[str | None]
