"""Async SQLAlchemy plumbing: one engine and one session factory per service, built in the lifespan.

Each service keeps its tables in its own PostgreSQL schema (intake, risk, notify), so that
splitting them onto separate servers later is a change of DATABASE_URL, not of code.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import DateTime, Table, Text, event
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

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
    """A pooled asyncpg engine.

    No `pool_pre_ping`: it costs a round trip and about 0.25 ms of CPU on every checkout (a
    fifth of a consumer transaction, measured), to guard against something rare. Disconnects are
    handled when they happen instead: SQLAlchemy invalidates the whole pool on the first one, the
    consumers and background loops retry (`is_transient`), and an HTTP request answers 503 with
    Retry-After (shared/errors.py), so a restarted database costs one retry, not a 500.

    No overflow either: connections opened beyond the pool are closed again on return, and
    under load that churned eight PostgreSQL backends a second (a fork, a connect and the
    dialect's type set-up each, all CPU the alert path needed). A busy moment waits for a
    pooled connection instead (DB_POOL_SIZE per process).
    """
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        # Parameters carry PHI (contact, notes, plan entries): keep them out of error texts/logs.
        hide_parameters=True,
    )
    event.listen(engine.sync_engine.pool, "checkout", _not_closed)
    return engine


def _not_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Never hand out a connection already known to be closed (the server ended it, or it broke
    under a statement sent through `driver`, which SQLAlchemy does not see): the pool drops it
    and checks out another. No round trip: asyncpg knows as soon as the socket closes."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the connection was closed")


def create_session_factory(engine: AsyncEngine, *, info: dict | None = None) -> SessionFactory:
    """Sessions of `engine`; `info` is every session's `info` (the PHI key ring, shared/phi.py)."""
    # expire_on_commit=False: objects stay readable after the commit at the edge of a request.
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})


def read_session_factory(engine: AsyncEngine, *, info: dict | None = None) -> SessionFactory:
    """Sessions of `engine`'s pool for routes that only read: no BEGIN and no ROLLBACK, each
    statement commits on its own. At READ COMMITTED a transaction gives each statement its own
    snapshot anyway, so a read sees what it would have seen inside one, two round trips cheaper.
    The audit entry of a PHI read is written on the same connection (shared/auth/guard.py), one
    more self-committing statement before the answer."""
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(autocommit, expire_on_commit=False, info=info or {})


T = TypeVar("T")


