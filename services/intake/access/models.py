"""The access keys' table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base


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
