"""What the API-key routes and `/v1/me` accept and answer (never a stored key's hash)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.auth import Role
from shared.events import utcnow
from shared.text import printable

#: Who acted, as revisions and acknowledgements name the key's holder: printable, 100 at most.
Name = Annotated[str, StringConstraints(strip_whitespace=True), printable(100)]
System = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,200}$")]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role
    #: For an `ehr` key (required there, refused elsewhere): the identifier systems it files
    #: and reads under; the first files its JSON screenings.
    identifier_systems: list[System] = Field([], max_length=20)
    expires_at: AwareDatetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= utcnow():
            raise ValueError("must be in the future")
        return value


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    identifier_systems: list[str]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyIssued(ApiKeyOut):
    #: The key itself: shown in this answer only, stored nowhere.
    key: str


class Me(BaseModel):
    name: str
    role: Role
    identifier_systems: list[str]
