"""At-least-once in, exactly-once effects: redelivered events do nothing; committed events leave."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from deploy.localstack import LocalStack
from shared.events import Envelope, ScreeningSubmitted, utcnow
from shared.outbox import HEARTBEAT_SECONDS
from shared.topics import RISK_ASSESSED, SCREENING_SUBMITTED
from tests.support.cases import HIGH_CSSRS, LOW_CSSRS, screening
from tests.support.kafka import read_all
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses


async def _wait_for_row(db: asyncpg.Pool, query: str, *args: object, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = await db.fetchval(query, *args)
        if n:
            return n
        await asyncio.sleep(0.05)
    return 0


async def test_a_redelivered_event_is_applied_once(
    stack: LocalStack, services: ServiceProcesses, db: asyncpg.Pool
) -> None:
    screening_id = uuid.uuid4()
    event = ScreeningSubmitted(
        screening_id=screening_id,
        source="hotline",
        instrument="asq",
        answers={
            "wished_dead": True,
            "better_off_dead": False,
            "thoughts_past_week": False,
            "ever_attempted": False,
            "thoughts_now": False,
        },
        submitted_at=utcnow(),
    ).envelope(correlation_id="redelivery-test")
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        for _ in range(3):  # what a relay that crashed after producing, before deleting, does
            await producer.send_and_wait(
                SCREENING_SUBMITTED, event.encode(), key=str(screening_id).encode()
            )
    finally:
        await producer.stop()

    query = "SELECT count(*) FROM risk.assessments WHERE screening_id = $1"
    assert await _wait_for_row(db, query, screening_id) == 1
    await asyncio.sleep(1.0)  # let the two redeliveries be consumed too
    assert await db.fetchval(query, screening_id) == 1
    processed = "SELECT count(*) FROM risk.processed_events WHERE event_id = $1"
    assert await db.fetchval(processed, event.event_id) == 1
    published = [
        Envelope.decode(r.value)
        for r in await read_all(stack.bootstrap_servers, RISK_ASSESSED, timeout=3)
        if r.key == str(screening_id).encode()
    ]
    assert [e.data["level"] for e in published] == ["high"], "one assessment event, not three"


async def test_an_outbox_row_committed_without_a_live_request_is_published(
    stack: LocalStack, services: ServiceProcesses, db: asyncpg.Pool
) -> None:
    """What a crash between commit and publish leaves behind: the relay publishes it."""
    screening_id = uuid.uuid4()
    event = ScreeningSubmitted(
        screening_id=screening_id,
        source="hotline",
        instrument="phq9",
        answers={"items": [0, 0, 0, 0, 0, 0, 0, 0, 0]},
        submitted_at=utcnow(),
    ).envelope(correlation_id="orphan-outbox-row")
    await db.execute(
        "INSERT INTO intake.outbox (event_id, topic, key, value) VALUES ($1, $2, $3, $4)",
        event.event_id,
        SCREENING_SUBMITTED,
        str(screening_id),
        event.encode(),
    )
    query = "SELECT count(*) FROM risk.assessments WHERE screening_id = $1"
    assert await _wait_for_row(db, query, screening_id) == 1
    # Deleted once acked: with the relay's next read, or by its heartbeat within a second.
    left = "SELECT count(*) FROM intake.outbox WHERE event_id = $1"
    deadline = time.monotonic() + HEARTBEAT_SECONDS + 2
    while await db.fetchval(left, event.event_id):
        assert time.monotonic() < deadline, "the published row stayed in the outbox"
        await asyncio.sleep(0.01)


async def test_dropped_database_connections_cost_a_retry_not_a_screening(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    """The pools do not ping before each use. When every service connection is cut (what a
    database restart does), a request answers 503 with Retry-After, never 500, the same request
    then succeeds, and the pipeline behind it recovers by itself and pages. Each service listens
    again, on one session (its wake loops share it: shared/wakeup.py)."""
    await intake.post("/v1/screenings", json=screening(LOW_CSSRS))  # pools hold connections
    async with db.acquire() as conn:
        cut = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
    assert cut > 0
    await db.expire_connections()  # the test's own pool was cut too

    body = screening(HIGH_CSSRS)
    statuses = []
    for _ in range(5):
        response = await intake.post("/v1/screenings", json=body)
        statuses.append(response.status_code)
        if response.status_code != 503:
            break
        assert response.headers["retry-after"] == "1"
        assert "database" in response.json()["detail"]
    assert statuses[-1] == 202, statuses
    assert 500 not in statuses
    pages = await receiver.wait_for(response.json()["id"], timeout=15)
    assert len(pages) == 1
    expected = {"intake listener": 1, "risk listener": 1, "notify listener": 1}
    deadline = time.monotonic() + 5
    while (listening := await _listening_sessions(db)) != expected:
        assert time.monotonic() < deadline, listening
        await asyncio.sleep(0.05)


async def test_connections_cut_again_and_again_under_traffic_lose_no_screening(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    """Every service connection cut twelve times while screenings arrive, at varied moments of
    their work: a request answers 202 or 503, and every screening accepted pages (at least once:
    a cut between a page's send and its record sends it again after its lease). (A loop
    that asked for the LISTEN session between its drop and the keeper hearing of it once spun
    forever and hung its whole service: shared/wakeup.py `Listener.listening`.)"""
    accepted: list[str] = []
    for round_ in range(12):
        in_flight = [
            asyncio.create_task(intake.post("/v1/screenings", json=screening(HIGH_CSSRS)))
            for _ in range(4)
        ]
        await asyncio.sleep(round_ % 4 * 0.004)
        await db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
        await db.expire_connections()
        for response in await asyncio.gather(*in_flight):
            assert response.status_code in (202, 503), response.text
            if response.status_code == 202:
                accepted.append(response.json()["id"])
        for _ in range(10):
            response = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))
            if response.status_code == 202:
                accepted.append(response.json()["id"])
                break
            assert response.status_code == 503, response.text
        else:
            raise AssertionError("intake answered 503 ten times after a cut")
    for screening_id in accepted:
        assert await receiver.wait_for(screening_id, timeout=15), screening_id


async def _listening_sessions(db: asyncpg.Pool) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT application_name, count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE '% listener'"
        " GROUP BY application_name"
    )
    return {row[0]: row[1] for row in rows}
