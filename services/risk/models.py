"""The risk service's tables (schema `risk`; DDL in migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.runtime import plumbing_tables

SCHEMA = "risk"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


outbox, processed_events = plumbing_tables(Base.metadata)


class RuleSetRecord(Base):
    __tablename__ = "rule_sets"

    version: Mapped[str] = mapped_column(Text, primary_key=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    first_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    screening_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(Text, default="automatic")
    instrument: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    flagged: Mapped[bool]
    reasons: Mapped[list[str]] = mapped_column(JSONB)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    rules_version: Mapped[str] = mapped_column(Text)
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assessed_by: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(Text)
