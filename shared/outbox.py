"""The transactional outbox: a domain change and the event announcing it commit together.

Writers call `add_event` inside their transaction. A trigger on the outbox table sends a
PostgreSQL NOTIFY when that transaction commits, which wakes the relay at once: no polling on the
path. The relay claims rows with `FOR UPDATE SKIP LOCKED` (so replicas never publish a row twice
at the same time), produces them in id order, waits for the broker's acks and deletes them in the
same transaction. A crash between produce and delete republishes the rows: at least once, and
consumers drop the duplicates by event id. A slow sweep catches a wake-up lost while the LISTEN
connection was down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory, driver, qualified, transaction
from shared.events import Envelope
from shared.wakeup import WakeLoop

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox of one service, in that service's schema (DDL: shared/migrations)."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


#: How long an audit entry alone (a read's) may wait in the outbox: its statement wakes no relay
#: (shared/migrations/0003), a timed pass sends it with every other read's entry.
AUDIT_FLUSH_SECONDS = 1.0


def notify_channel(schema: str) -> str:
    """The NOTIFY channel the outbox trigger of `schema` signals on."""
    return f"{schema}_outbox"


@functools.cache
def insert_sql(outbox: Table) -> str:
    """The statement that queues one event in `outbox` (the parameters of `event_row`)."""
    return f"INSERT INTO {qualified(outbox)} (event_id, topic, key, value) VALUES ($1, $2, $3, $4)"


def event_row(*, topic: str, key: Any, event: Envelope) -> tuple[Any, ...]:
    """The outbox row's parameters (event id, topic, key, value), in the order of `add_event`'s
    statement and of `add_event_after`'s parameters."""
    return event.event_id, topic, str(key), event.encode()


async def add_event(
    session: AsyncSession, outbox: Table, *, topic: str, key: Any, event: Envelope
) -> None:
    """Queue `event` for `topic`, keyed (so ordered) by `key`, in the session's transaction.

    Sent straight to asyncpg (`shared.db.driver`): every event on the alert path passes here.
    """
    await (await driver(session)).execute(
        insert_sql(outbox), *event_row(topic=topic, key=key, event=event)
    )


def add_event_after(outbox: Table, cte: str, *, first_param: int, events: int = 1) -> str:
    """`add_event` fused into the statement that makes the change: the outbox rows are inserted
    only for a row the common table expression `cte` returns, with `events` times
    `event_row(...)` as parameters from `$first_param` on (four each).

    One statement instead of two on the paths every screening takes, and it needs no explicit
    transaction of its own: the change and its events commit together or not at all.
    """
    selects = " UNION ALL ".join(
        f"SELECT ${n}::uuid, ${n + 1}::text, ${n + 2}::text, ${n + 3}::bytea FROM {cte}"
        for n in range(first_param, first_param + 4 * events, 4)
    )
    columns = "(event_id, topic, key, value)"
    return f"INSERT INTO {qualified(outbox)} {columns} {selects} RETURNING event_id"


class OutboxRelay:
    """Publishes a service's outbox to Kafka, woken by NOTIFY after each commit."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        outbox: Table,
        producer: AIOKafkaProducer,
        listen_dsn: str,
        channel: str,
        batch_size: int = 500,
        sweep_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._producer = producer
        self._batch_size = batch_size
        # A commit that queued events wakes the relay at once (NOTIFY); a pass every
        # AUDIT_FLUSH_SECONDS sends the audit entries of reads, which wake nobody, and the sweep
        # is the safety net for a NOTIFY lost while the LISTEN connection was down.
        self._loop = WakeLoop(
            name="outbox relay",
            listen_dsn=listen_dsn,
            channels=[channel],
            max_sleep=min(sweep_seconds, AUDIT_FLUSH_SECONDS),
        )
        self.published = 0
        # Claim and delete in one statement: the rows stay locked and deleted only in this
        # transaction, so a failed produce rolls the delete back and they go out later.
        self._claim = (
            f"DELETE FROM {qualified(outbox)} WHERE id IN (SELECT id FROM {qualified(outbox)} "
            "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, topic, key, value"
        )

    def wake(self) -> None:
        self._loop.wake()

    async def run(self) -> None:
        """Relay until cancelled; each pass empties the outbox, batch by batch."""
        await self._loop.run(self.publish_all, _nothing_scheduled)

    async def publish_all(self) -> None:
        while await self.publish_batch() == self._batch_size:
            pass

    async def publish_batch(self) -> int:
        """Claim, produce and delete one batch; returns how many rows it published.

        One round trip claims and deletes the rows (DELETE ... RETURNING); the commit waits
        for the broker's acks, so a crash in between republishes them (at least once).
        """
        async with transaction(self._sessions) as session:
            claimed = await (await driver(session)).fetch(self._claim, self._batch_size)
            if not claimed:
                return 0
            rows = sorted(claimed, key=lambda row: row["id"])  # RETURNING has no order
            # send() only enqueues; awaiting the futures afterwards lets the batch go out together.
            acks = [
                await self._producer.send(row["topic"], value=row["value"], key=row["key"].encode())
                for row in rows
            ]
            await asyncio.gather(*acks)
        self.published += len(rows)
        return len(rows)


async def _nothing_scheduled() -> None:
    """The outbox has no due times: only a commit (NOTIFY) or the sweep brings work."""
    return None
