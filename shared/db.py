"""Async SQLAlchemy plumbing: one engine and one session factory per service, built in the lifespan.

Each service keeps its tables in its own PostgreSQL schema (intake, risk, notify), so that
splitting them onto separate servers later is a change of DATABASE_URL, not of code.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]

#: How the services' ORM annotations map to PostgreSQL types: UUIDs as uuid, times with their
#: zone, dicts and lists as jsonb, strings as text (no arbitrary VARCHAR limits).
TYPE_ANNOTATION_MAP: dict[Any, Any] = {
    uuid.UUID: UUID(as_uuid=True),
    datetime: DateTime(timezone=True),
    dict[str, Any]: JSONB,
    list[str]: JSONB,
    str: Text,
}


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """A pooled asyncpg engine; `pool_pre_ping` so a restarted database costs a retry, not a 500."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # Parameters carry PHI (contact, notes, plan entries): keep them out of error texts/logs.
        hide_parameters=True,
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: objects stay readable after the commit at the edge of a request.
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: committed when the block ends, rolled back if it raises."""
    async with sessions() as session, session.begin():
        yield session


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open pool connections before traffic: a cold asyncpg connection costs a connect and type
    introspection, which the first screenings after a start would otherwise wait for."""
    held = [await engine.connect() for _ in range(connections)]
    for conn in held:
        await conn.execute(text("SELECT 1"))
    for conn in held:
        await conn.close()


async def database_ready(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq DSN for asyncpg's own connections (LISTEN needs a dedicated one)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
