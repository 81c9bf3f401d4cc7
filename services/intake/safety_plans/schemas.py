"""What the safety-plan routes accept and answer (besides the plan document itself).

Request bodies are short and strict, and never echoed back in an error: entries are the person's
own words (PHI).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.intake.safety_plans.document import MAX_ENTRIES_PER_STEP
from shared.text import NO_CONTROL

#: A plan's versions are PostgreSQL integers.
MAX_VERSION = 2**31 - 1

# --- request bodies: short, strict, and never echoed back in an error -----------------------

EntryText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000, pattern=NO_CONTROL),
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=NO_CONTROL)
]
EntryId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]


class Versioned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The version the change was made against; or send `If-Match: "<version>"`.
    version: int | None = Field(None, ge=1, le=MAX_VERSION)


class EntryIn(Versioned):
    text: EntryText


class OrderIn(Versioned):
    entry_ids: list[EntryId] = Field(max_length=MAX_ENTRIES_PER_STEP)


class NotApplicableIn(Versioned):
    reason: Reason


class EmergencyTaskIn(Versioned):
    status: Literal["completed", "declined"]
    outcome: EntryText | None = None
    reason: Reason | None = None


class ReviewIn(Versioned):
    note: EntryText | None = None


class DueIn(Versioned):
    due_at: AwareDatetime


# --- reading ---------------------------------------------------------------------------------


class Review(BaseModel):
    """The clinician's review of the plan as it stands (a later change voids it)."""

    by: str
    at: datetime


class SafetyPlanListItem(BaseModel):
    """A worklist row: where the plan stands, never what it says (its entries are PHI)."""

    id: uuid.UUID
    screening_id: uuid.UUID
    status: Literal["open", "complete"]
    version: int
    due_at: datetime
    created_at: datetime
    overdue: bool
    reviewed: Review | None
    risk_level: str
