"""Bad input gets a clear 4xx naming the problem; nothing is stored and nothing is published."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx
import pytest

from deploy.localstack import LocalStack
from shared.topics import SCREENING_SUBMITTED
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.kafka import end_offsets

PHI_NAME = "Alexandra Confidential"
PHI_NOTE = "a private free-text note"

BAD_BODIES = [
    ("unknown instrument", screening({"instrument": "beck", "answers": {}}), 422, "instrument"),
    (
        "phq9 eight items",
        screening({"instrument": "phq9", "answers": {"items": [0] * 8}}),
        422,
        "items",
    ),
    (
        "phq9 item out of range",
        screening({"instrument": "phq9", "answers": {"items": [0] * 8 + [4]}}),
        422,
        "items",
    ),
    (
        "phq9 boolean item",
        screening({"instrument": "phq9", "answers": {"items": [True] + [0] * 8}}),
        422,
        "items",
    ),
    (
        "cssrs method without thoughts",
        screening(
            {
                "instrument": "cssrs_screener",
                "answers": {
                    "wish_dead": True,
                    "suicidal_thoughts": False,
                    "method": True,
                    "behavior": False,
                },
            }
        ),
        422,
        "method",
    ),
    (
        "cssrs follow-up without behaviour",
        screening(
            {
                "instrument": "cssrs_screener",
                "answers": {
                    "wish_dead": False,
                    "suicidal_thoughts": False,
                    "behavior": False,
                    "behavior_past_3_months": True,
                },
            }
        ),
        422,
        "behavior_past_3_months",
    ),
    (
        "cssrs missing q3-q5 after thoughts",
        screening(
            {
                "instrument": "cssrs_screener",
                "answers": {"wish_dead": True, "suicidal_thoughts": True, "behavior": False},
            }
        ),
        422,
        "method",
    ),
    (
        "asq invalid answer",
        screening(
            {
                "instrument": "asq",
                "answers": {
                    "wished_dead": "maybe",
                    "better_off_dead": False,
                    "thoughts_past_week": False,
                    "ever_attempted": False,
                },
            }
        ),
        422,
        "wished_dead",
    ),
    (
        "missing subject",
        {"source": "hotline", "instrument": "phq9", "answers": {"items": [0] * 9}},
        422,
        "subject_id",
    ),
    ("unknown source", screening(HIGH_CSSRS, source="fax"), 422, "source"),
    ("unknown field", screening(HIGH_CSSRS, imminent_dnger=True), 422, "imminent_dnger"),
    (
        "bad contact with PHI",
        screening(HIGH_CSSRS, contact={"name": PHI_NAME, "phone": 5550100}, notes=PHI_NOTE),
        422,
        "contact.phone",
    ),
    (
        "NUL in the notes",
        screening(HIGH_CSSRS, contact={"name": PHI_NAME}, notes=f"{PHI_NOTE}\u0000"),
        422,
        "notes",
    ),
    (
        "control character in the name",
        screening(HIGH_CSSRS, contact={"name": f"{PHI_NAME}\u0007"}),
        422,
        "contact.name",
    ),
    (
        "unknown key that is not a field name",
        screening(HIGH_CSSRS, contact={PHI_NAME: "555 0100"}),
        422,
        "contact.(unexpected field)",
    ),
    (
        "answers not an object",
        screening({"instrument": "phq9", "answers": [0] * 9}),
        422,
        "answers",
    ),
]


async def outbox_drained(db: asyncpg.Pool, timeout: float = 30.0) -> None:
    """Wait until the relay has published what earlier tests wrote (the safety-plan tests, run
    just before, leave events in the outbox for a moment), so that an event left there is this
    request's."""
    deadline = time.monotonic() + timeout
    while await db.fetchval("SELECT count(*) FROM intake.outbox"):
        assert time.monotonic() < deadline, "the outbox never drained"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("name", "body", "status", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_body_is_refused_naming_the_field_and_nothing_is_kept(
    name: str,
    body: dict,
    status: int,
    field: str,
    intake: httpx.AsyncClient,
    db: asyncpg.Pool,
    stack: LocalStack,
) -> None:
    await outbox_drained(db)
    before_rows = await db.fetchval("SELECT count(*) FROM intake.screenings")
    before_offsets = await end_offsets(stack.bootstrap_servers, SCREENING_SUBMITTED)

    response = await intake.post("/v1/screenings", json=body)

    assert response.status_code == status, response.text
    error = response.json()
    assert error["error"] and error["detail"]
    assert any(field in p["field"] for p in error["problems"]), error
    assert PHI_NAME not in response.text and PHI_NOTE not in response.text
    assert await db.fetchval("SELECT count(*) FROM intake.screenings") == before_rows
    assert await db.fetchval("SELECT count(*) FROM intake.outbox") == 0
    assert await end_offsets(stack.bootstrap_servers, SCREENING_SUBMITTED) == before_offsets


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 422, "invalid"),
        (json.dumps({"x": "y" * 70_000}).encode(), 413, "too_large"),
    ],
    ids=["malformed", "empty", "oversized"],
)
async def test_unreadable_body_is_refused(
    raw: bytes, status: int, error: str, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    before = await db.fetchval("SELECT count(*) FROM intake.screenings")
    response = await intake.post(
        "/v1/screenings", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert await db.fetchval("SELECT count(*) FROM intake.screenings") == before


async def test_oversized_chunked_body_is_refused(intake: httpx.AsyncClient) -> None:
    async def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = await intake.post(
        "/v1/screenings", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
