"""shared.db.driver: statements sent straight to asyncpg belong to the session's transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import (
    SessionFactory,
    create_engine,
    create_session_factory,
    driver,
    read_session_factory,
    rounds,
    transaction,
)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS public.driver_test (id uuid, v jsonb)"))
    yield create_session_factory(engine)
    await engine.dispose()


async def _count(db: asyncpg.Pool, row_id: uuid.UUID) -> int:
    return int(await db.fetchval("SELECT count(*) FROM public.driver_test WHERE id = $1", row_id))


async def test_a_rollback_undoes_a_statement_sent_first_through_driver(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    """The adapter begins lazily; a driver statement must not run in autocommit before it."""
    row_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            conn = await driver(session)
            assert conn.is_in_transaction()
            await conn.execute("INSERT INTO public.driver_test VALUES ($1, $2)", row_id, "{}")
            raise RuntimeError("roll back")
    assert await _count(db, row_id) == 0


async def test_driver_and_sqlalchemy_statements_commit_together(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    row_id = uuid.uuid4()
    async with transaction(sessions) as session:
        conn = await driver(session)
        await conn.execute("INSERT INTO public.driver_test VALUES ($1, $2)", row_id, '{"a": [1]}')
        await session.execute(
            text("INSERT INTO public.driver_test VALUES (:id, '{}')"), {"id": row_id}
        )
        assert await _count(db, row_id) == 0, "nothing visible before the commit"
        assert await conn.fetchval(
            "SELECT v FROM public.driver_test WHERE id = $1 AND v <> '{}'", row_id
        ) == {"a": [1]}, "jsonb comes back decoded"
    assert await _count(db, row_id) == 2


async def test_a_read_session_opens_no_transaction_and_its_statements_commit_alone(
    sessions: SessionFactory, database_url: str, db: asyncpg.Pool
) -> None:
    """The read routes' session (shared/http.py `Session`): no BEGIN before its reads, and a
    statement sent on it afterwards (a PHI read's audit entry) is committed when it returns,
    while the pool's transactional sessions still begin as before."""
    engine = create_engine(database_url, pool_size=1)
    row_id = uuid.uuid4()
    try:
        async with read_session_factory(engine)() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
            conn = await driver(session, begin=False)
            assert not conn.is_in_transaction()
            await conn.execute("INSERT INTO public.driver_test VALUES ($1, '{}')", row_id)
            assert await _count(db, row_id) == 1, "committed before the session closes"
        async with transaction(create_session_factory(engine)) as session:
            assert (await driver(session)).is_in_transaction(), "same pool, still transactional"
    finally:
        await engine.dispose()


def test_rounds_keep_the_order_and_never_name_a_key_twice_in_one() -> None:
    items = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]
    assert rounds(items, key=lambda i: i[0]) == [
        [("a", 1), ("b", 1), ("c", 1)],
        [("a", 2), ("b", 2)],
        [("a", 3)],
    ]
    assert rounds([], key=lambda i: i) == []
