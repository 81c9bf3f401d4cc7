"""The assessment watchdog awaits a poll's submissions in one statement: a screening twice in a
poll (a redelivery beside its original) and one whose assessment came first are both right."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from services.notify.watchdog.service import on_submitted
from shared.db import SessionFactory, create_engine, create_session_factory, transaction
from shared.events import Envelope, ScreeningSubmitted, utcnow
from tests.support.services import ServiceProcesses

#: Far enough that the running notify's watchdog never finds these rows overdue.
DEADLINE = 3600.0


@pytest.fixture
async def sessions(services: ServiceProcesses, database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)
    yield create_session_factory(engine)
    await engine.dispose()


def _submitted(screening_id: uuid.UUID, seconds_ago: float, correlation: str) -> Envelope:
    return ScreeningSubmitted(
        screening_id=screening_id,
        source="hotline",
        instrument="asq",
        answers={},
        submitted_at=utcnow() - timedelta(seconds=seconds_ago),
    ).envelope(correlation_id=correlation)


async def test_a_polls_submissions_are_awaited_at_once(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    twice, assessed_first, once = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assessed_at = utcnow()
    await db.execute(
        "INSERT INTO notify.awaited_assessments (screening_id, assessed_at) VALUES ($1, $2)",
        assessed_first,
        assessed_at,
    )
    poll = [
        _submitted(twice, 5, "original"),
        _submitted(assessed_first, 4, "second"),
        _submitted(twice, 3, "redelivered"),
        _submitted(once, 2, "third"),
    ]
    try:
        async with transaction(sessions) as session:
            await on_submitted(session, poll, deadline=DEADLINE)
        rows = {
            r["screening_id"]: r
            for r in await db.fetch(
                "SELECT * FROM notify.awaited_assessments WHERE screening_id = ANY($1::uuid[])",
                [twice, assessed_first, once],
            )
        }
        assert set(rows) == {twice, assessed_first, once}

        def due(envelope: Envelope) -> object:
            submitted = ScreeningSubmitted.model_validate(envelope.data).submitted_at
            return submitted + timedelta(seconds=DEADLINE)

        # The first copy counts: a redelivery moves no deadline.
        assert rows[twice]["due_at"] == due(poll[0]) and rows[twice]["correlation_id"] == "original"
        assert rows[assessed_first]["due_at"] == due(poll[1])
        assert rows[assessed_first]["assessed_at"] == assessed_at, "the assessment is kept"
        assert rows[once]["due_at"] == due(poll[3]) and rows[once]["assessed_at"] is None
    finally:
        await db.execute(
            "DELETE FROM notify.awaited_assessments WHERE screening_id = ANY($1::uuid[])",
            [twice, assessed_first, once],
        )
