"""Which failures the consumer retries (the database's fault) and which it dead-letters."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine, create_session_factory, driver, is_transient, transaction


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("57P03", True),  # the database is starting up
        ("57P01", True),  # admin shutdown (a restart)
        ("53300", True),  # too many connections
        ("40P01", True),  # deadlock
        ("40001", True),  # serialization failure
        ("08006", True),  # connection failure
        ("23505", False),  # unique violation: the message's fault
        ("22P02", False),  # invalid text representation
        ("42703", False),  # undefined column: a bug, retrying will not help
    ],
)
def test_database_errors_are_classified_by_sqlstate(sqlstate: str, transient: bool) -> None:
    assert is_transient(DBAPIError("stmt", {}, _Orig(sqlstate))) is transient


async def test_a_real_data_error_is_not_transient(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT 1 / 0"))
        assert not is_transient(caught.value)
    finally:
        await engine.dispose()


async def test_errors_of_statements_sent_through_driver_are_classified_too(
    database_url: str,
) -> None:
    """The alert path sends its statements straight to asyncpg, whose errors are its own."""
    engine = create_engine(database_url, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        with pytest.raises(asyncpg.PostgresError) as data_error:
            async with transaction(sessions) as session:
                await (await driver(session)).execute("SELECT 1 / 0")
        assert not is_transient(data_error.value)
        with pytest.raises(asyncpg.PostgresError) as shutdown:
            async with transaction(sessions) as session:
                # What a restarting server says to a statement: SQLSTATE 57P01.
                await (await driver(session)).execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'shutting down' USING ERRCODE = '57P01'; END $$"
                )
        assert is_transient(shutdown.value)
    finally:
        await engine.dispose()


def test_connection_trouble_is_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(asyncpg.ConnectionDoesNotExistError("closed"))
    # No pooled connection came free within the pool's timeout: a stalled database.
    assert is_transient(sqlalchemy.exc.TimeoutError("QueuePool limit reached"))
    assert is_transient(asyncpg.ConnectionDoesNotExistError("closed"))
    # No pooled connection came free within the pool's timeout: a stalled database.
    assert is_transient(sqlalchemy.exc.TimeoutError("QueuePool limit reached"))
