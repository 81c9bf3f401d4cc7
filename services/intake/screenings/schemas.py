"""What a screening is, as intake accepts it, and the answer to its submission."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.instruments import Instrument
from shared.text import NO_CONTROL

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


class Contact(BaseModel):
    """PHI: stored in PostgreSQL, never published, logged or echoed in an error."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=200, pattern=NO_CONTROL)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40, pattern=NO_CONTROL)] | None = None


class ScreeningIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_id: Identifier
    source: Literal["hotline", "ehr"]
    external_id: Identifier | None = None
    instrument: Instrument
    answers: dict[str, Any]
    imminent_danger: bool = False
    contact: Contact | None = None
    notes: Annotated[str, StringConstraints(max_length=10_000, pattern=NO_CONTROL)] | None = None


class ScreeningAccepted(BaseModel):
    id: uuid.UUID
    status: Literal["received", "assessed"]
