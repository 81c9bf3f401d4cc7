"""The shared leased work queue (shared/workqueue.py), against the real PostgreSQL: a claim takes a
lease and one more attempt, a second claimer skips leased rows (and rows another transaction
holds), a lease that ran out is claimed again, a retry's backoff moves due_at, the next due time
is the earliest due_at or lease end, and the queue sends what it claims within its slots."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import DateTime, Integer, String, Uuid, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import SessionFactory, create_engine, create_session_factory, transaction
from shared.events import utcnow
from shared.wakeup import Listener
from shared.workqueue import (
    Batch,
    WorkQueue,
    claim_statement,
    next_due_statement,
    next_step,
    retry_at,
)

SCHEMA = f"workqueue_{uuid.uuid4().hex[:8]}"
LEASE = timedelta(seconds=30)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)


CLAIM = claim_statement(Job, lease=LEASE, returning=(Job.id, Job.attempts, Job.lease_until))
NEXT_DUE = next_due_statement(Job)


@pytest.fixture
async def sessions(db: asyncpg.Pool, database_url: str) -> AsyncIterator[SessionFactory]:
    await db.execute(f"CREATE SCHEMA {SCHEMA}")
    await db.execute(
        f"CREATE TABLE {SCHEMA}.jobs (id uuid PRIMARY KEY, status text NOT NULL,"
        " due_at timestamptz NOT NULL, lease_until timestamptz, attempts int NOT NULL)"
    )
    engine = create_engine(database_url, pool_size=3)
    yield create_session_factory(engine)
    await engine.dispose()
    await db.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


async def _add(db: asyncpg.Pool, n: int, *, due_in: float = -1.0) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    for i, job_id in enumerate(ids):
        await db.execute(
            f"INSERT INTO {SCHEMA}.jobs VALUES ($1, 'pending',"
            " now() + make_interval(secs => $2), NULL, 0)",
            job_id,
            due_in - n + i,  # oldest due first in the order added
        )
    return ids


async def _claim(sessions: SessionFactory, limit: int) -> list[uuid.UUID]:
    async with transaction(sessions) as session:
        return [r.id for r in await session.execute(CLAIM, {"limit": limit})]


async def test_a_claim_leases_due_rows_once_and_a_second_claimer_skips_them(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    ids = await _add(db, 3)
    (later,) = await _add(db, 1, due_in=3600)  # not due: never claimed
    async with transaction(sessions) as session:
        rows = (await session.execute(CLAIM, {"limit": 2})).all()
        assert {r.id for r in rows} == set(ids[:2]), "oldest due first, up to the limit"
        assert all(r.attempts == 1 and r.lease_until > utcnow() for r in rows)
        # Another replica, while the first claim is not yet committed: it skips the locked rows.
        assert await _claim(sessions, 10) == [ids[2]]
    # Committed: the leased rows are not due again until the lease runs out.
    assert await _claim(sessions, 10) == []
    assert later not in await _claim(sessions, 10)


async def test_a_lease_that_ran_out_is_claimed_again(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    (job_id,) = await _add(db, 1)
    assert await _claim(sessions, 5) == [job_id]
    await db.execute(f"UPDATE {SCHEMA}.jobs SET lease_until = now() - interval '1 second'")
    async with transaction(sessions) as session:
        (row,) = (await session.execute(CLAIM, {"limit": 5})).all()
    assert row.id == job_id and row.attempts == 2, "its sender died: sent again, one more attempt"


async def test_a_retry_moves_due_at_by_the_backoff_and_the_next_due_time_follows(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    async with sessions() as session:
        assert await session.scalar(NEXT_DUE) is None, "nothing pending: only a wake-up tells"
    (job_id,) = await _add(db, 1)
    assert await _claim(sessions, 1) == [job_id]
    async with sessions() as session:
        leased_until = await session.scalar(NEXT_DUE)
    assert leased_until is not None and leased_until > utcnow() + LEASE - timedelta(seconds=5)

    assert next_step("temporary_failure", 1, 5) == "retry"
    assert next_step("temporary_failure", 5, 5) == "failed"
    assert next_step("temporary_failure", 50) == "retry"
    assert next_step("permanent_failure", 1, 5) == "failed"
    assert next_step("delivered", 1, 5) == "delivered"
    now = utcnow()
    due = retry_at(3, base=10, ceiling=1000, now=now)
    assert now + timedelta(seconds=20) <= due <= now + timedelta(seconds=40)  # 40 s, jittered
    async with transaction(sessions) as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(due_at=due, lease_until=None)
        )
    async with sessions() as session:
        assert await session.scalar(NEXT_DUE) == due
    assert await _claim(sessions, 1) == [], "not due before its backoff ran out"


class _Jobs:
    """Sends by recording `delivered`; counts how many sends run at once."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.running = 0
        self.most = 0

    async def claim(self, free: int) -> Batch[uuid.UUID]:
        return Batch(await _claim(self.sessions, free) if free > 0 else [])

    async def send(self, item: uuid.UUID) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        async with transaction(self.sessions) as session:
            await session.execute(
                update(Job).where(Job.id == item).values(status="delivered", lease_until=None)
            )
        self.running -= 1

    async def next_due(self) -> datetime | None:
        async with self.sessions() as session:
            due: datetime | None = await session.scalar(NEXT_DUE)
            return due


async def test_the_queue_sends_what_it_claims_within_its_slots(
    sessions: SessionFactory, db: asyncpg.Pool, database_url: str
) -> None:
    await _add(db, 5)
    jobs = _Jobs(sessions)
    queue: WorkQueue[uuid.UUID] = WorkQueue(
        name="test",
        listener=Listener("postgresql://unused"),
        channels=[],
        max_sleep=1,
        concurrency=2,
        drain_seconds=1,
        jobs=jobs,
    )
    for _ in range(10):
        await queue.run_due()  # every slot busy: it claims nothing more
        assert len(queue.in_flight) <= 2
        if queue.in_flight:
            await asyncio.wait(queue.in_flight)
    assert jobs.most == 2
    assert await db.fetchval(f"SELECT count(*) FROM {SCHEMA}.jobs WHERE status = 'delivered'") == 5
