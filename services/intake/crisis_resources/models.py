"""The crisis resources table (intake.crisis_resources; DDL in migrations/0018)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.db import Base


class CrisisResource(Base):
    """One way to reach one crisis line or emergency service in a country (or a region of it).

    Reference data an admin keeps, not a person's record: nothing here is PHI."""

    __tablename__ = "crisis_resources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: The seed's own name for the row (migrations/0019); None for rows an admin added. A later
    #: seed migration updates only seeded rows no admin has changed (`updated_by` still None).
    seed_key: Mapped[str | None]
    country: Mapped[str]
    region: Mapped[str | None]
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text))
    name: Mapped[str]
    #: `crisis_line` or `emergency`: a printed plan shows them apart.
    kind: Mapped[str]
    #: `phone`, `sms`, `chat` or `url`: how `contact` is used.
    channel: Mapped[str]
    contact: Mapped[str]
    #: For `sms`: the word to send (`SHOUT`, `HELP`), if the service asks for one.
    keyword: Mapped[str | None]
    #: A short instruction for the person ("press 2 for Spanish").
    note: Mapped[str | None]
    hours: Mapped[str | None]
    open_24_7: Mapped[bool]
    #: The https URL of the authority that publishes the contact.
    source: Mapped[str]
    #: The day someone last checked `contact` against `source` (None: never).
    verified_at: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Who last changed it (an API key's holder); None: as seeded.
    updated_by: Mapped[str | None]
