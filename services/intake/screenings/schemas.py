"""What a screening is, as intake accepts it, and the answer to its submission."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator

from services.intake.crisis_resources import codes
from shared.instruments import Instrument
from shared.locales import DEFAULT_LANGUAGE, language_tag
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
    #: The language the person was screened in and speaks (BCP 47, known to CLDR: `en`, `es`,
    #: `es-MX`). The answers' field names are the same in every language, and so is the score.
    language: Annotated[str, StringConstraints(max_length=35)] = DEFAULT_LANGUAGE
    #: Where the person is (ISO 3166-1 alpha-2): whose crisis lines their plan shows. None: the
    #: deployment's DEFAULT_COUNTRY, recorded on the screening when it is stored.
    country: Annotated[str, StringConstraints(max_length=10)] | None = None
    #: ISO 3166-2 subdivision of `country` (`GB-SCT`, `US-CA`), when known: its lines first.
    region: Annotated[str, StringConstraints(max_length=12)] | None = None

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return language_tag(value)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else codes.country(value)

    @model_validator(mode="after")
    def _region(self) -> ScreeningIn:
        if self.region is not None:
            if self.country is None:
                raise ValueError("region needs country")
            try:
                self.region = codes.subdivision(self.region, self.country)
            except ValueError as exc:
                raise ValueError(f"region: {exc}") from None
        return self


class ScreeningAccepted(BaseModel):
    id: uuid.UUID
    status: Literal["received", "assessed"]
