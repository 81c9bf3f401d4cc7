"""The screenings' tables: each screening as accepted, and the Idempotency-Keys that name them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base


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
    #: The person's language (BCP 47) and country (ISO 3166-1; the deployment's default when the
    #: submitter named none) and region (ISO 3166-2, when known): not PHI (shared/locales.py).
    language: Mapped[str] = mapped_column(default="en")
    country: Mapped[str | None]
    region: Mapped[str | None]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(primary_key=True)
    request_hash: Mapped[str]
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"))
    created_at: Mapped[datetime]


# The screening's contact and notes are sealed and opened explicitly (screenings/service.py):
# they are written straight through asyncpg and opened only for a caller who may see them.
