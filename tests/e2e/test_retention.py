"""Retention prunes what only grew (processed event ids, finished deliveries and their attempts,
idempotency keys), the old rows only, never a pending one; with the rules the services run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.intake.db import retention as intake_retention
from services.notify.models import retention as notify_retention
from shared.db import SessionFactory, create_engine, create_session_factory
from shared.retention import Pruner, processed_events
from shared.settings import ServiceSettings
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses


@pytest.fixture
async def sessions(services: ServiceProcesses, database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)
    yield create_session_factory(engine)
    await engine.dispose()


async def _paged(intake: httpx.AsyncClient, receiver: Receiver, key: str) -> str:
    response = await intake.post(
        "/v1/screenings", json=screening(HIGH_CSSRS), headers={"Idempotency-Key": key}
    )
    sid = response.json()["id"]
    assert await receiver.wait_for(sid)
    return sid


async def _count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


DELIVERIES = (
    "SELECT count(*) FROM notify.deliveries d JOIN notify.alerts a ON a.id = d.alert_id"
    " WHERE a.screening_id = $1"
)
ATTEMPTS = (
    "SELECT count(*) FROM notify.delivery_attempts t JOIN notify.deliveries d"
    " ON d.id = t.delivery_id JOIN notify.alerts a ON a.id = d.alert_id WHERE a.screening_id = $1"
)


async def test_old_bookkeeping_is_pruned_and_nothing_else(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool, sessions: SessionFactory
) -> None:
    old_key, new_key = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    old, new = await _paged(intake, receiver, old_key), await _paged(intake, receiver, new_key)
    old_id = uuid.UUID(old)
    await db.execute(
        "UPDATE notify.deliveries SET finished_at = now() - interval '100 days'"
        " WHERE alert_id IN (SELECT id FROM notify.alerts WHERE screening_id = $1)",
        old_id,
    )
    await db.execute(
        "UPDATE intake.idempotency_keys SET created_at = now() - interval '40 days'"
        " WHERE split_part(key, ':', 2) = $1",  # stored as `<credential id>:<key>`
        old_key,
    )
    stale, fresh = uuid.uuid4(), uuid.uuid4()
    await db.execute(
        "INSERT INTO risk.processed_events (event_id, topic, processed_at)"
        " VALUES ($1, 'x', now() - interval '20 days'), ($2, 'x', now())",
        stale,
        fresh,
    )
    assert await _count(db, ATTEMPTS, old_id) >= 1

    settings = ServiceSettings()
    pruner = Pruner(
        sessions=sessions,
        rules=[
            *intake_retention(settings),
            *notify_retention(settings),
            processed_events("risk", settings.processed_events_days),
        ],
        batch_size=2,  # several batches per table
    )
    deleted = await pruner.prune()
    assert deleted["notify.deliveries"] >= 1 and deleted["notify.delivery_attempts"] >= 1

    assert await _count(db, DELIVERIES, old_id) == 0
    assert await _count(db, ATTEMPTS, old_id) == 0
    assert await _count(db, DELIVERIES, uuid.UUID(new)) >= 1, "recent deliveries stay"
    assert await _count(db, ATTEMPTS, uuid.UUID(new)) >= 1
    keys = await db.fetch(
        "SELECT split_part(key, ':', 2) AS key FROM intake.idempotency_keys"
        " WHERE split_part(key, ':', 2) = ANY($1)",
        [old_key, new_key],
    )
    assert [k["key"] for k in keys] == [new_key]
    events = await db.fetch(
        "SELECT event_id FROM risk.processed_events WHERE event_id = ANY($1)", [stale, fresh]
    )
    assert [e["event_id"] for e in events] == [fresh]
    assert await _count(db, "SELECT count(*) FROM notify.alerts WHERE screening_id = $1", old_id)
