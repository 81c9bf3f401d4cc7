"""The relay publishes outbox rows in id order and deletes them once acked, with no transaction
open while it waits on the broker; a failed produce leaves the rows for the next pass (at least
once, never lost), a row the broker will never take is set aside, and one replica publishes at a
time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, Table, text

from deploy.localstack import LocalStack
from shared.db import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    transaction,
)
from shared.events import Envelope
from shared.kafka import create_producer
from shared.outbox import HEARTBEAT_SECONDS, OutboxRelay, add_event, outbox_table
from shared.wakeup import Listener
from tests.support.kafka import read_all
from tests.support.services import ROOT


@pytest.fixture
async def outbox(db: asyncpg.Pool) -> AsyncIterator[Table]:
    """A schema of the test's own, with the plumbing every service schema has."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE SCHEMA {schema}")
    for path in sorted((ROOT / "shared" / "migrations").glob("*.sql")):
        await db.execute(path.read_text().replace("{schema}", schema))
    yield outbox_table(MetaData(schema=schema))
    await db.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def relay_of(
    sessions: SessionFactory, outbox: Table, database_url: str
) -> Callable[..., OutboxRelay]:
    """A relay of the test's outbox over `producer` (a real one, or a broken broker)."""

    def make(producer: Any, **options: Any) -> OutboxRelay:
        return OutboxRelay(
            sessions=sessions,
            outbox=outbox,
            producer=producer,
            dsn=asyncpg_dsn(database_url),
            listener=Listener(asyncpg_dsn(database_url)),
            channel="unused",
            **options,
        )

    return make


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=2)
    yield create_session_factory(engine)
    await engine.dispose()


async def _queue(sessions: SessionFactory, outbox: Table, topic: str, n: int) -> list[Envelope]:
    events = [Envelope(type="test.relay", correlation_id="relay", data={"n": i}) for i in range(n)]
    async with transaction(sessions) as session:
        for event in events:
            await add_event(session, outbox, topic=topic, key="same-key", event=event)
    return events


async def _until_empty(db: asyncpg.Pool, table: str, *, within: float) -> None:
    deadline = time.monotonic() + within
    while await db.fetchval(f"SELECT count(*) FROM {table}"):
        assert time.monotonic() < deadline, "published rows were not deleted"
        await asyncio.sleep(0.01)


class _BrokenProducer:
    """A producer whose broker refuses everything (the injected I/O point)."""

    async def send(self, *args: object, **kwargs: object) -> object:
        raise ConnectionError("broker down")


async def test_relay_publishes_in_order_and_keeps_rows_when_the_broker_fails(
    stack: LocalStack,
    db: asyncpg.Pool,
    outbox: Table,
    sessions: SessionFactory,
    database_url: str,
    topic: str,
    relay_of: Callable[..., OutboxRelay],
) -> None:
    producer = create_producer(stack.bootstrap_servers, client_id="relay-test")
    await producer.start()
    table = f"{outbox.schema}.outbox"
    try:
        events = await _queue(sessions, outbox, topic, 5)
        broken = relay_of(_BrokenProducer())
        with pytest.raises(ConnectionError):
            await broken.publish_batch()
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 5, "nothing lost"
        await broken.close()  # gives the lead up

        relay = relay_of(producer, batch_size=3)
        assert await relay.publish_batch() == 3
        assert await relay.publish_batch() == 2
        assert await relay.publish_batch() == 0
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, "the read deleted them"
        # With no read after it, a pass's rows are deleted by the heartbeat, within a second.
        events += await _queue(sessions, outbox, topic, 1)
        assert await relay.publish_batch() == 1
        await _until_empty(db, table, within=HEARTBEAT_SECONDS + 1)
        # Its deletes alone do not wait for their WAL flush (a lost one republishes rows that
        # were acked, which consumers drop); the services' own commits still do.
        assert relay._conn is not None
        assert await relay._conn.fetchval("SHOW synchronous_commit") == "off"
        async with sessions() as session:
            assert (await session.execute(text("SHOW synchronous_commit"))).scalar() == "on"
        published = await read_all(stack.bootstrap_servers, topic, timeout=2)
        assert [Envelope.decode(r.value).event_id for r in published] == [
            e.event_id for e in events
        ], "published once each, in the order they were queued"
        await relay.close()
    finally:
        await producer.stop()


