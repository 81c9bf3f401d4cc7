"""Which failures the consumer retries (the database's fault) and which it dead-letters."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine
from shared.kafka import _is_transient


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
    assert _is_transient(DBAPIError("stmt", {}, _Orig(sqlstate))) is transient


async def test_a_real_data_error_is_not_transient(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT 1 / 0"))
        assert not _is_transient(caught.value)
    finally:
        await engine.dispose()


def test_connection_trouble_is_transient() -> None:
    assert _is_transient(ConnectionRefusedError())
    assert _is_transient(TimeoutError())
