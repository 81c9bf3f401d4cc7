"""The case view's copy of an alert follows notify's per-alert version, not the clock: a later
state stamped earlier (a timestamp taken before the alert's lock, another replica's clock) still
wins, and an older state arriving late changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

from services.intake.cases.service import apply_alert_events
from shared.db import SessionFactory, create_engine, create_session_factory, transaction
from shared.events import AlertEvent, utcnow
from tests.support.cases import LOW_CSSRS, screening
from tests.support.services import ServiceProcesses


@pytest.fixture
async def sessions(services: ServiceProcesses, database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)  # `services` migrated the schema
    yield create_session_factory(engine)
    await engine.dispose()


def _event(alert_id: uuid.UUID, screening_id: uuid.UUID, **changes: object) -> AlertEvent:
    now = utcnow()
    fields: dict[str, object] = {
        "alert_id": alert_id,
        "screening_id": screening_id,
        "status": "pending",
        "risk_level": "high",
        "urgency": "urgent",
        "escalation_level": 0,
        "created_at": now,
        "changed_at": now,
        "version": 1,
    }
    return AlertEvent(**{**fields, **changes})  # type: ignore[arg-type]


async def _apply(sessions: SessionFactory, event: AlertEvent) -> None:
    async with transaction(sessions) as session:
        await apply_alert_events(session, [event])


async def test_the_alert_view_is_ordered_by_version_not_by_time(
    sessions: SessionFactory, db: asyncpg.Pool, intake: httpx.AsyncClient
) -> None:
    posted = await intake.post("/v1/screenings", json=screening(LOW_CSSRS))  # pages nobody
    alert_id, screening_id = uuid.uuid4(), uuid.UUID(posted.json()["id"])
    t0 = utcnow()
    await _apply(sessions, _event(alert_id, screening_id, changed_at=t0))
    await _apply(
        sessions,
        _event(alert_id, screening_id, status="delivered", version=2, changed_at=t0 + timedelta(2)),
    )
    # v3 is the later change, stamped earlier than v2 (escalate_overdue's old clock read).
    escalated = _event(
        alert_id,
        screening_id,
        status="escalated",
        escalation_level=1,
        version=3,
        changed_at=t0 + timedelta(seconds=1),
    )
    await _apply(sessions, escalated)
    row = await db.fetchrow("SELECT status, version FROM intake.alerts WHERE id = $1", alert_id)
    assert (row["status"], row["version"]) == ("escalated", 3)

    # v2 again, late (a redelivery of an older state under a new event id): no effect.
    await _apply(
        sessions,
        _event(alert_id, screening_id, status="delivered", version=2, changed_at=t0 + timedelta(9)),
    )
    row = await db.fetchrow("SELECT status, version FROM intake.alerts WHERE id = $1", alert_id)
    assert (row["status"], row["version"]) == ("escalated", 3)
    await db.execute("DELETE FROM intake.alerts WHERE id = $1", alert_id)


async def test_a_poll_with_several_states_of_one_alert_ends_at_the_newest(
    sessions: SessionFactory, db: asyncpg.Pool, intake: httpx.AsyncClient
) -> None:
    """A poll's events are one statement; one alert changed three times in it (delivered,
    then escalated, and a late copy of the first state) ends where one-by-one would."""
    posted = await intake.post("/v1/screenings", json=screening(LOW_CSSRS))  # pages nobody
    screening_id = uuid.UUID(posted.json()["id"])
    first, other = uuid.uuid4(), uuid.uuid4()
    t0 = utcnow()
    poll = [
        _event(first, screening_id, changed_at=t0),
        _event(other, screening_id, changed_at=t0),
        _event(first, screening_id, status="delivered", version=2, changed_at=t0),
        _event(first, screening_id, status="escalated", escalation_level=1, version=3,
               changed_at=t0),
        _event(first, screening_id, status="delivered", version=2, changed_at=t0),
        _event(other, screening_id, status="acknowledged", version=2, changed_at=t0),
    ]  # fmt: skip
    async with transaction(sessions) as session:
        await apply_alert_events(session, poll)
    rows = await db.fetch(
        "SELECT id, status, version, escalation_level FROM intake.alerts WHERE screening_id = $1",
        screening_id,
    )
    assert {r["id"]: (r["status"], r["version"], r["escalation_level"]) for r in rows} == {
        first: ("escalated", 3, 1),
        other: ("acknowledged", 2, 0),
    }
    await db.execute("DELETE FROM intake.alerts WHERE screening_id = $1", screening_id)
