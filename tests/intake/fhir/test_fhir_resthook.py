"""Rest-hooks end to end: a FHIR screening's RiskAssessment arrives signed at the EHR's endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from deploy.localstack import free_port
from tests.support.fhir import FHIR_JSON, fixture
from tests.support.receiver import Received, Receiver
from tests.support.waits import wait_case

SECRET = "ehr-rest-hook-secret-0123456789abcdef"


@pytest.fixture(scope="module")
async def ehr() -> AsyncIterator[Receiver]:
    """The EHR's rest-hook endpoint (a receiver of its own, apart from the on-call pager)."""
    hook = Receiver(port=free_port())
    await hook.start()
    yield hook
    await hook.stop()


async def subscribe(intake: httpx.AsyncClient, endpoint: str, **extra: str) -> tuple[str, str]:
    """Register a rest-hook for a fresh identifier system; (subscription id, system)."""
    system = f"urn:example:ehr-{uuid.uuid4().hex[:8]}"
    response = await intake.post(
        "/v1/fhir/subscriptions",
        json={"endpoint": endpoint, "identifier_system": system, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], system


async def submit(intake: httpx.AsyncClient, name: str, system: str) -> str:
    response = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        content=json.dumps(fixture(name, system=system)),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def pushes_for(
    ehr: Receiver, sid: str, *, count: int = 1, timeout: float = 10
) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        got = [r for r in ehr.got if r.json.get("id") == sid]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.01)


def signed(push: Received, secret: str) -> bool:
    ts = push.headers["x-triage-timestamp"]
    want = hmac.new(secret.encode(), f"{ts}.".encode() + push.body, hashlib.sha256).hexdigest()
    given = [s.strip().removeprefix("v1=") for s in push.headers["x-triage-signature"].split(",")]
    return any(hmac.compare_digest(want, g) for g in given)


async def test_risk_assessment_is_pushed_signed_to_the_ehr(
    intake: httpx.AsyncClient, ehr: Receiver, db: asyncpg.Pool
) -> None:
    sub_id, system = await subscribe(intake, ehr.url, secret=SECRET)
    t0 = time.time()
    sid = await submit(intake, "cssrs-contained-questionnaire.json", system)

    [push] = await pushes_for(ehr, sid)
    assert push.at - t0 < 5
    assert signed(push, SECRET)
    assert not signed(push, SECRET + "x")
    assert push.headers["content-type"] == FHIR_JSON
    assert uuid.UUID(push.headers["x-triage-event-id"])
    ra = RiskAssessment.model_validate(push.json)
    levels = {c.system: c.code for c in ra.prediction[0].qualitativeRisk.coding}
    assert levels["urn:crisis-triage:fhir:risk-level"] == "low"
    assert ra.basis[0].identifier.system == system
    assert ra.subject.identifier.value == "MRN-553311", "the EHR's own patient identifier"
    assert "Alexandra" not in push.body.decode() and "555 0199" not in push.body.decode()

    served = await intake.get(f"/v1/screenings/{sid}/fhir/RiskAssessment")
    assert json.loads(push.body) == served.json(), "the push is the RiskAssessment served"
    # The push is recorded as delivered once the EHR's answer is back: a moment after it got it.
    deadline = time.monotonic() + 5
    while True:
        sub = (await intake.get(f"/v1/fhir/subscriptions/{sub_id}")).json()
        pushes = [(p["screening_id"], p["status"], p["attempts"]) for p in sub["pushes"]]
        if pushes != [(sid, "pending", 1)] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert "secret" not in sub
    assert pushes == [(sid, "delivered", 1)]


