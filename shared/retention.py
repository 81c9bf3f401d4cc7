"""Retention: the bookkeeping tables that only grow are pruned, in small batches, off the hot path.

Each service lists its rules: a table, which rows are old enough (a condition on `$1`, the
cutoff), and how many days that is. A pass every PRUNE_INTERVAL_SECONDS deletes them a batch at
a time, each batch one statement that commits alone (`FOR UPDATE SKIP LOCKED`: replicas pruning
at once take different rows, and a row being worked on is left alone), with a pause between
batches so that a large backlog never competes with the screenings for long. A child table's
rule comes before its parent's (a delivery's attempts, then the delivery).

What is kept, and for how long (docs/operations.md): processed event ids PROCESSED_EVENTS_DAYS
(longer than any topic keeps a message that could be redelivered), finished deliveries, pushes,
reminders and their attempts RECORDS_DAYS, idempotency keys IDEMPOTENCY_KEYS_DAYS. Never a
pending one. The audit trail has its own retention (AUDIT_RETENTION_DAYS, intake's audit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from shared.db import SessionFactory, driver
from shared.events import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """Rows of `table` (keyed by `key`) matching `old`, where `$1` is now minus `days`."""

    table: str
    key: str
    old: str
    days: float

    def statement(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE {self.key} IN (SELECT {self.key} FROM {self.table}"
            f" WHERE {self.old} LIMIT $2 FOR UPDATE SKIP LOCKED)"
        )


def processed_events(schema: str, days: float) -> Rule:
    return Rule(f"{schema}.processed_events", "event_id", "processed_at < $1", days)


class Pruner:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        rules: Sequence[Rule],
        interval_seconds: float = 300.0,
        batch_size: int = 1000,
        pause_seconds: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._rules = list(rules)
        self._interval = interval_seconds
        self._batch = batch_size
        self._pause = pause_seconds
        self.deleted: dict[str, int] = {}

    async def run(self) -> None:
        """A pass now and then, until cancelled; a failed pass is logged and tried next time."""
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention pass failed; trying again in %.0f s", self._interval)
            await asyncio.sleep(self._interval)

    async def prune(self) -> dict[str, int]:
        """One pass over every rule; returns the rows deleted per table."""
        done: dict[str, int] = {}
        for rule in self._rules:
            cutoff = utcnow() - timedelta(days=rule.days)
            statement = rule.statement()
            while True:
                async with self._sessions() as session:
                    conn = await driver(session, begin=False)
                    status = await conn.execute(statement, cutoff, self._batch)
                count = int(status.split()[-1])
                done[rule.table] = done.get(rule.table, 0) + count
                if count < self._batch:
                    break
                await asyncio.sleep(self._pause)
        for table, count in done.items():
            self.deleted[table] = self.deleted.get(table, 0) + count
            if count:
                log.info("retention: %d rows of %s pruned", count, table)
        return done
