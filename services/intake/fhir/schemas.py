"""What the rest-hook routes accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import httpx
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from services.intake.fhir.models import FhirSubscription
from shared.text import printable


class SubscriptionIn(BaseModel):
    """A rest-hook: POST the RiskAssessments of screenings identified with ``identifier_system``
    to ``endpoint``, signed with ``secret`` (generated and returned once when not given)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: Annotated[str, StringConstraints(min_length=8, max_length=2000)]
    identifier_system: Annotated[str, printable(500)]
    secret: Annotated[str, printable(200, min_length=32)] | None = None

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            raise ValueError("endpoint must be an absolute http(s) URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("endpoint must be an absolute http(s) URL")
        return value


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    endpoint: str
    identifier_system: str
    status: str
    created_at: datetime
    updated_at: datetime
    #: Only in the answer that generated it: it is not shown again.
    secret: str | None = None


def subscription_out(sub: FhirSubscription, *, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(
        id=sub.id,
        endpoint=sub.endpoint,
        identifier_system=sub.identifier_system,
        status=sub.status,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
        secret=secret,
    )