async def test_failed_pushes_are_retried_with_backoff_and_every_attempt_recorded(
    intake: httpx.AsyncClient, ehr: Receiver, db: asyncpg.Pool
) -> None:
    registered = await intake.post(
        "/v1/fhir/subscriptions",
        json={"endpoint": ehr.url, "identifier_system": f"urn:example:ehr-{uuid.uuid4().hex[:8]}"},
    )
    assert registered.status_code == 201
    secret, system = registered.json()["secret"], registered.json()["identifier_system"]
    assert len(secret) >= 32, "a generated secret is returned once"

    ehr.fail_next(503, 500)
    sid = await submit(intake, "cssrs-bhp.json", system)
    pushes = await pushes_for(ehr, sid, count=3)
    assert len(pushes) == 3
    assert len({p.headers["x-triage-event-id"] for p in pushes}) == 1, "one event id across retries"
    assert all(signed(p, secret) for p in pushes)
    gaps = [b.at - a.at for a, b in itertools.pairwise(pushes)]
    # FHIR_PUSH_RETRY_BASE_SECONDS 0.5: the first retry after 0.25-0.5 s, the second 0.5-1 s.
    assert gaps[0] >= 0.2 and gaps[1] >= 0.45, gaps

    push_id = uuid.UUID(pushes[0].headers["x-triage-event-id"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        attempts = await db.fetch(
            "SELECT attempt, http_status, outcome FROM intake.fhir_push_attempts"
            " WHERE push_id = $1 ORDER BY attempt",
            push_id,
        )
        if len(attempts) == 3:
            break
        await asyncio.sleep(0.05)
    assert [tuple(a) for a in attempts] == [
        (1, 503, "temporary_failure"),
        (2, 500, "temporary_failure"),
        (3, 200, "delivered"),
    ]
    assert await db.fetchval("SELECT status FROM intake.fhir_pushes WHERE id = $1", push_id) == (
        "delivered"
    )


async def test_a_permanent_refusal_is_not_retried(
    intake: httpx.AsyncClient, ehr: Receiver, db: asyncpg.Pool
) -> None:
    _, system = await subscribe(intake, ehr.url, secret=SECRET)
    ehr.fail_next(400)
    sid = await submit(intake, "phq9-lhc-forms.json", system)
    assert len(await pushes_for(ehr, sid)) == 1
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline and status != "failed":
        status = await db.fetchval(
            "SELECT status FROM intake.fhir_pushes WHERE screening_id = $1", uuid.UUID(sid)
        )
        await asyncio.sleep(0.05)
    assert status == "failed"
    assert len(await pushes_for(ehr, sid, count=2, timeout=1)) == 1


async def test_only_the_ehr_that_sent_the_screening_gets_its_assessment(
    intake: httpx.AsyncClient, ehr: Receiver, db: asyncpg.Pool
) -> None:
    sub_id, system = await subscribe(intake, ehr.url, secret=SECRET)
    other = await submit(intake, "cssrs-bhp.json", f"urn:example:other-{uuid.uuid4().hex[:6]}")
    json_ehr = await intake.post(
        "/v1/screenings",
        json={
            "subject_id": "Patient/1",
            "source": "ehr",
            "external_id": f"{system}|json-1",
            "instrument": "phq9",
            "answers": {"items": [0] * 8 + [1]},
        },
    )
    # The push is queued in the transaction that records the assessment: once assessed, a
    # screening that was going to be pushed has its push row.
    for sid in (other, json_ehr.json()["id"]):
        await wait_case(intake, sid, lambda c: c["status"] == "assessed")
        count = await db.fetchval(
            "SELECT count(*) FROM intake.fhir_pushes WHERE screening_id = $1", uuid.UUID(sid)
        )
        assert count == 0

    assert (await intake.delete(f"/v1/fhir/subscriptions/{sub_id}")).status_code == 204
    after = await submit(intake, "cssrs-bhp.json", system)
    await wait_case(intake, after, lambda c: c["status"] == "assessed")
    assert (
        await db.fetchval(
            "SELECT count(*) FROM intake.fhir_pushes WHERE screening_id = $1", uuid.UUID(after)
        )
        == 0
    ), "a deleted subscription gets nothing"
    assert (await intake.get(f"/v1/fhir/subscriptions/{sub_id}")).json()["status"] == "off"


async def test_registration_is_idempotent_and_validated(intake: httpx.AsyncClient) -> None:
    sub_id, system = await subscribe(intake, "https://ehr.example.org/fhir/RiskAssessment")
    again = await intake.post(
        "/v1/fhir/subscriptions",
        json={
            "endpoint": "https://ehr.example.org/fhir/RiskAssessment",
            "identifier_system": system,
        },
    )
    assert again.status_code == 200 and again.json()["id"] == sub_id
    assert "secret" not in again.json()
    for bad in (
        {"endpoint": "ftp://ehr.example.org/x", "identifier_system": system},
        {"endpoint": "https://ehr.example.org/x", "identifier_system": system, "secret": "short"},
        {"endpoint": "https://ehr.example.org/x"},
    ):
        response = await intake.post("/v1/fhir/subscriptions", json=bad)
        assert response.status_code == 422
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "short" not in response.text
    missing = await intake.get(f"/v1/fhir/subscriptions/{uuid.uuid4()}")
    assert missing.status_code == 404
