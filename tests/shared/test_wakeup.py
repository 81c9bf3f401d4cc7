"""A loop that wakes on NOTIFY (shared/wakeup.py), against the real PostgreSQL: asleep until
some time, it is not woken by a notice of work due no earlier than that; an earlier one, one
with no payload or an unreadable one wakes it. Intake's plans and follow-ups, opened, say when
they are due."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import httpx

from shared.db import asyncpg_dsn
from shared.wakeup import WakeLoop
from tests.support.cases import HIGH_CSSRS
from tests.support.safety_plans import open_plan

#: How long the loop sleeps when nothing wakes it: far longer than the test.
ASLEEP = 60.0


@contextlib.asynccontextmanager
async def _looping(database_url: str, channel: str) -> AsyncIterator[list[float]]:
    """A loop on `channel` that sleeps ASLEEP seconds after each pass; its passes' times."""
    passes: list[float] = []

    async def work() -> None:
        passes.append(time.monotonic())

    async def next_due() -> float:
        return ASLEEP

    loop = WakeLoop(
        name="wake test", listen_dsn=asyncpg_dsn(database_url), channels=[channel], max_sleep=120
    )
    task = asyncio.create_task(loop.run(work, next_due))
    try:
        await _passes(passes, 1)  # the first pass, then asleep
        yield passes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _passes(passes: list[float], n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(passes) < n:
        assert time.monotonic() < deadline, f"{len(passes)} passes, not {n}"
        await asyncio.sleep(0.02)


async def test_a_notice_of_work_due_after_the_sleep_ends_does_not_wake_the_loop(
    database_url: str, db: asyncpg.Pool
) -> None:
    channel = f"wake_test_{uuid.uuid4().hex[:8]}"
    async with _looping(database_url, channel) as passes:
        await asyncio.sleep(0.2)  # asleep by now
        later = time.time() + ASLEEP + 3600
        await db.execute("SELECT pg_notify($1, $2)", channel, f"{later:.6f}")
        await asyncio.sleep(0.5)
        assert len(passes) == 1, "woken for work due after it wakes anyway"

        for payload, why in [
            (f"{time.time() + 5:.6f}", "due before the sleep ends"),
            ("", "no payload: due now"),
            ("soon", "an unreadable payload"),
        ]:
            woken = len(passes) + 1
            await db.execute("SELECT pg_notify($1, $2)", channel, payload)
            await _passes(passes, woken, timeout=5)
            assert len(passes) == woken, why
            await asyncio.sleep(0.2)


async def test_an_opened_plan_and_follow_up_say_when_they_are_due(
    intake: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    """So a flagged screening wakes no overdue watcher asleep until an earlier due time."""
    notices: dict[str, list[str]] = {"intake_safety_plans": [], "intake_follow_ups": []}
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for channel, seen in notices.items():
            await listener.add_listener(
                channel, lambda _c, _p, _ch, payload, seen=seen: seen.append(payload)
            )
        sid, plan = await open_plan(intake, HIGH_CSSRS)
        follow_up_due = await db.fetchval(
            "SELECT due_at FROM intake.follow_ups WHERE screening_id = $1", uuid.UUID(sid)
        )
        await asyncio.sleep(0.3)  # the notices come on commit, on another connection
    finally:
        await listener.close()
    plan_due = datetime.fromisoformat(plan["due_at"]).timestamp()
    assert any(p and abs(float(p) - plan_due) < 1e-3 for p in notices["intake_safety_plans"]), (
        notices
    )
    assert follow_up_due is not None
    assert any(
        p and abs(float(p) - follow_up_due.timestamp()) < 1e-3 for p in notices["intake_follow_ups"]
    ), notices
