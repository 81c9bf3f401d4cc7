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


class FollowUpOut(FollowUpSummary):
    max_attempts: int
    closed_at: datetime | None
    attempt_log: list[AttemptOut]
    tasks: list[TaskOut]
