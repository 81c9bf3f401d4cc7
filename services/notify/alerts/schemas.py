"""The alerts' answers: an alert, its attempts, the list with who was paged."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    screening_id: uuid.UUID
    risk_level: str
    urgency: str | None
    reasons: list[str]
    status: str
    escalation_level: int
    created_at: datetime
    changed_at: datetime
    first_delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    #: The code its texts name ("Reply 7K3Q or 1"), once one was texted.
    reply_code: str | None = None
    repeat_round: int
    policy_id: uuid.UUID | None
    assessed_at: datetime | None
    resolved_at: datetime | None


class PagedOut(BaseModel):
    """One contact method an alert's pages reached or tried at one escalation level: who, how,
    and the latest try. Never the address (a sealed column): the console shows who, not where."""

    clinician_id: uuid.UUID | None  # None: the fallback webhook (ONCALL_WEBHOOK_URL)
    clinician: str | None
    channel: str
    escalation_level: int
    status: str  # the page's: pending (being retried), delivered, failed, cancelled
    at: datetime  # when its latest try finished


class AlertListItem(AlertOut):
    paged: list[PagedOut]


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    target: str
    started_at: datetime
    finished_at: datetime
    http_status: int | None
    outcome: str
    error: str | None


class PageOut(BaseModel):
    """One page of the alert (one contact method reached at one step): its channel, where it
    stands, the provider's last word on it (texts and calls) and what the phone answered
    (the command a reply was read as, never its text). Never the address."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    escalation_level: int
    repeat_round: int
    channel: str
    status: str
    attempts: int
    provider_status: str | None
    reply: str | None
    created_at: datetime
    finished_at: datetime | None
