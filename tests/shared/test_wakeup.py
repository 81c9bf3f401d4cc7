"""A loop that wakes on NOTIFY (shared/wakeup.py), against the real PostgreSQL: asleep until
some time, it is not woken by a notice of work due no earlier than that; an earlier one, one
with no payload or an unreadable one wakes it. Intake's plans and follow-ups, opened, say when
they are due. The loops of a process share one LISTEN session, which a drop does not lose."""

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
from shared.wakeup import Listener, WakeLoop
from tests.support.cases import HIGH_CSSRS
from tests.support.safety_plans import open_plan

#: How long the loop sleeps when nothing wakes it: far longer than the test.
ASLEEP = 60.0


async def _passes(passes: list[float], n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(passes) < n:
        assert time.monotonic() < deadline, f"{len(passes)} passes, not {n}"
        await asyncio.sleep(0.02)


async def test_a_notice_of_work_due_after_the_sleep_ends_does_not_wake_the_loop(
    database_url: str, db: asyncpg.Pool
) -> None:
    channel = f"wake_test_{uuid.uuid4().hex[:8]}"
    async with _loops(Listener(asyncpg_dsn(database_url)), [channel]) as loops:
        passes = loops[channel]
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


@contextlib.asynccontextmanager
async def _loops(listener: Listener, channels: list[str]) -> AsyncIterator[dict[str, list[float]]]:
    """A loop on each of `channels` over `listener`, started one after the other, each asleep
    after its first pass; their passes' times by channel. The loops end with the block."""
    passes: dict[str, list[float]] = {}
    tasks = []

    async def next_due() -> float:
        return ASLEEP

    try:
        for channel in channels:
            seen = passes[channel] = []

            async def work(seen: list[float] = seen) -> None:
                seen.append(time.monotonic())

            loop = WakeLoop(name=channel, listener=listener, channels=[channel], max_sleep=120)
            tasks.append(asyncio.create_task(loop.run(work, next_due)))
            await _passes(seen, 1)
        yield passes
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _sessions_named(db: asyncpg.Pool, name: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
    )


async def _no_session_named(db: asyncpg.Pool, name: str, why: str) -> None:
    """Within 5 s: a closed session's backend leaves the view as it exits."""
    deadline = time.monotonic() + 5
    while await _sessions_named(db, name):
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.05)


async def _woken_alone(db: asyncpg.Pool, passes: dict[str, list[float]], channel: str) -> None:
    """A notice on `channel` wakes its loop once, and no other."""
    before = {c: len(seen) for c, seen in passes.items()}
    await db.execute("SELECT pg_notify($1, '')", channel)
    await _passes(passes[channel], before[channel] + 1, timeout=5)
    await asyncio.sleep(0.3)
    assert {c: len(seen) for c, seen in passes.items()} == {
        c: n + (c == channel) for c, n in before.items()
    }


async def test_the_loops_of_a_process_share_one_listening_session(
    database_url: str, db: asyncpg.Pool
) -> None:
    """PostgreSQL signals every listening session at each NOTIFY: one per process, not one per
    loop. A loop that joins the session listens on its channel before its first pass."""
    name = f"listener test {uuid.uuid4().hex[:8]}"
    listener = Listener(asyncpg_dsn(database_url), name=name)
    channels = [f"shared_{n}_{uuid.uuid4().hex[:8]}" for n in range(3)]
    async with _loops(listener, channels) as passes:
        assert await _sessions_named(db, name) == 1
        for channel in reversed(channels):
            await _woken_alone(db, passes, channel)
    await _no_session_named(db, name, "the listening session outlived its loops")


async def test_a_dropped_listening_session_makes_each_loop_pass_again_and_listen_on(
    database_url: str, db: asyncpg.Pool
) -> None:
    """A notice sent while the session was down is lost: each loop makes a full pass once it is
    back, and notices wake each again."""
    name = f"listener test {uuid.uuid4().hex[:8]}"
    listener = Listener(asyncpg_dsn(database_url), name=name)
    channels = [f"dropped_{n}_{uuid.uuid4().hex[:8]}" for n in range(2)]
    async with _loops(listener, channels) as passes:
        cut = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            name,
        )
        assert cut == 1
        for seen in passes.values():
            await _passes(seen, 2)
        assert await _sessions_named(db, name) == 1
        for channel in channels:
            await _woken_alone(db, passes, channel)


async def test_a_loop_that_asks_between_the_drop_and_its_notice_waits_for_the_new_session(
    database_url: str,
) -> None:
    """asyncpg closes a lost connection at once and tells the keeper a loop later: a loop that
    asks meanwhile (a pass that ended just then) must wait, not take the closed connection back
    (its loop would ask again at once, forever, and the keeper never run)."""
    listener = Listener(asyncpg_dsn(database_url), name=f"listener test {uuid.uuid4().hex[:8]}")
    lost: list[int] = []
    async with listener.subscribed(["drop_window"], lambda *_: None, lambda: lost.append(1)):
        conn = await listener.listening()
        conn.terminate()  # as a lost connection: closed now, the keeper told with call_soon
        assert conn.is_closed() and not lost
        async with asyncio.timeout(5):
            again = await listener.listening()
        assert again is not conn and not again.is_closed()
        assert lost


async def test_a_loop_cancelled_while_subscribing_leaves_nothing_behind(
    database_url: str, db: asyncpg.Pool
) -> None:
    """Its subscription ends with it, and with the last one the session."""
    name = f"listener test {uuid.uuid4().hex[:8]}"
    listener = Listener(asyncpg_dsn(database_url), name=name)
    async with _loops(listener, [f"first_{uuid.uuid4().hex[:8]}"]):
        joining = asyncio.create_task(_subscribe_forever(listener, f"late_{uuid.uuid4().hex[:8]}"))
        await asyncio.sleep(0)  # inside its LISTEN, or waiting for the lock
        joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
    await _no_session_named(db, name, "a cancelled subscription kept the session open")


async def _subscribe_forever(listener: Listener, channel: str) -> None:
    async with listener.subscribed([channel], lambda *_: None, lambda: None):
        await asyncio.Event().wait()


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
