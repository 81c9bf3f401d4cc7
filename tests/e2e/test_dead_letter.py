"""A message no retry can process goes to the dead-letter topic and its partition moves on."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer

from deploy.localstack import LocalStack
from shared.events import ScreeningSubmitted, utcnow
from shared.topics import SCREENING_SUBMITTED, dlq
from tests.support.kafka import read_all
from tests.support.keys import ADMIN
from tests.support.services import ServiceProcesses


async def test_poison_message_is_dead_lettered_and_the_partition_moves_on(
    stack: LocalStack, services: ServiceProcesses
) -> None:
    key = str(uuid.uuid4()).encode()
    valid = ScreeningSubmitted(
        screening_id=uuid.uuid4(),
        source="hotline",
        instrument="phq9",
        answers={"items": [0, 0, 0, 0, 0, 0, 0, 0, 1]},
        submitted_at=utcnow(),
    ).envelope(correlation_id="dlq-test")
    bad_answers = ScreeningSubmitted(
        screening_id=uuid.uuid4(),
        source="hotline",
        instrument="phq9",
        answers={"items": [9]},
        submitted_at=utcnow(),
    ).envelope(correlation_id="dlq-test")
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        # Same partition for all three, poison first: the valid one must still be processed.
        await producer.send_and_wait(
            SCREENING_SUBMITTED, b"\x00not json at all", key=key, partition=0
        )
        await producer.send_and_wait(
            SCREENING_SUBMITTED, bad_answers.encode(), key=key, partition=0
        )
        await producer.send_and_wait(SCREENING_SUBMITTED, valid.encode(), key=key, partition=0)
    finally:
        await producer.stop()

    sid = valid.data["screening_id"]
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(base_url=services.url("risk"), headers=ADMIN) as risk:
        while time.monotonic() < deadline:
            response = await risk.get("/v1/assessments", params={"screening_id": sid})
            if response.status_code == 200:
                break
            await asyncio.sleep(0.1)
    assert response.status_code == 200, "the message behind the poison was processed"
    assert response.json()[0]["level"] == "moderate"

    # Risk's (notify reads the submissions too, for the assessment watchdog, and dead-letters
    # what is not an envelope on its own account).
    dead = [
        r
        for r in await read_all(stack.bootstrap_servers, dlq(SCREENING_SUBMITTED))
        if r.key == key and dict(r.headers)["dlq.group"] == b"risk"
    ]
    assert [r.value for r in dead] == [b"\x00not json at all", bad_answers.encode()]
    reasons = [dict(r.headers)["dlq.reason"].decode() for r in dead]
    assert "not an event envelope" in reasons[0]
    assert "answers do not parse" in reasons[1]
    assert all(dict(r.headers)["dlq.topic"] == SCREENING_SUBMITTED.encode() for r in dead)
