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


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    target: str
    started_at: datetime
    finished_at: datetime
    http_status: int | None
    outcome: str
    error: str | None
