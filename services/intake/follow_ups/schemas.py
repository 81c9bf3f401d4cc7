"""What the follow-up routes accept and answer. Bodies are strict and never echoed back in an
error: a note is the caller's free text about a person (PHI)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.text import NO_CONTROL

Outcome = Literal[
    "reached", "no_answer", "left_message", "declined", "in_treatment", "wrong_number"
]
Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NO_CONTROL)
]


class AttemptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    #: PHI: stored encrypted, shown only to those who may work the follow-up, never in an
    #: event, a log or the audit entry.
    note: Note | None = None


class AttemptOut(BaseModel):
    number: int
    outcome: Outcome
    note: str | None
    actor: str
    role: str
    at: datetime


class TaskOut(BaseModel):
    id: uuid.UUID
    follow_up_id: uuid.UUID
    kind: Literal["unreachable", "reply"]
    for_role: Literal["supervisor", "team"]
    status: Literal["open", "done"]
    reply_id: uuid.UUID | None
    created_at: datetime
    done_by: str | None
    done_at: datetime | None


class FollowUpSummary(BaseModel):
    """A worklist row, and the case view's copy: where the follow-up stands, no note."""

    id: uuid.UUID
    screening_id: uuid.UUID
    status: Literal["open", "completed", "unreachable"]
    risk_level: str
    outcome: Outcome | None
    attempts: int
    due_at: datetime
    overdue: bool
    created_at: datetime


# --- Caring Contacts ----------------------------------------------------------------------------

Address = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=NO_CONTROL)
]


class ConsentIn(BaseModel):
    """The person's consent to Caring Contacts. `phone` (sms) or `email` (email) is PHI."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "email"]
    phone: Address | None = None
    email: Address | None = None
    #: IANA time zone name (`America/Los_Angeles`): messages go at daytime there.
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=8)]


class CaringMessageOut(BaseModel):
    sequence: int
    status: Literal["pending", "sent", "failed", "cancelled"]
    due_at: datetime
    sent_at: datetime | None
    provider_sid: str | None
    provider_status: str | None


class CaringContactOut(BaseModel):
    id: uuid.UUID
    status: Literal["active", "withdrawn", "opted_out"]
    channel: Literal["sms", "email"]
    #: PHI: the number (E.164) or address; shown to those who work the follow-up.
    address: str
    time_zone: str
    language: str
    schedule: str
    texts_version: str
    recorded_by: str
    recorded_role: str
    recorded_at: datetime
    ended_reason: str | None
    ended_by: str | None
    ended_at: datetime | None
    messages: list[CaringMessageOut]


class ReplyOut(BaseModel):
    id: uuid.UUID
    received_at: datetime
    body: str
    classification: Literal["routine", "stop", "risk", "unclassified"]
    reasons: list[str]


class FollowUpOut(FollowUpSummary):
    max_attempts: int
    closed_at: datetime | None
    attempt_log: list[AttemptOut]
    tasks: list[TaskOut]
    #: Every enrolment in Caring Contacts, oldest first (at most one active).
    caring_contacts: list[CaringContactOut] = []
    #: The person's replies, oldest first (PHI: the read is audited).
    replies: list[ReplyOut] = []
