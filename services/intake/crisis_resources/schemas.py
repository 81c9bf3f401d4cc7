"""What the crisis-resources routes accept and answer.

Every check names the field and never repeats the value (shared/errors.py): a bad country code,
language tag, phone number or URL is a 422 with `problems: [{"field": ..., "problem": ...}]`.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from services.intake.crisis_resources import codes
from shared.errors import Unprocessable
from shared.events import utcnow
from shared.text import printable

Kind = Literal["crisis_line", "emergency"]
Channel = Literal["phone", "sms", "chat", "url"]

Name = Annotated[str, StringConstraints(strip_whitespace=True), printable(200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True), printable(200)]
#: A dialled number: digits in groups of single spaces or hyphens, an optional leading `+`.
_DIALLED = re.compile(r"^\+?[0-9]+(?:[ -][0-9]+)*$")
_KEYWORD = re.compile(r"^[A-Za-z0-9]{1,20}$")
MAX_URL = 500
#: A BCP 47 tag in canonical case; a bad one is reported at its place (`languages.1`).
LanguageTag = Annotated[str, StringConstraints(max_length=40), AfterValidator(codes.language)]


def dialled(value: str) -> str:
    """A number as a person dials it: E.164 (`+44 116 123`, 8 to 15 digits, no leading 0 after
    the `+`) or a national number or short code (`988`, `116 123`, `13 11 14`), 3 to 15 digits.
    Letters, brackets and extensions are refused: a printed plan shows exactly what to dial."""
    value = value.strip()
    digits = re.sub(r"[^0-9]", "", value)
    if not _DIALLED.fullmatch(value) or not 3 <= len(digits) <= 15:
        raise ValueError("not a phone number: digits, single spaces or hyphens, optional +")
    if value.startswith("+") and (len(digits) < 8 or digits[0] == "0"):
        raise ValueError("not an E.164 number: + then a country code and 8 to 15 digits")
    return value


def https_url(value: str) -> str:
    """An absolute https URL with a host (no credentials in it, no spaces)."""
    value = value.strip()
    if len(value) > MAX_URL or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise ValueError(f"not a URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme != "https":
        raise ValueError("must be an https URL")
    if not host or "." not in host or parts.username is not None or parts.password is not None:
        raise ValueError("must be an https URL with a host name")
    return value


class CrisisResourceIn(BaseModel):
    """A whole resource: what POST creates and PUT replaces."""

    model_config = ConfigDict(extra="forbid")

    #: ISO 3166-1 alpha-2 (`US`, `GB`, `ES`).
    country: Annotated[str, StringConstraints(max_length=2 + 8)]
    #: ISO 3166-2 subdivision of `country` (`GB-SCT`), or None for the whole country.
    region: Annotated[str, StringConstraints(max_length=12)] | None = None
    #: BCP 47 tags of the languages the service answers in, most used first.
    languages: list[LanguageTag] = Field(min_length=1, max_length=10)
    name: Name
    kind: Kind
    channel: Channel
    #: A number to call or text (`phone`, `sms`), or the https URL of a chat or page.
    contact: Annotated[str, StringConstraints(max_length=MAX_URL)]
    #: For `sms`: the word to send, if the service asks for one.
    keyword: str | None = None
    #: A short instruction for the person ("press 2 for Spanish").
    note: ShortText | None = None
    #: Opening hours in words, when not 24/7 ("Mon-Fri 09:00-17:00").
    hours: ShortText | None = None
    open_24_7: bool
    #: The https URL of the authority that publishes the contact.
    source: Annotated[str, StringConstraints(max_length=MAX_URL)]
    #: The day the contact was last checked against `source`; None: never (shown stale).
    verified_at: date | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return codes.country(value)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return https_url(value)

    @field_validator("keyword")
    @classmethod
    def _keyword(cls, value: str | None) -> str | None:
        if value is not None and not _KEYWORD.fullmatch(value.strip()):
            raise ValueError("one word of letters and digits, at most 20")
        return None if value is None else value.strip()

    @field_validator("verified_at")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        # A day ahead at most: the admin's day may already have begun east of UTC.
        if value is not None and (value - utcnow().date()).days > 1:
            raise ValueError("is in the future")
        return value

    def checked(self) -> CrisisResourceIn:
        """The resource with its cross-field rules applied (the region of its country, the
        contact in its channel's form), or Unprocessable naming each field that breaks one."""
        problems: list[dict[str, str]] = []
        region, contact = self.region, self.contact
        if region is not None:
            try:
                region = codes.subdivision(region, self.country)
            except ValueError as exc:
                problems.append({"field": "region", "problem": str(exc)})
        try:
            contact = dialled(contact) if self.channel in ("phone", "sms") else https_url(contact)
        except ValueError as exc:
            problems.append({"field": "contact", "problem": str(exc)})
        if self.keyword is not None and self.channel != "sms":
            problems.append({"field": "keyword", "problem": "only for an sms contact"})
        if self.kind == "emergency" and self.channel not in ("phone", "sms"):
            problems.append(
                {"field": "channel", "problem": "an emergency number is a phone or sms contact"}
            )
        if problems:
            raise Unprocessable(f"{len(problems)} problem(s) in the request", problems=problems)
        return self.model_copy(update={"region": region, "contact": contact})


class CrisisResourceOut(BaseModel):
    id: uuid.UUID
    country: str
    region: str | None
    languages: list[str]
    name: str
    kind: Kind
    channel: Channel
    contact: str
    keyword: str | None
    note: str | None
    hours: str | None
    open_24_7: bool
    source: str
    verified_at: date | None
    #: Not checked against its source for more than 180 days (or never): to check again.
    stale: bool
    created_at: datetime
    updated_at: datetime
