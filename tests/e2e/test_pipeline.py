"""The pipeline end to end on the real stack: intake → Kafka → risk → Kafka → notify → webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid

import asyncpg
import httpx

from deploy.localstack import LocalStack
from shared.topics import ALERT_EVENTS, RISK_ASSESSED, SAFETY_PLAN_EVENTS, SCREENING_SUBMITTED
from tests.conftest import WEBHOOK_SECRET
from tests.support.cases import HIGH_CSSRS, IMMINENT_ASQ, LOW_CSSRS, MODERATE_PHQ9, screening
from tests.support.kafka import read_all
from tests.support.receiver import Received, Receiver
from tests.support.waits import wait_case


def signature_valid(page: Received, secret: str = WEBHOOK_SECRET) -> bool:
    ts = page.headers["x-triage-timestamp"]
    want = hmac.new(secret.encode(), f"{ts}.".encode() + page.body, hashlib.sha256).hexdigest()
    given = [s.strip()[3:] for s in page.headers["x-triage-signature"].split(",")]
    return any(hmac.compare_digest(want, g) for g in given)


async def test_high_risk_screening_pages_once_signed_within_5s(
    intake: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = screening(
        HIGH_CSSRS, contact={"name": "Jo Caller", "phone": "+1 555 0100"}, notes="lives alone"
    )
    t0 = time.time()
    response = await intake.post("/v1/screenings", json=body)
    assert response.status_code == 202
    sid = response.json()["id"]
    assert response.headers["location"] == f"/v1/screenings/{sid}"

    pages = await receiver.wait_for(sid, timeout=5)
    assert len(pages) == 1, "a high-risk screening pages the on-call clinician within 5 s"
    page = pages[0]
    assert page.at - t0 < 5
    assert signature_valid(page)
    assert page.json["risk_level"] == "high"
    assert page.json["urgency"] == "urgent"
    assert set(page.json) >= {
        "alert_id",
        "screening_id",
        "risk_level",
        "urgency",
        "reasons",
        "escalation_level",
        "created_at",
        "ack_url",
    }
    assert "Jo Caller" not in page.body.decode() and "555 0100" not in page.body.decode()

    case = await wait_case(
        intake, sid, lambda c: c["alerts"] and c["alerts"][0]["status"] == "delivered"
    )
    assert case["status"] == "assessed"
    assert case["risk"]["level"] == "high" and case["risk"]["flagged"] is True
    assert case["risk"]["rules_version"]
    assert case["safety_plan"]["status"] == "open"
    await asyncio.sleep(1.0)
    assert len(receiver.for_screening(sid)) == 1, "exactly one page"


async def test_low_risk_screening_is_assessed_and_pages_nobody(
    intake: httpx.AsyncClient, receiver: Receiver
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(LOW_CSSRS))).json()["id"]
    case = await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    assert case["risk"]["level"] == "low" and case["risk"]["flagged"] is False
    await asyncio.sleep(1.5)
    assert receiver.for_screening(sid) == []
    assert (await intake.get(f"/v1/screenings/{sid}")).json()["safety_plan"] is None


async def test_each_flagged_level_pages_with_its_level(
    intake: httpx.AsyncClient, receiver: Receiver
) -> None:
    for case, level in ((MODERATE_PHQ9, "moderate"), (IMMINENT_ASQ, "imminent")):
        sid = (await intake.post("/v1/screenings", json=screening(case))).json()["id"]
        pages = await receiver.wait_for(sid)
        assert [p.json["risk_level"] for p in pages] == [level]


async def test_repeated_external_id_makes_one_screening_and_one_alert(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    ext = f"ehr-msg-{uuid.uuid4().hex[:8]}"
    body = screening(HIGH_CSSRS, source="ehr", external_id=ext)
    answers = [await intake.post("/v1/screenings", json=body) for _ in range(3)]
    assert [r.status_code for r in answers] == [202, 200, 200]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    sid = ids.pop()
    await receiver.wait_for(sid)
    await asyncio.sleep(1.5)
    assert len(receiver.for_screening(sid)) == 1
    n = await db.fetchval("SELECT count(*) FROM intake.screenings WHERE external_id = $1", ext)
    assert n == 1
    changed = await intake.post("/v1/screenings", json={**body, "imminent_danger": True})
    assert changed.status_code == 409


async def test_idempotency_key_replays_and_refuses_another_body(intake: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = screening(LOW_CSSRS)
    first = await intake.post("/v1/screenings", json=body, headers=key)
    again = await intake.post("/v1/screenings", json=body, headers=key)
    other = await intake.post(
        "/v1/screenings", json={**body, "subject_id": "someone-else"}, headers=key
    )
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"] == "conflict"


async def test_concurrent_duplicates_make_one_screening(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    ext = f"race-{uuid.uuid4().hex[:8]}"
    body = screening(LOW_CSSRS, source="ehr", external_id=ext)
    answers = await asyncio.gather(*(intake.post("/v1/screenings", json=body) for _ in range(8)))
    assert {r.status_code for r in answers} <= {200, 202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM intake.screenings WHERE external_id = $1", ext) == 1
    )


async def test_unknown_screening_is_404(intake: httpx.AsyncClient) -> None:
    response = await intake.get(f"/v1/screenings/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_phi_never_reaches_kafka(
    intake: httpx.AsyncClient, receiver: Receiver, stack: LocalStack
) -> None:
    name, phone, note = "Robin Privatename", "+1 555 0199", "sleeps at her sister's place"
    body = screening(IMMINENT_ASQ, contact={"name": name, "phone": phone}, notes=note)
    sid = (await intake.post("/v1/screenings", json=body)).json()["id"]
    await receiver.wait_for(sid)
    await wait_case(intake, sid, lambda c: c["safety_plan"] is not None and c["alerts"])

    seen = 0
    for topic in (SCREENING_SUBMITTED, RISK_ASSESSED, ALERT_EVENTS, SAFETY_PLAN_EVENTS):
        for record in await read_all(stack.bootstrap_servers, topic, timeout=2):
            value = record.value.decode(errors="replace")
            seen += sid in value
            assert name not in value and phone not in value and note not in value, topic
    assert seen >= 4, "the screening's own events were among those checked"
