"""A rest-hook endpoint that never finishes answering holds a push no longer than its deadline,
holds no more than its share of the pusher's slots, and an endless answer is not read whole.

The session's intake pushes with FHIR_PUSH_TIMEOUT_SECONDS=3 (tests/conftest.py) and eight slots,
so an endpoint may hold two of them (FHIR_PUSH_PER_ENDPOINT unset: a quarter)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from deploy.localstack import free_port
from tests.support.fhir import FHIR_JSON, fixture
from tests.support.receiver import Receiver
from tests.support.slow import SlowServer

DEADLINE = 3.0


@pytest.fixture(scope="module")
async def ehr() -> AsyncIterator[Receiver]:
    hook = Receiver(port=free_port())
    await hook.start()
    yield hook
    await hook.stop()


async def _subscribe(intake: httpx.AsyncClient, endpoint: str) -> tuple[str, str]:
    system = f"urn:example:ehr-{uuid.uuid4().hex[:8]}"
    response = await intake.post(
        "/v1/fhir/subscriptions", json={"endpoint": endpoint, "identifier_system": system}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], system


async def _submit(intake: httpx.AsyncClient, system: str) -> str:
    response = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        content=json.dumps(fixture("cssrs-bhp.json", system=system)),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def test_a_dripping_endpoint_holds_its_share_for_its_deadline_and_others_go_on(
    intake: httpx.AsyncClient, ehr: Receiver, drip: SlowServer, db: asyncpg.Pool
) -> None:
    slow_sub, slow_system = await _subscribe(intake, drip.url)
    try:
        # More pushes to the dripping endpoint than the pusher has slots (eight).
        await asyncio.gather(*(_submit(intake, slow_system) for _ in range(10)))

        async def two_open() -> bool:
            return drip.open_now >= 2

        await _until(two_open, 15)
        assert drip.open_now >= 2
        # Another EHR's push goes out at once, without waiting for a dripping one to give up.
        _, system = await _subscribe(intake, ehr.url)
        sid = await _submit(intake, system)

        async def pushed() -> bool:
            return any(r.json.get("id") == sid for r in ehr.got)

        await _until(pushed, 10)
        assert any(r.json.get("id") == sid for r in ehr.got), "another endpoint's push waited"
        assert drip.most_open <= 2, "one endpoint held more than its share of the slots"

        # Each attempt to the dripping endpoint gave up at its deadline, all of it.
        async def three_attempts() -> bool:
            return bool(await db.fetchval(_SLOW_ATTEMPTS, uuid.UUID(slow_sub)) >= 3)

        await _until(three_attempts, 15)
        took = await db.fetch(_SLOW_TOOK, uuid.UUID(slow_sub))
        assert len(took) >= 3
        for row in took:
            assert row["outcome"] == "temporary_failure"
            assert row["error"] == f"no answer within {DEADLINE:g} s"
            assert row["seconds"] < DEADLINE + 1.5, row["seconds"]
    finally:
        assert (await intake.delete(f"/v1/fhir/subscriptions/{slow_sub}")).status_code == 204


_SLOW_ATTEMPTS = """
    SELECT count(*) FROM intake.fhir_push_attempts AS a
      JOIN intake.fhir_pushes AS p ON p.id = a.push_id WHERE p.subscription_id = $1
"""
_SLOW_TOOK = """
    SELECT a.outcome, a.error, extract(epoch FROM a.finished_at - a.started_at) AS seconds
      FROM intake.fhir_push_attempts AS a
      JOIN intake.fhir_pushes AS p ON p.id = a.push_id WHERE p.subscription_id = $1
"""


async def test_an_endless_answer_is_not_read_whole(
    intake: httpx.AsyncClient, endless: SlowServer, db: asyncpg.Pool
) -> None:
    sub, system = await _subscribe(intake, endless.url)
    try:
        await _submit(intake, system)

        async def connected() -> bool:
            return endless.connections >= 1

        await _until(connected, 15)
        assert endless.connections >= 1
        reached = time.monotonic()

        async def recorded() -> bool:
            return bool(await db.fetchval(_SLOW_ATTEMPTS, uuid.UUID(sub)) >= 1)

        await _until(recorded, 20)
        # The status said it all: recorded at once (not after a body of 50 MB, nor at the
        # deadline), and the connection closed after a few KB were read.
        assert time.monotonic() - reached < DEADLINE - 0.5
        [row] = await db.fetch(_SLOW_TOOK, uuid.UUID(sub))
        assert row["outcome"] == "delivered", row

        async def hung_up() -> bool:
            return bool(endless.written)

        await _until(hung_up, 5)
        assert endless.written and endless.written[0] < endless.cap
    finally:
        assert (await intake.delete(f"/v1/fhir/subscriptions/{sub}")).status_code == 204
