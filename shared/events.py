"""The event envelope and the message schemas on the wire (README, "Architecture").

Events carry ids, codes, levels and reasons, never a name, phone number or free-text note:
PHI stays in PostgreSQL. The schemas below are the only place a message's shape is defined.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

RiskLevelName = Literal["none", "low", "moderate", "high", "imminent"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One JSON envelope per Kafka message."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Envelope:
        return cls.model_validate_json(raw or b"")


class EventData(BaseModel):
    """Base of every event's `data`; `TYPE` is the envelope's `type`."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str] = ""

    def envelope(self, *, correlation_id: str, event_type: str | None = None) -> Envelope:
        return Envelope(
            type=event_type or self.TYPE,
            correlation_id=correlation_id,
            data=self.model_dump(mode="json"),
        )


class ScreeningSubmitted(EventData):
    TYPE = "screening.submitted"

    screening_id: uuid.UUID
    source: Literal["hotline", "ehr"]
    instrument: str
    answers: dict[str, Any]
    imminent_danger: bool = False
    submitted_at: datetime
    #: The person's language (BCP 47; not PHI). Missing in events from before: English.
    language: str = "en"


class LevelResponseData(BaseModel):
    """What the assessed level starts, from the rule set's response table."""

    model_config = ConfigDict(frozen=True)

    alert: bool
    urgency: str | None
    safety_plan: bool
    emergency_task: bool
    ack_deadline_seconds: int | None


class RiskAssessed(EventData):
    TYPE = "risk.assessed"

    assessment_id: uuid.UUID
    screening_id: uuid.UUID
    instrument: str
    level: RiskLevelName
    flagged: bool
    reasons: list[str]
    rules_version: str
    assessed_at: datetime
    response: LevelResponseData
    details: dict[str, Any] = Field(default_factory=dict)
    #: The screening's language, passed along so notify can page a clinician who speaks it
    #: (BCP 47; not PHI). Missing in events from before: English.
    language: str = "en"


AlertStatus = Literal["pending", "delivered", "acknowledged", "escalated", "failed", "resolved"]


class AlertEvent(EventData):
    """Published on every alert state change; `type` is `alert.<what happened>`."""

    alert_id: uuid.UUID
    screening_id: uuid.UUID
    status: AlertStatus
    risk_level: RiskLevelName
    urgency: str | None
    escalation_level: int
    created_at: datetime
    changed_at: datetime
    attempt: int | None = None
    failure: str | None = None
    #: Nobody on call speaks the person's language (notify's oncall/languages.py); None in
    #: events from before languages.
    interpreter_needed: bool | None = None
    #: The alert's version after this change (1: created); orders its events. None from a
    #: notify that predates versions.
    version: int | None = None


class SafetyPlanEvent(EventData):
    """Published on safety-plan state changes; `type` is `safety_plan.<what happened>`
    (opened, revised, completed, overdue). Never the entries: they are the person's own words.
    """

    plan_id: uuid.UUID
    screening_id: uuid.UUID
    status: Literal["open", "complete"]
    risk_level: RiskLevelName
    due_at: datetime | None
    changed_at: datetime
    #: The plan's revision after the change, so a consumer can order or skip stale events.
    version: int | None = None
    #: For `safety_plan.revised`: what was done (e.g. `entry_added`); never what was written.
    action: str | None = None


class FollowUpEvent(EventData):
    """Published when a follow-up needs someone; `type` is `follow_up.<what happened>`
    (overdue, unreachable, reply_risk). Ids, codes and times only: never a note, a number or
    a reply (PHI stays in intake's tables).

    `notice_id` names this one notice (one reminder or alert per notice, however often the event
    is redelivered); `reasons` are codes (`risk_words:en`, `check_failed`)."""

    follow_up_id: uuid.UUID
    screening_id: uuid.UUID
    notice_id: uuid.UUID
    status: Literal["open", "completed", "unreachable"]
    risk_level: RiskLevelName
    due_at: datetime | None
    attempts: int
    changed_at: datetime
    #: Who should act: the on-call `team`, or the `supervisor`.
    audience: Literal["team", "supervisor"] = "team"
    reasons: list[str] = Field(default_factory=list)
