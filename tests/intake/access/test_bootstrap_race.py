"""Replicas that start together create the API_KEYS_BOOTSTRAP keys once, and both start (the
second used to fail on the duplicate key and exit: found by `make chaos` with two intakes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.intake.access.service import ensure_bootstrap
from shared.auth.credentials import parse_bootstrap
from shared.db import SessionFactory, create_engine, create_session_factory
from tests.support.services import ServiceProcesses


@pytest.fixture
async def replicas(
    services: ServiceProcesses, database_url: str
) -> AsyncIterator[list[SessionFactory]]:
    engines = [create_engine(database_url, pool_size=1) for _ in range(8)]
    for engine in engines:  # connected already, so that they all reach the insert together
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    yield [create_session_factory(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def test_replicas_starting_together_create_each_bootstrap_key_once(
    replicas: list[SessionFactory], db: asyncpg.Pool
) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    credentials = parse_bootstrap(f"{name}:admin:{uuid.uuid4().hex}{uuid.uuid4().hex}")
    await asyncio.gather(*(ensure_bootstrap(sessions, credentials) for sessions in replicas))
    assert await db.fetchval("SELECT count(*) FROM intake.api_keys WHERE name = $1", name) == 1
