"""The transactional outbox: a domain change and the event announcing it commit together.

Writers call `add_event` inside their transaction. A trigger on the outbox table sends a
PostgreSQL NOTIFY when that transaction commits, which wakes the relay at once: no polling on the
path (a read's audit entry alone wakes nobody: it goes out with the next timed pass).

One relay per service publishes at a time: the replica whose relay connection holds the
service's advisory lock. It reads rows in id order, produces them, waits for the broker's acks
and only then deletes them (with its next read, or with the lead's heartbeat, within
HEARTBEAT_SECONDS), and no transaction is open meanwhile: a broker that is away holds no pooled
connection and stops no vacuum. A crash between produce and delete republishes the rows (at
least once; consumers drop duplicates by event id). One publisher, in id order, one batch at a
time, with the idempotent producer: the events of one key (one screening) reach the topic in the
order their transactions committed, whichever replica committed them. A leader that dies or
freezes loses the lock with its connection (a heartbeat keeps it; PostgreSQL ends the session
after LEADER_SILENCE_SECONDS without one) and another replica's relay takes over at its next
pass. A row the broker will never take (its topic does not exist, it is too large) is set aside
in `outbox_set_aside` with the reason instead of blocking every row behind it; `triage dlq`
lists and replays those.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from opentelemetry.trace import SpanKind
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared import tracing
from shared.db import SessionFactory, driver, qualified
from shared.events import Envelope
from shared.kafka import Producer
from shared.wakeup import Listener, WakeLoop

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
        # The W3C trace context the event was queued in (shared/tracing.py): NULL when off.
        Column("traceparent", Text),
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
    return (
        f"INSERT INTO {qualified(outbox)} (event_id, topic, key, value, traceparent)"
        " VALUES ($1, $2, $3, $4, $5)"
    )


def event_row(*, topic: str, key: Any, event: Envelope) -> tuple[Any, ...]:
    """The outbox row's parameters (event id, topic, key, value, the trace context it is queued
    in), in the order of `add_event`'s statement and of `add_event_after`'s parameters."""
    return event.event_id, topic, str(key), event.encode(), tracing.traceparent()


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
    `event_row(...)` as parameters from `$first_param` on (five each).

    One statement instead of two on the paths every screening takes, and it needs no explicit
    transaction of its own: the change and its events commit together or not at all.
    """
    selects = " UNION ALL ".join(
        f"SELECT ${n}::uuid, ${n + 1}::text, ${n + 2}::text, ${n + 3}::bytea, ${n + 4}::text"
        f" FROM {cte}"
        for n in range(first_param, first_param + 5 * events, 5)
    )
    columns = "(event_id, topic, key, value, traceparent)"
    return f"INSERT INTO {qualified(outbox)} {columns} {selects} RETURNING event_id"


#: Seconds without a heartbeat after which PostgreSQL ends the leader's session (a frozen or
#: partitioned process), so another replica's relay takes the lock over.
LEADER_SILENCE_SECONDS = 3.0
#: The leader's heartbeat, when no read used its connection meanwhile. It also carries the
#: delete of the rows acked since the last read: a row published stays up to this long, and
#: no delete goes alone (one round trip and one commit less per pass while events flow).
HEARTBEAT_SECONDS = 1.0


