"""The on-call configuration's requests and answers: clinicians, contact methods, schedules,
overrides, escalation policies, who is on call and who covers a window."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.notify.times import OUT_OF_RANGE, in_range
from shared import locales
from shared.text import printable
from shared.twilio import e164


def _supported(value: datetime | None) -> datetime | None:
    if value is not None and not in_range(value):
        raise ValueError(OUT_OF_RANGE)
    return value


_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
RiskLevelIn = Literal["moderate", "high", "imminent"]


class ContactMethodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "email", "sms", "voice"]
    address: Annotated[str, printable(2000, min_length=3)]
    #: Seconds after its escalation level pages before this method is tried.
    delay_seconds: int = Field(0, ge=0, le=86400)
    #: Order among the clinician's methods; defaults to the order given.
    position: int | None = Field(None, ge=0, le=1000)

    @model_validator(mode="after")
    def _address_fits_kind(self) -> ContactMethodIn:
        if self.kind == "webhook":
            try:
                url = httpx.URL(self.address)
            except httpx.InvalidURL:
                url = None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                raise ValueError("a webhook address must be an http(s) URL")
        elif self.kind in ("sms", "voice"):
            try:
                self.address = e164(self.address)
            except ValueError as exc:
                raise ValueError(f"an {self.kind} address must be a phone number: {exc}") from None
        elif not _EMAIL.match(self.address):
            raise ValueError("an email address must look like name@example.org")
        return self


class ContactMethodOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    address: str
    position: int
    delay_seconds: int
    #: When the phone texted STOP (or the provider refused it as unsubscribed): skipped since.
    opted_out_at: datetime | None = None


#: A BCP 47 tag CLDR knows (`en`, `es`, `es-MX`), in canonical case; a bad one is named by its
#: place (`languages.1`) without its value.
LanguageTag = Annotated[str, StringConstraints(max_length=35), AfterValidator(locales.language_tag)]


def _distinct(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


class ClinicianIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, printable(200)]
    contact_methods: list[ContactMethodIn] = Field(default_factory=list, max_length=20)
    #: The languages the clinician can speak with a person in crisis (none: English).
    languages: Annotated[list[LanguageTag], AfterValidator(_distinct)] = Field(
        default_factory=list, max_length=20
    )


class LanguagesIn(BaseModel):
    """`PUT /v1/clinicians/{id}/languages`: the whole list, replaced."""

    model_config = ConfigDict(extra="forbid")

    languages: Annotated[list[LanguageTag], AfterValidator(_distinct)] = Field(max_length=20)


class ClinicianOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    contact_methods: list[ContactMethodOut]
    languages: list[str] = Field(default_factory=list)


class RotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clinician_ids: list[uuid.UUID] = Field(min_length=1, max_length=200)
    shift_hours: int = Field(ge=1, le=24 * 28)
    #: Wall-clock time in time_zone when the first shift starts (an offset, if given, is converted).
    start: datetime
    time_zone: Annotated[str, printable(64)]
    end: datetime | None = None
    #: Higher layers win where they cover; defaults to the order given.
    layer: int | None = Field(None, ge=0, le=1000)

    _times_supported = field_validator("start", "end")(_supported)

    @model_validator(mode="after")
    def _zone_and_window(self) -> RotationIn:
        zone = time_zone(self.time_zone)
        self.start = local_wall_time(self.start, zone)
        if self.end is not None:
            self.end = local_wall_time(self.end, zone)
            if self.end <= self.start:
                raise ValueError("a rotation must end after it starts")
        return self


class RotationOut(BaseModel):
    layer: int
    clinician_ids: list[uuid.UUID]
    shift_hours: int
    start: datetime
    time_zone: str
    end: datetime | None


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clinician_id: uuid.UUID
    start: AwareDatetime
    end: AwareDatetime

    _times_supported = field_validator("start", "end")(_supported)

    @model_validator(mode="after")
    def _window(self) -> OverrideIn:
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")
        return self


class OverrideOut(BaseModel):
    id: uuid.UUID
    clinician_id: uuid.UUID
    start: datetime
    end: datetime


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, printable(200)]
    rotations: list[RotationIn] = Field(default_factory=list, max_length=20)


class ScheduleOut(BaseModel):
    id: uuid.UUID
    name: str
    rotations: list[RotationOut]
    overrides: list[OverrideOut]


class PolicyLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Seconds to wait for an acknowledgement; omitted: the risk level's ACK_DEADLINE_SECONDS.
    delay_seconds: int | None = Field(None, ge=1, le=7 * 86400)
    schedule_id: uuid.UUID | None = None
    clinician_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    #: For a high or imminent alert: besides whom the level pages, page at the same moment a
    #: clinician on call now (on any schedule) who speaks the person's language, when none of
    #: the level's does. Never delays the level's own pages.
    prefer_language: bool = False

    @model_validator(mode="after")
    def _someone(self) -> PolicyLevelIn:
        if self.schedule_id is None and not self.clinician_ids:
            raise ValueError("a level names a schedule or clinicians")
        return self


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, printable(200)]
    #: The risk levels whose alerts follow this policy (each level has at most one policy).
    risk_levels: list[RiskLevelIn] = Field(default_factory=list, max_length=3)
    levels: list[PolicyLevelIn] = Field(min_length=1, max_length=20)
    #: How many more times the levels run again from the first while nobody acknowledges.
    repeats: int = Field(0, ge=0, le=50)


class PolicyOut(BaseModel):
    id: uuid.UUID
    name: str
    risk_levels: list[str]
    levels: list[dict[str, Any]]
    repeats: int
    created_at: datetime
    changed_at: datetime


class OnCallEntry(BaseModel):
    schedule_id: uuid.UUID
    schedule: str
    clinician_id: uuid.UUID | None
    clinician: str | None
    source: str | None  # "rotation" | "override"; None when nobody covers the instant
    start: datetime | None
    end: datetime | None


class OnCallOut(BaseModel):
    at: datetime
    oncall: list[OnCallEntry]


class CoverageSegment(BaseModel):
    start: datetime
    end: datetime
    clinician_id: uuid.UUID | None  # all three None: nobody covers this stretch (a gap)
    clinician: str | None
    source: str | None  # "rotation" | "override"


class ScheduleCoverage(BaseModel):
    schedule_id: uuid.UUID
    schedule: str
    #: Consecutive, tiling [from, to) exactly; neighbours with the same cover are merged.
    segments: list[CoverageSegment]


class CoverageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    schedules: list[ScheduleCoverage]


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone (use an IANA name such as Europe/Berlin)") from exc


def local_wall_time(value: datetime, zone: ZoneInfo) -> datetime:
    """`value` as naive wall-clock time in `zone`; a naive value already is."""
    if value.tzinfo is None:
        return value
    return value.astimezone(zone).replace(tzinfo=None)
