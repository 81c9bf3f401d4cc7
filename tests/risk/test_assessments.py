"""Assessments under sustained load on one pooled connection (the consumer's steady state)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from services.risk.models import Assessment
from services.risk.rules import load_ruleset
from services.risk.service import assess_screening, record_ruleset
from shared.db import create_engine, create_session_factory, transaction
from shared.events import ScreeningSubmitted, utcnow


async def test_many_assessments_on_one_connection_all_commit(database_url: str) -> None:
    """PostgreSQL switches a prepared statement to a generic plan after five executions; the
    ON CONFLICT of the partial unique index must still find its index then."""
    engine = create_engine(database_url, pool_size=1)
    sessions = create_session_factory(engine)
    ruleset = load_ruleset()
    ids = [uuid.uuid4() for _ in range(8)]
    try:
        async with transaction(sessions) as session:
            await record_ruleset(session, ruleset=ruleset)
        for sid in ids:
            submitted = ScreeningSubmitted(
                screening_id=sid,
                source="hotline",
                instrument="phq9",
                answers={"items": [0, 0, 1, 0, 0, 0, 0, 0, 2]},
                submitted_at=utcnow(),
            )
            async with transaction(sessions) as session:
                created = await assess_screening(
                    session,
                    submitted=submitted,
                    ruleset=ruleset,
                    correlation_id="t",
                    event_id=uuid.uuid4(),
                )
            assert created is not None
        async with transaction(sessions) as session:
            replay = await assess_screening(
                session,
                submitted=submitted,
                ruleset=ruleset,
                correlation_id="t",
                event_id=uuid.uuid4(),
            )
            stored = await session.scalar(
                select(func.count()).where(Assessment.screening_id.in_(ids))
            )
        assert replay is None, "a redelivered screening is assessed once"
        assert stored == len(ids)
    finally:
        await engine.dispose()
