"""`python -m bench.notices` against the session stack: a round measures PostgreSQL's CPU per
NOTIFY with sessions listening elsewhere, and leaves none of its sessions behind.

No figure is compared: the session's services share the database meanwhile (performance is
shown by the benchmark itself, not by timed tests).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from bench.notices import APPLICATION_NAME, cost_per_notice
from deploy.localstack import LocalStack


async def test_a_round_measures_the_database_per_notice_and_closes_its_sessions(
    stack: LocalStack, db: asyncpg.Pool
) -> None:
    cost = await cost_per_notice(stack, 3, 200)
    assert 0 < cost < 100_000  # µs: spent, and not absurd
    left = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    deadline = time.monotonic() + 5  # a closed session's backend leaves the view as it exits
    while await db.fetchval(left, APPLICATION_NAME):
        assert time.monotonic() < deadline, "the bench left sessions open"
        await asyncio.sleep(0.05)