def rounds(items: list[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """`items` in runs in which no key comes twice, in their order: the first time each key
    comes, then the second, and so on.

    A statement over unnested arrays may touch a row only once (ON CONFLICT DO UPDATE refuses a
    second change of a row, UPDATE ... FROM takes one match of several, whichever), so a poll's
    events that name one row twice are applied in rounds, one statement each, in order: the
    rows end as they would have one event at a time. Usually there is one round."""
    out: list[list[T]] = []
    seen: dict[Hashable, int] = {}
    for item in items:
        n = seen.get(k := key(item), 0)
        seen[k] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(item)
    return out


def qualified(table: Table) -> str:
    """`schema.table`, for statements sent through `driver`."""
    return f"{table.schema}.{table.name}" if table.schema else table.name


class CommitHook(Protocol):
    """Something a request adds to its transaction just before it commits (its audit entry)."""

    async def stage(self, session: AsyncSession) -> None: ...

    def unstage(self) -> None: ...

    def committed(self) -> None: ...


#: Set by the gate for the duration of a request (shared/auth/guard.py); None elsewhere.
commit_hook: ContextVar[CommitHook | None] = ContextVar("commit_hook", default=None)


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: committed when the block ends, rolled back if it raises.

    Within a request, the request's audit entry is written into the transaction before it
    commits (`commit_hook`), so a change and its entry commit together or not at all."""
    hook = commit_hook.get()
    try:
        async with sessions() as session, session.begin():
            try:
                yield session
                if hook is not None:
                    await hook.stage(session)
            except Exception as exc:
                await _discard_if_broken(session, exc)
                raise
    except BaseException:
        if hook is not None:
            hook.unstage()
        raise
    if hook is not None:
        hook.committed()


@asynccontextmanager
async def autocommit(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One session and no transaction: each statement sent through `driver(session,
    begin=False)` commits on its own (one round trip where one statement does everything)."""
    async with sessions() as session:
        try:
            yield session
        except Exception as exc:
            await _discard_if_broken(session, exc)
            raise


async def _discard_if_broken(session: AsyncSession, exc: Exception) -> None:
    """A connection broken under a statement sent through `driver` (SQLAlchemy did not see it)
    must not go back to the pool. (When SQLAlchemy saw it, the session has already dealt with
    its connection and refuses: the original error is what propagates.)"""
    if is_transient(exc):
        with contextlib.suppress(Exception):
            await (await session.connection()).invalidate(exc)


async def driver(session: AsyncSession, *, begin: bool = True) -> asyncpg.Connection:
    """The asyncpg connection under `session`'s transaction, for the statements on the alert path.

    A statement sent straight to asyncpg skips SQLAlchemy's compile-cache lookup, greenlet switch
    and result wrapping: about 60 µs of CPU instead of 180 µs (measured on the 2-core machine),
    and the hot path runs a dozen statements per screening. It runs in the same transaction as
    the session's other work. Parameters are positional (`$1`); a jsonb parameter is JSON text,
    and a jsonb result comes back decoded (the codec SQLAlchemy's dialect set on the connection).

    `begin=False` opens no transaction when none is open yet: each statement then commits on
    its own, which saves the BEGIN and COMMIT round trips where one statement does everything.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    conn = cast(asyncpg.Connection, raw.driver_connection)
    if begin and not conn.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs
        # itself: a statement sent here first would run outside the transaction (autocommit),
        # and a rollback would not undo it. Start the adapter's transaction the way its own
        # first statement would; should that private hook ever change, a statement through
        # SQLAlchemy does the same, one round trip dearer. Checked by tests/shared/test_db.py.
        start = getattr(raw.dbapi_connection, "_start_transaction", None)
        try:
            if start is not None:
                await start()
            if not conn.is_in_transaction():
                await connection.exec_driver_sql("SELECT 1")
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Found dead outside SQLAlchemy's own statements, which would have noticed: this
            # connection must not go back to the pool (others found closed are refused at
            # checkout, see _not_closed).
            log.warning("database connection lost (%s); reconnecting", type(exc).__name__)
            await connection.invalidate(exc)
            raise DatabaseUnavailable(f"database connection lost ({type(exc).__name__})") from exc
    return conn


class DatabaseUnavailable(ConnectionError):
    """The database cannot be reached right now; retry (an HTTP request answers 503)."""


#: SQLSTATE classes of a database that is down, restarting, overloaded or in a conflict that a
#: retry resolves: 08 connection, 40 rollback (deadlock, serialization), 53 resources (too many
#: connections), 57 operator intervention (shutting down, starting up), 58 system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_transient(exc: BaseException) -> bool:
    """Failures of the infrastructure, not of the work: retry them, never give up on the work.

    SQLAlchemy's asyncpg dialect raises most server errors as a plain DBAPIError, statements
    sent through `driver` raise asyncpg's own errors, and the dialect's adapter raises its own
    classes with asyncpg's error as the cause; so the cause chain is followed and the SQLSTATE
    decides: a database restart must delay screenings, not dead-letter them.
    """
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: wrapper, adapter, driver
        if seen is None:
            return False
        if _transient_itself(seen):
            return True
        seen = seen.__cause__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(
        exc,
        OperationalError
        | InterfaceError
        # No pooled connection came free in time: the database is slow or stalled.
        | PoolTimeout
        | asyncpg.InterfaceError
        # The protocol of a connection the server ended mid-statement (a restart).
        | asyncpg.InternalClientError
        | asyncpg.PostgresConnectionError
        | ConnectionError
        | TimeoutError
        | OSError,
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(origin, "sqlstate", None) or getattr(origin, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open pool connections before traffic: a cold asyncpg connection costs a connect and type
    introspection, which the first screenings after a start would otherwise wait for."""
    held = [await engine.connect() for _ in range(connections)]
    for conn in held:
        await conn.exec_driver_sql("SELECT 1")
    for conn in held:
        await conn.close()


async def database_ready(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except Exception:
        return False
    return True


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq DSN for asyncpg's own connections (LISTEN needs a dedicated one)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
