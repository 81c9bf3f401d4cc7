"""`make chaos CHAOS_ARGS="--soak 200000"`: no faults, a long steady load with retention set to
minutes, and the tables only retention keeps from growing sampled with each process's memory:
both must stay flat once retention has caught up (the screenings, plans and the audit trail grow
by design, and are shown for scale)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.chaos.stack import ChaosStack
from deploy.localstack import LocalStackError
from shared.db import asyncpg_dsn

#: Retention in minutes for the soak (the services read days): pruned every 15 s.
SOAK_SETTINGS = {
    "PROCESSED_EVENTS_DAYS": str(2 / 1440),
    "RECORDS_DAYS": str(2 / 1440),
    "IDEMPOTENCY_KEYS_DAYS": str(2 / 1440),
    "PRUNE_INTERVAL_SECONDS": "15",
}
#: Tables retention bounds, then tables that grow by design (for scale).
BOUNDED = (
    "intake.processed_events",
    "risk.processed_events",
    "notify.processed_events",
    "intake.idempotency_keys",
    "notify.deliveries",
    "notify.delivery_attempts",
    "notify.awaited_assessments",
    "intake.outbox",
    "risk.outbox",
    "notify.outbox",
)
GROWING = ("intake.screenings", "risk.assessments", "notify.alerts", "intake.audit_log")


@dataclass
class Sampler:
    stack: ChaosStack
    every: float = 30.0
    samples: list[dict[str, Any]] = field(default_factory=list)

    async def sample(self, t0: float) -> dict[str, Any]:
        conn = await asyncpg.connect(asyncpg_dsn(self.stack.database_url))
        try:
            rows = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in BOUNDED}
            rows |= {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in GROWING}
        finally:
            await conn.close()
        rss = {name: round(b / 2**20) for name, b in self.stack.rss().items()}
        sample = {"at_s": round(time.monotonic() - t0), "rows": rows, "rss_mib": rss}
        self.samples.append(sample)
        return sample

    async def run(self, t0: float, until: asyncio.Event) -> None:
        while not until.is_set():
            # PostgreSQL may be down (a fault): that sample is skipped.
            with contextlib.suppress(OSError, asyncpg.PostgresError, LocalStackError):
                await self.sample(t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), self.every)


def report(samples: list[dict[str, Any]]) -> str:
    if len(samples) < 2:
        return "soak: too short to compare"
    first, last = samples[1], samples[-1]  # the first sample is the empty stack
    lines = [f"{'table':<30} {'rows at ' + str(first['at_s']) + ' s':>16} {'at end':>10}"]
    for table in (*BOUNDED, *GROWING):
        lines.append(f"{table:<30} {first['rows'][table]:>16} {last['rows'][table]:>10}")
    lines.append(f"{'process':<30} {'RSS MiB then':>16} {'at end':>10}")
    for name in last["rss_mib"]:
        lines.append(f"{name:<30} {first['rss_mib'].get(name, 0):>16} {last['rss_mib'][name]:>10}")
    return "\n".join(lines)
