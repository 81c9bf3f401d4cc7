"""Caring Contacts consent through the API: validated (number to E.164, time zone, language),
stored encrypted, every message scheduled; staff withdrawing consent cancels everything."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from tests.intake.follow_ups.test_follow_ups import open_follow_up
from tests.support.keys import CLINICIAN, HOTLINE, HOTLINE2

CONSENT = {
    "channel": "sms",
    "phone": "(201) 555-0123",
    "time_zone": "America/New_York",
    "language": "en",
}


async def test_consent_schedules_every_message_and_withdrawal_cancels_them(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    _, case = await open_follow_up(intake)
    url = f"/v1/follow-ups/{case['follow_up']['id']}/caring-contacts"
    response = await intake.post(url, json=CONSENT, headers=HOTLINE)
    assert response.status_code == 201, response.text
    (enrolment,) = response.json()["caring_contacts"]
    assert enrolment["address"] == "+12015550123", "normalised to E.164 (DEFAULT_COUNTRY=US)"
    assert enrolment["status"] == "active" and enrolment["recorded_role"] == "hotline"
    assert enrolment["recorded_by"] and enrolment["recorded_at"]
    messages = enrolment["messages"]
    assert len(messages) == 12 and all(m["status"] == "pending" for m in messages)
    zone = ZoneInfo("America/New_York")
    for m in messages:
        local = datetime.fromisoformat(m["due_at"]).astimezone(zone)
        assert time(9) <= local.time() < time(20)

    stored = await db.fetchval(
        "SELECT address FROM intake.caring_contacts WHERE id = $1", uuid.UUID(enrolment["id"])
    )
    assert stored.startswith("phi1:") and "2015550123" not in stored

    again = await intake.post(url, json=CONSENT, headers=HOTLINE)
    assert again.status_code == 409
    assert (await intake.delete(url, headers=HOTLINE2)).status_code == 404

    withdrawn = await intake.delete(url, headers=CLINICIAN)
    assert withdrawn.status_code == 204
    got = (await intake.get(f"/v1/follow-ups/{case['follow_up']['id']}")).json()
    (enrolment,) = got["caring_contacts"]
    assert enrolment["status"] == "withdrawn" and enrolment["ended_reason"] == "withdrawn"
    assert {m["status"] for m in enrolment["messages"]} == {"cancelled"}
    pending = await db.fetchval(
        "SELECT count(*) FROM intake.caring_messages WHERE contact_id = $1 AND status = 'pending'",
        uuid.UUID(enrolment["id"]),
    )
    assert pending == 0
    assert (await intake.delete(url, headers=CLINICIAN)).status_code == 404
    # A new consent may follow a withdrawn one.
    spanish = {
        **CONSENT,
        "phone": "+34 612 345 678",
        "time_zone": "Europe/Madrid",
        "language": "es",
    }
    assert (await intake.post(url, json=spanish, headers=CLINICIAN)).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"phone": "call me maybe 555"}, "phone"),
        ({"phone": None}, "phone"),
        ({"time_zone": "PST"}, "time_zone"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"language": "fr"}, "language"),
        ({"channel": "pigeon"}, "channel"),
        ({"channel": "email", "phone": None, "email": "not-an-address"}, "email"),
    ],
)
async def test_bad_consent_is_refused_naming_the_field(
    change: dict, field: str, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    _, case = await open_follow_up(intake)
    fid = case["follow_up"]["id"]
    body = {k: v for k, v in {**CONSENT, **change}.items() if v is not None}
    response = await intake.post(f"/v1/follow-ups/{fid}/caring-contacts", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text
    for key, value in change.items():
        if key in {"phone", "email", "time_zone"} and isinstance(value, str) and len(value) > 3:
            assert value not in response.text, "input is never echoed"
    n = await db.fetchval(
        "SELECT count(*) FROM intake.caring_contacts WHERE follow_up_id = $1", uuid.UUID(fid)
    )
    assert n == 0
