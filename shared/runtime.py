"""The long-lived resources of one service, opened and closed by its lifespan.

Every service has the same skeleton: an engine and session factory, an idempotent producer, an
outbox relay, and (for the services that consume) one consumer loop. `Runtime` opens them in
order and closes them in reverse, letting in-flight work finish, so the three apps' lifespans stay
a few lines each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    database_ready,
    warm_pool,
)
from shared.kafka import EventConsumer, Handler, create_producer, processed_events_table
from shared.outbox import OutboxRelay, notify_channel, outbox_table
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


def plumbing_tables(metadata: MetaData) -> tuple:
    """The outbox and processed-events tables in `metadata`'s schema."""
    return outbox_table(metadata), processed_events_table(metadata)


@dataclass
class Runtime:
    settings: ServiceSettings
    schema: str
    engine: AsyncEngine
    sessions: SessionFactory
    producer: AIOKafkaProducer
    relay: OutboxRelay
    consumer: EventConsumer | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": await database_ready(self.engine), "kafka": await self._kafka_ready()}
        if self.consumer is not None:
            checks["consumer_group"] = self.consumer.joined.is_set()
        return checks

    async def _kafka_ready(self) -> bool:
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=2)
        except Exception:
            return False
        return all(not t.done() for t in self.tasks)

    def spawn(self, coro, *, name: str) -> asyncio.Task:
        """Run a background loop for the service's lifetime; a crash is logged, not swallowed."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self.tasks.append(task)
        return task


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


@contextlib.asynccontextmanager
async def open_runtime(
    settings: ServiceSettings,
    *,
    schema: str,
    metadata: MetaData,
    consumer_group: str | None = None,
    handlers: Mapping[str, Handler] | None = None,
    prepare: Callable[[SessionFactory], Awaitable[None]] | None = None,
) -> AsyncIterator[Runtime]:
    """Open everything a service needs; on exit stop intake of work first, then the rest.

    `prepare` runs against the database before any consumer or relay starts.
    """
    outbox, processed = (
        metadata.tables[f"{schema}.outbox"],
        metadata.tables[f"{schema}.processed_events"],
    )
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = create_session_factory(engine)
    await warm_pool(engine, min(4, settings.db_pool_size))
    if prepare is not None:
        await prepare(sessions)
    producer = create_producer(settings.kafka_bootstrap_servers, client_id=schema)
    await producer.start()
    relay = OutboxRelay(
        sessions=sessions,
        outbox=outbox,
        producer=producer,
        listen_dsn=asyncpg_dsn(settings.database_url),
        channel=notify_channel(schema),
        sweep_seconds=settings.outbox_sweep_seconds,
    )
    rt = Runtime(settings, schema, engine, sessions, producer, relay)
    rt.spawn(relay.run(), name=f"{schema}-outbox-relay")
    if handlers:
        rt.consumer = EventConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=consumer_group or schema,
            handlers=handlers,
            sessions=sessions,
            processed_events=processed,
            producer=producer,
        )
        rt.spawn(rt.consumer.run(), name=f"{schema}-consumer")
    try:
        yield rt
    finally:
        for task in reversed(rt.tasks):
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        # One last relay pass so events committed just before shutdown leave now, not at next start.
        with contextlib.suppress(Exception):
            await relay.publish_batch()
        await producer.stop()
        await engine.dispose()