class OutboxRelay:
    """Publishes a service's outbox to Kafka, woken by NOTIFY after each commit; one replica at
    a time (see the module's docstring)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        outbox: Table,
        producer: Producer | AIOKafkaProducer,
        dsn: str,
        listener: Listener,
        channel: str,
        batch_size: int = 500,
        sweep_seconds: float = 5.0,
        on_published: Callable[[float], None] | None = None,
    ) -> None:
        """`dsn`: for the lead's own connection; `listener`: the process's LISTEN connection.
        `on_published`: told, for each event published, the seconds from its commit to the
        broker's acknowledgement (the metrics' histogram)."""
        self._sessions = sessions
        self._outbox = outbox
        self._producer = producer
        self._dsn = dsn
        self._batch_size = batch_size
        self._on_published = on_published
        # A commit that queued events wakes the relay at once (NOTIFY); a pass every
        # AUDIT_FLUSH_SECONDS sends the audit entries of reads, which wake nobody, lets a
        # follower see a lock fall free, and makes up for a NOTIFY lost while the LISTEN
        # connection was down.
        self._loop = WakeLoop(
            name="outbox relay",
            listener=listener,
            channels=[channel],
            max_sleep=min(sweep_seconds, AUDIT_FLUSH_SECONDS),
        )
        self.published = 0
        self.set_aside = 0
        table = qualified(outbox)
        self._lock_key = table
        # The rows acked since the last read are deleted by it: the statement's read sees them
        # still (one snapshot for both), hence the filter.
        self._read = (
            f"WITH gone AS (DELETE FROM {table} WHERE id = ANY($2::bigint[]))"
            " SELECT id, topic, key, value, traceparent,"
            " extract(epoch FROM clock_timestamp() - created_at)::float8 AS age"
            f" FROM {table} WHERE id <> ALL($2::bigint[]) ORDER BY id LIMIT $1"
        )
        self._delete = f"DELETE FROM {table} WHERE id = ANY($1::bigint[])"
        #: Rows acked by the broker and not deleted yet (see HEARTBEAT_SECONDS).
        self._acked: list[int] = []
        #: When a read last used the relay connection (the heartbeat is needless until then).
        self._read_at = 0.0
        self._set_aside = (
            f"WITH gone AS (DELETE FROM {table} WHERE id = $1 RETURNING *) "
            f"INSERT INTO {table}_set_aside (id, event_id, topic, key, value, created_at, reason,"
            " traceparent) SELECT id, event_id, topic, key, value, created_at, $2, traceparent"
            " FROM gone"
        )
        self._conn: asyncpg.Connection | None = None
        self._conn_lock = asyncio.Lock()
        self._heartbeat: asyncio.Task | None = None

    @property
    def leading(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def wake(self) -> None:
        self._loop.wake()

    async def run(self) -> None:
        """Relay until cancelled; each pass empties the outbox, batch by batch."""
        try:
            await self._loop.run(self.publish_all, _nothing_scheduled)
        finally:
            await self.close()

    async def close(self) -> None:
        """Give the lead up (a stop): another replica's relay takes over at its next pass."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_acked(), 2)
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
        self._conn = None

    async def publish_all(self) -> None:
        """Publish everything queued, if this replica leads; otherwise wait (up to a few
        seconds) until what was queued before the call has been published by the leader."""
        if await self._lead():
            while await self.publish_batch() == self._batch_size:
                pass
        else:
            await self._published_elsewhere()

    async def publish_batch(self) -> int:
        """Read, produce and delete one batch; returns how many rows left the outbox.

        No transaction is open while the broker is awaited: rows are read, then deleted once
        acked. A row that failed for a reason the broker will not get over is set aside."""
        conn = await self._lead()
        if conn is None:
            return 0
        async with self._conn_lock:
            carried, self._acked = self._acked, []
            try:
                rows = await conn.fetch(self._read, self._batch_size, carried)
            except BaseException:
                self._acked[:0] = carried
                raise
            read_at = self._read_at = time.monotonic()
        if not rows:
            return 0
        # send() only enqueues, in id order; awaiting the acks afterwards lets the batch go out
        # together.
        pending = [await self._send(row) for row in rows]
        outcomes = [await _settled(ack) for ack in pending]
        sent = [row["id"] for row, error in zip(rows, outcomes, strict=True) if error is None]
        failed = [(row, e) for row, e in zip(rows, outcomes, strict=True) if e is not None]
        unsendable = [(row, why) for row, e in failed if (why := await self._unsendable(row, e))]
        self._acked.extend(sent)
        if unsendable:
            async with self._conn_lock:
                for row, why in unsendable:
                    await conn.execute(self._set_aside, row["id"], why)
        for row, why in unsendable:
            log.error(
                "outbox row %d (topic %s) set aside: %s; `triage dlq` lists it",
                row["id"],
                row["topic"],
                why,
            )
        self.published += len(sent)
        self.set_aside += len(unsendable)
        if self._on_published is not None and sent:
            acked = time.monotonic() - read_at
            for row, error in zip(rows, outcomes, strict=True):
                if error is None:
                    self._on_published(row["age"] + acked)
        if failed and len(unsendable) < len(failed):
            # The broker is away (or slow): the rows stay, the next pass tries them again.
            raise failed[0][1]
        return len(sent) + len(unsendable)

    async def _delete_acked(self) -> None:
        """Delete the acked rows no read has carried away (on giving the lead up). Lost (the
        lead went with its connection) they are published once more by the next leader, and
        consumers drop them by event id."""
        conn = self._conn
        if conn is None or conn.is_closed():
            self._acked = []
            return
        async with self._conn_lock:
            acked, self._acked = self._acked, []
            if not acked:
                return
            try:
                await conn.execute(self._delete, acked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: deleting %d published rows failed (%r)", len(acked), exc)

    async def _send(self, row: asyncpg.Record) -> asyncio.Future | Exception:
        try:
            if row["traceparent"] is None or not tracing.enabled():
                return await self._producer.send(
                    row["topic"], value=row["value"], key=row["key"].encode()
                )
            # The publish continues the trace the event was queued in; the message carries the
            # publish's context to its consumers.
            with tracing.span(
                f"publish {row['topic']}",
                parent=row["traceparent"],
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.destination": row["topic"]},
            ):
                header = tracing.traceparent() or row["traceparent"]
                return await self._producer.send(
                    row["topic"],
                    value=row["value"],
                    key=row["key"].encode(),
                    headers=[("traceparent", header.encode())],
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused before it was queued (too large, unknown topic)
            return exc

    async def _unsendable(self, row: asyncpg.Record, error: Exception) -> str | None:
        """Why no retry can send `row` (set it aside), or None (keep it for the next pass)."""
        if isinstance(error, KafkaError) and not error.retriable:
            return f"{type(error).__name__} (the broker refuses it)"
        if isinstance(error, UnknownTopicOrPartitionError):
            # Retriable as far as Kafka knows: unknown until the broker confirms the topic is
            # missing (and not that the broker is unreachable).
            try:
                cluster = await self._producer.client.fetch_all_metadata()
            except Exception:
                return None
            if cluster.brokers() and row["topic"] not in cluster.topics():
                return f"topic {row['topic']} does not exist"
        return None

    async def _lead(self) -> asyncpg.Connection | None:
        """The relay connection if this replica leads (taking the lead when it is free)."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        conn = await asyncpg.connect(
            self._dsn,
            server_settings={
                "idle_session_timeout": str(int(LEADER_SILENCE_SECONDS * 1000)),
                # The relay's deletes (and set-asides) commit without waiting for their WAL
                # flush: a row is deleted only after the broker acked it, so a delete that a
                # crash of PostgreSQL loses only publishes that row again, which consumers drop
                # by its event id. Every other commit of the services stays synchronous.
                "synchronous_commit": "off",
            },
        )
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key)
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return None
        log.info("outbox relay of %s: this replica publishes", self._outbox.schema)
        self._conn = conn
        self._heartbeat = asyncio.create_task(self._beat(conn), name="outbox relay heartbeat")
        return conn

    def _holds(self, conn: asyncpg.Connection) -> bool:
        return not conn.is_closed() and self._conn is conn

    async def _beat(self, conn: asyncpg.Connection) -> None:
        """Keep the lead while alive (also while the broker is slow to ack): a beat deletes
        the rows acked since the last read, or is a bare `SELECT 1`, needless when a read used
        the connection since the last beat."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if not self._holds(conn):
                return  # given up, or found dead by a pass (which leads anew)
            try:
                async with self._conn_lock:
                    acked, self._acked = self._acked, []
                    if acked:
                        await conn.execute(self._delete, acked)
                    elif time.monotonic() - self._read_at >= HEARTBEAT_SECONDS:
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay of %s: lead lost", self._outbox.schema)
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
                return

    async def _published_elsewhere(self, timeout: float = 5.0) -> None:
        """Wait until the rows queued before now are gone (the leader published them)."""
        async with self._sessions() as session:
            conn = await driver(session, begin=False)
            last = await conn.fetchval(f"SELECT max(id) FROM {qualified(self._outbox)}")
            deadline = asyncio.get_running_loop().time() + timeout
            while last is not None and asyncio.get_running_loop().time() < deadline:
                if not await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {qualified(self._outbox)} WHERE id <= $1)", last
                ):
                    return
                await asyncio.sleep(0.02)


async def _settled(ack: asyncio.Future | Exception) -> Exception | None:
    """The error a queued send ended with, or None once the broker acked it."""
    if isinstance(ack, Exception):
        return ack
    try:
        await ack
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return exc
    return None


async def _nothing_scheduled() -> None:
    """The outbox has no due times: only a commit (NOTIFY) or the sweep brings work."""
    return None
