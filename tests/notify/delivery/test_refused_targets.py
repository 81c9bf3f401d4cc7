"""A page's address that cannot be read never stops the page: it goes to the fallback webhook.

Unit tests of the deliverer's claim and of a step's targets, on rows as the database returns
them; the end-to-end case (a planted clinician's address) is in tests/e2e/test_phi.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notify.delivery.pages import page_of
from services.notify.models import sealed
from shared.phi import KeyRing, new_phi_key

_TARGET = sealed("deliveries")


def _ring(*, sealed_db: bool) -> KeyRing:
    ring = KeyRing.parse(new_phi_key())
    assert ring is not None
    ring.state.sealed = sealed_db
    return ring


def _row(ring: KeyRing, channel: str, target: str | None, *, seal: bool = True) -> dict[str, Any]:
    delivery_id = uuid.uuid4()
    stored = _TARGET.seal(ring, {"id": delivery_id}, target) if seal else target
    return {
        "id": delivery_id,
        "attempts": 1,
        "escalation_level": 0,
        "repeat_round": 0,
        "alert_id": uuid.uuid4(),
        "screening_id": uuid.uuid4(),
        "risk_level": "high",
        "urgency": "urgent",
        "reasons": [],
        "created_at": datetime.now(UTC),
        "channel": channel,
        "target": stored,
        "traceparent": None,
    }


@pytest.mark.parametrize("channel", ["email", "webhook"])
def test_a_planted_target_in_a_sealed_database_pages_the_fallback_webhook(channel: str) -> None:
    ring = _ring(sealed_db=True)
    page = page_of(_row(ring, channel, "insider@example.org", seal=False), ring)
    assert page.target is None and page.channel == "webhook"


def test_a_sealed_target_and_one_stored_before_encryption_are_paged_as_planned() -> None:
    ring = _ring(sealed_db=True)
    page = page_of(_row(ring, "email", "dr@clinic.example.org"), ring)
    assert (page.channel, page.target) == ("email", "dr@clinic.example.org")
    before = _ring(sealed_db=False)
    old = page_of(_row(before, "email", "dr@clinic.example.org", seal=False), before)
    assert (old.channel, old.target) == ("email", "dr@clinic.example.org")
