"""The case view and the worklist, as intake answers them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.intake.follow_ups.schemas import FollowUpSummary
from services.intake.screenings.schemas import Contact


class RiskOut(BaseModel):
    level: str
    flagged: bool
    reasons: list[str]
    rules_version: str
    assessed_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class AlertOut(BaseModel):
    id: uuid.UUID
    status: str
    risk_level: str
    urgency: str | None
    escalation_level: int
    created_at: datetime
    changed_at: datetime
    interpreter_needed: bool | None = None


class SafetyPlanSummary(BaseModel):
    id: uuid.UUID
    status: str
    risk_level: str
    due_at: datetime
    overdue: bool
    emergency_task_status: str | None


class CaseView(BaseModel):
    id: uuid.UUID
    subject_id: str
    source: str
    external_id: str | None
    instrument: str
    #: The instrument's answers as submitted (field names in docs/clinical-rules.md), so a
    #: clinician sees what was asked and answered; a skipped question is absent or null.
    answers: dict[str, Any]
    imminent_danger: bool
    #: The person's language (BCP 47), country (ISO 3166-1: the submitter's, else the
    #: deployment's DEFAULT_COUNTRY) and region (ISO 3166-2, or None).
    language: str = "en"
    country: str | None = None
    region: str | None = None
    #: Nobody on call speaks the person's language (notify's alerts say so): find an
    #: interpreter. False when no alert says it (or the person speaks English).
    interpreter_needed: bool = False
    status: str
    received_at: datetime
    risk: RiskOut | None
    alerts: list[AlertOut]
    safety_plan: SafetyPlanSummary | None
    #: The follow-up after the call (a flagged screening's), where it stands; no note.
    follow_up: FollowUpSummary | None = None
    #: PHI, only for a caller that may see it (hotline staff on the screenings they submitted,
    #: clinicians, supervisors, admins); both keys are left out for anyone else.
    contact: Contact | None = None
    notes: str | None = None


# --- the list (GET /v1/screenings): what a worklist row needs, never contact or notes -------


class RiskSummary(BaseModel):
    """The assessment's outcome; its rule details stay on the case view."""

    level: str
    flagged: bool
    reasons: list[str]
    assessed_at: datetime


class SafetyPlanRef(BaseModel):
    id: uuid.UUID
    status: str
    due_at: datetime


class ScreeningListItem(BaseModel):
    id: uuid.UUID
    subject_id: str
    source: str
    instrument: str
    status: str
    #: When intake received it (the case view's `received_at`); the list's order.
    created_at: datetime
    risk: RiskSummary | None
    safety_plan: SafetyPlanRef | None
