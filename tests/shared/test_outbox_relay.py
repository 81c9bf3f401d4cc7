"""The relay claims, produces and deletes outbox rows in one transaction: in id order, and a
failed produce leaves every row in place for the next attempt (at least once, never lost)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import MetaData, Table

from deploy.localstack import LocalStack
from shared.db import SessionFactory, create_engine, create_session_factory, transaction
from shared.events import Envelope
from shared.kafka import create_producer
from shared.outbox import OutboxRelay, add_event, outbox_table
from tests.support.kafka import read_all


@pytest.fixture
async def outbox(db: asyncpg.Pool) -> AsyncIterator[Table]:
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.outbox (id bigserial PRIMARY KEY,"
        " event_id uuid NOT NULL UNIQUE, topic text NOT NULL, key text NOT NULL,"
        " value bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )
    yield outbox_table(MetaData(schema=schema))
    await db.execute(f"DROP SCHEMA {schema} CASCADE")


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


class _BrokenProducer:
    """A producer whose broker refuses everything (the injected I/O point)."""

    async def send(self, *args: object, **kwargs: object) -> object:
        raise ConnectionError("broker down")


async def test_relay_publishes_in_order_and_keeps_rows_when_the_broker_fails(
    stack: LocalStack, db: asyncpg.Pool, outbox: Table, sessions: SessionFactory
) -> None:
    topic = f"test.relay.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    producer = create_producer(stack.bootstrap_servers, client_id="relay-test")
    await producer.start()
    table = f"{outbox.schema}.outbox"
    try:
        events = await _queue(sessions, outbox, topic, 5)
        broken = OutboxRelay(
            sessions=sessions,
            outbox=outbox,
            producer=_BrokenProducer(),  # type: ignore[arg-type]
            listen_dsn="unused",
            channel="unused",
        )
        with pytest.raises(ConnectionError):
            await broken.publish_batch()
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 5, "nothing lost"

        relay = OutboxRelay(
            sessions=sessions,
            outbox=outbox,
            producer=producer,
            listen_dsn="unused",
            channel="unused",
            batch_size=3,
        )
        assert await relay.publish_batch() == 3
        assert await relay.publish_batch() == 2
        assert await relay.publish_batch() == 0
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0
        published = await read_all(stack.bootstrap_servers, topic, timeout=2)
        assert [Envelope.decode(r.value).event_id for r in published] == [
            e.event_id for e in events
        ], "published once each, in the order they were queued"
    finally:
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
