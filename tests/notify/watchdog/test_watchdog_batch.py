"""The assessment watchdog awaits a poll's submissions in one statement: a screening twice in a
poll (a redelivery beside its original) and one whose assessment came first are both right, and
the statement tells the watchdogs when the earliest comes due. An assessment alone in its poll
that pages nobody is one statement that commits on its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from services.notify.consumer import handlers
from services.notify.settings import NotifySettings
from services.notify.watchdog.service import CHANNEL, on_submitted
from shared.db import (
    SessionFactory,
    asyncpg_dsn,
    autocommit,
    create_engine,
    create_session_factory,
    driver,
    transaction,
)
from shared.events import Envelope, LevelResponseData, RiskAssessed, ScreeningSubmitted, utcnow
from shared.kafka import Batch
from shared.topics import RISK_ASSESSED
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


async def test_a_polls_submissions_say_when_the_earliest_comes_due(
    sessions: SessionFactory, db: asyncpg.Pool, database_url: str
) -> None:
    """So a watchdog with nothing awaited sleeps until a submission comes, not in a polling
    loop; one whose assessment came first, or a redelivery, awaits nothing and says nothing."""
    notices: list[str] = []
    heard = asyncio.Event()

    def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        notices.append(payload)
        heard.set()

    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    await listener.add_listener(CHANNEL, notified)
    earlier, later, assessed_first = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await db.execute(
        "INSERT INTO notify.awaited_assessments (screening_id, assessed_at) VALUES ($1, $2)",
        assessed_first,
        utcnow(),
    )
    poll = [_submitted(later, 1, "later"), _submitted(earlier, 2, "earlier")]
    try:
        async with transaction(sessions) as session:
            await on_submitted(session, poll, deadline=DEADLINE)
            await asyncio.sleep(0.2)
            assert notices == [], "the notice comes with the commit"
        due = ScreeningSubmitted.model_validate(poll[1].data).submitted_at.timestamp() + DEADLINE
        async with asyncio.timeout(5):
            await heard.wait()
        assert abs(float(notices[0]) - due) < 1e-3, notices

        for again in ([poll[0]], [_submitted(assessed_first, 0, "assessed first")]):
            async with transaction(sessions) as session:
                await on_submitted(session, again, deadline=DEADLINE)
        await asyncio.sleep(0.3)
        assert len(notices) == 1, f"nothing newly awaited, yet notices: {notices}"
    finally:
        await listener.close()
        await db.execute(
            "DELETE FROM notify.awaited_assessments WHERE screening_id = ANY($1::uuid[])",
            [earlier, later, assessed_first],
        )


def _assessed(screening_id: uuid.UUID, *, pages: bool) -> Envelope:
    return RiskAssessed(
        assessment_id=uuid.uuid4(),
        screening_id=screening_id,
        instrument="asq",
        level="high" if pages else "low",
        flagged=pages,
        reasons=["watchdog test"],
        rules_version="test",
        assessed_at=utcnow(),
        response=LevelResponseData(
            alert=pages,
            urgency="urgent" if pages else None,
            safety_plan=pages,
            emergency_task=False,
            ack_deadline_seconds=300 if pages else None,
        ),
    ).envelope(correlation_id="watchdog-alone-test")


async def test_an_assessment_alone_that_pages_nobody_is_one_statement(
    sessions: SessionFactory, db: asyncpg.Pool
) -> None:
    """The consumer runs `alone`'s statement with no transaction open: an unflagged assessment
    is awaited no longer and recorded as applied by one statement that commits on its own (a
    redelivery changes nothing); a paging one has none, left to the poll's transaction."""
    handler = handlers(NotifySettings())[RISK_ASSESSED]
    assert isinstance(handler, Batch) and handler.alone is not None
    quiet, paging = uuid.uuid4(), uuid.uuid4()
    await _awaited(sessions, quiet, paging)
    first, again = _assessed(quiet, pages=False), _assessed(quiet, pages=False)
    flagged = _assessed(paging, pages=True)
    row = "SELECT assessed_at FROM notify.awaited_assessments WHERE screening_id = $1"
    applied = "SELECT count(*) FROM notify.processed_events WHERE event_id = $1"
    try:
        statement = handler.alone(first)
        assert statement is not None
        async with autocommit(sessions) as session:
            await statement(session)
            assert not (await driver(session, begin=False)).is_in_transaction()
        assessed_at = RiskAssessed.model_validate(first.data).assessed_at
        assert await db.fetchval(row, quiet) == assessed_at
        assert await db.fetchval(applied, first.event_id) == 1, "triage dlq sees it applied"

        statement = handler.alone(again)
        assert statement is not None
        async with autocommit(sessions) as session:
            await statement(session)
        assert await db.fetchval(row, quiet) == assessed_at, "the first assessment counts"

        assert handler.alone(flagged) is None, "a page needs the transaction"
        assert await db.fetchval(row, paging) is None
        assert await db.fetchval(applied, flagged.event_id) == 0
    finally:
        await db.execute(
            "DELETE FROM notify.awaited_assessments WHERE screening_id = ANY($1::uuid[])",
            [quiet, paging],
        )
        await db.execute(
            "DELETE FROM notify.processed_events WHERE event_id = ANY($1::uuid[])",
            [first.event_id, again.event_id],
        )


async def _awaited(sessions: SessionFactory, *screenings: uuid.UUID) -> None:
    """The screenings awaited, as their submissions would have them."""
    async with transaction(sessions) as session:
        await on_submitted(
            session,
            [_submitted(s, 0, "watchdog-alone-test") for s in screenings],
            deadline=DEADLINE,
        )
