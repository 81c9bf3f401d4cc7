"""An entry of the audit trail, as `GET /v1/audit` and the access log answer it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    service: str
    actor: str
    role: str
    credential_id: str
    action: str
    resource: str
    outcome: str
    correlation_id: str
    hash: str
    prev_hash: str
    client: str
    reason: str | None = None
