"""An alert's acknowledgement deadline, set, tells the deliverers when it runs out (the notice's
payload, seconds since the epoch), so a deliverer asleep until an earlier time is not woken for
a pass that would find nothing due (shared/wakeup.py); a deadline cleared sends nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from services.notify.delivery.models import DELIVERIES_CHANNEL
from shared.db import asyncpg_dsn


async def _notices(
    db: asyncpg.Pool, listener: asyncpg.Connection, seen: list[str], sql: str, *args: object
) -> list[str]:
    """The notices on the deliverers' channel after `sql` commits."""
    seen.clear()
    await db.execute(sql, *args)
    await asyncio.sleep(0.3)  # delivered on commit, to another connection
    await listener.execute("SELECT 1")  # and handed over with its next message at the latest
    return list(seen)


async def test_a_deadline_set_says_when_and_one_cleared_says_nothing(
    db: asyncpg.Pool, database_url: str
) -> None:
    alert_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO notify.alerts (id, screening_id, risk_level, reasons, status,"
        " ack_deadline_seconds, created_at, changed_at, correlation_id)"
        " VALUES ($1, $2, 'high', '[]', 'pending', 300, now(), now(), 'deadline-notice-test')",
        alert_id,
        uuid.uuid4(),
    )
    seen: list[str] = []
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    await listener.add_listener(DELIVERIES_CHANNEL, lambda *notice: seen.append(notice[3]))
    try:
        notices = await _notices(
            db,
            listener,
            seen,
            "UPDATE notify.alerts SET status = 'delivered', escalate_at = now() + interval '5 min'"
            " WHERE id = $1",
            alert_id,
        )
        deadline = await db.fetchval(
            "SELECT extract(epoch FROM escalate_at)::float8 FROM notify.alerts WHERE id = $1",
            alert_id,
        )
        assert [float(p) for p in notices] == [deadline], notices

        cleared = await _notices(
            db,
            listener,
            seen,
            "UPDATE notify.alerts SET status = 'acknowledged', escalate_at = NULL WHERE id = $1",
            alert_id,
        )
        assert cleared == [], "a deadline cleared wakes nobody"
    finally:
        await listener.close()
        await db.execute("DELETE FROM notify.alerts WHERE id = $1", alert_id)