class _HangingProducer:
    """A broker that takes the message and never acks (away, or paused)."""

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    async def send(self, *args: object, **kwargs: object) -> asyncio.Future:
        self.sent.set()
        return asyncio.get_running_loop().create_future()


async def test_no_transaction_is_open_while_the_relay_waits_on_the_broker(
    db: asyncpg.Pool,
    outbox: Table,
    sessions: SessionFactory,
    database_url: str,
    relay_of: Callable[..., OutboxRelay],
) -> None:
    """A broker that is away must not hold a pooled connection in a transaction (which stops
    vacuum on every table) for as long as it is away."""
    await _queue(sessions, outbox, "test.relay.hang", 3)
    producer = _HangingProducer()
    relay = relay_of(producer)
    waiting = asyncio.create_task(relay.publish_batch())
    try:
        await asyncio.wait_for(producer.sent.wait(), 5)
        await asyncio.sleep(0.3)
        open_transactions = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        )
        assert open_transactions == 0
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await relay.close()
    assert await db.fetchval(f"SELECT count(*) FROM {outbox.schema}.outbox") == 3, "nothing lost"


async def test_a_row_the_broker_never_takes_is_set_aside_and_the_rows_behind_it_go_out(
    stack: LocalStack,
    db: asyncpg.Pool,
    outbox: Table,
    sessions: SessionFactory,
    database_url: str,
    topic: str,
    relay_of: Callable[..., OutboxRelay],
) -> None:
    # The missing topic is confirmed after the metadata wait (request_timeout_ms): kept short.
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=2000,
    )
    await producer.start()
    relay = relay_of(producer)
    try:
        first = await _queue(sessions, outbox, topic, 2)
        await _queue(sessions, outbox, "test.relay.no-such-topic", 1)
        huge = Envelope(type="test.relay", correlation_id="relay", data={"pad": "x" * 2_000_000})
        async with transaction(sessions) as session:
            await add_event(session, outbox, topic=topic, key="same-key", event=huge)
        last = await _queue(sessions, outbox, topic, 2)

        assert await relay.publish_batch() == 6
        await _until_empty(db, f"{outbox.schema}.outbox", within=HEARTBEAT_SECONDS + 1)
        aside = await db.fetch(
            f"SELECT topic, reason FROM {outbox.schema}.outbox_set_aside ORDER BY id"
        )
        assert [r["topic"] for r in aside] == ["test.relay.no-such-topic", topic]
        assert "does not exist" in aside[0]["reason"]
        assert "MessageSizeTooLarge" in aside[1]["reason"]
        assert relay.set_aside == 2
        published = await read_all(stack.bootstrap_servers, topic, timeout=2)
        assert [Envelope.decode(r.value).event_id for r in published] == [
            e.event_id for e in first + last
        ]
    finally:
        await relay.close()
        await producer.stop()


async def test_one_replica_publishes_at_a_time_and_another_takes_over_when_it_stops(
    stack: LocalStack,
    db: asyncpg.Pool,
    outbox: Table,
    sessions: SessionFactory,
    database_url: str,
    topic: str,
    relay_of: Callable[..., OutboxRelay],
) -> None:
    producer = create_producer(stack.bootstrap_servers, client_id="relay-test")
    await producer.start()
    relays = [relay_of(producer) for _ in range(2)]
    try:
        events = await _queue(sessions, outbox, topic, 3)
        assert await relays[0].publish_batch() == 3
        events += await _queue(sessions, outbox, topic, 3)
        assert await relays[1].publish_batch() == 0, "the other replica leads"
        assert relays[0].leading and not relays[1].leading
        await relays[0].close()  # a stop, or a crash: its session ends, the lock with it
        assert await relays[1].publish_batch() == 3
        assert relays[1].leading
        published = await read_all(stack.bootstrap_servers, topic, timeout=2)
        assert [Envelope.decode(r.value).event_id for r in published] == [
            e.event_id for e in events
        ]
    finally:
        for relay in relays:
            await relay.close()
        await producer.stop()
