"""The floor: the least work the alert path could do, on the same broker and database.

The pipeline moves a flagged screening through two Kafka hops (intake → risk → notify) and
commits to PostgreSQL on each; so the floor sends the same number of messages, at the same rate
and on the same schedule, through produce → consume → one PostgreSQL commit → produce → consume,
with the services' own producer settings (idempotent, acks=all, linger 1 ms) and the same manual
offset commits. Its latency is what the hardware and the broker allow; the end-to-end figures
are reported as a multiple of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.db import asyncpg_dsn
from shared.kafka import create_producer

_PAYLOAD = 512  # bytes per message, about the size of a risk.assessed envelope
_INDEX = struct.Struct(">I")


@dataclass
class FloorResult:
    latencies: list[float | None]  # seconds from scheduled send to the second consume
    started: float
    finished: float

    @property
    def lost(self) -> int:
        return sum(1 for x in self.latencies if x is None)


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    """As the services' EventConsumer configures it."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )


async def _assigned(*consumers: AIOKafkaConsumer, timeout: float = 30.0) -> None:
    """Wait until each consumer owns its partitions, so no message waits for a rebalance."""
    deadline = time.monotonic() + timeout
    while not all(c.assignment() for c in consumers):
        if time.monotonic() > deadline:
            raise RuntimeError("the floor's consumers got no partitions in time")
        for c in consumers:
            await c.getmany(timeout_ms=50)


async def measure_floor(
    *,
    bootstrap: str,
    database_url: str,
    count: int,
    rate: float,
    partitions: int = 6,
    timeout: float = 30.0,
) -> FloorResult:
    """Send `count` messages at `rate`/s through two hops with a commit in between."""
    run = uuid.uuid4().hex[:8]
    hop1, hop2 = f"bench.floor.{run}.hop1", f"bench.floor.{run}.hop2"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-floor")
    await admin.start()
    pool: asyncpg.Pool | None = None
    producer = create_producer(bootstrap, client_id="bench-floor")
    stage = _consumer(bootstrap, hop1, f"bench-floor-{run}-1")
    sink = _consumer(bootstrap, hop2, f"bench-floor-{run}-2")
    latencies: list[float | None] = [None] * count
    scheduled: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in (hop1, hop2)]
        )
        pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=10, max_size=10)
        await pool.execute(
            "CREATE SCHEMA IF NOT EXISTS bench;"
            "CREATE TABLE IF NOT EXISTS bench.floor (run text, seq integer,"
            " at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run, seq))"
        )
        await producer.start()
        await stage.start()
        await sink.start()
        await _assigned(stage, sink)

        async def relay(record: ConsumerRecord) -> asyncio.Future[object]:
            # one transaction, one commit, as a consumer applying a message does
            (seq,) = _INDEX.unpack_from(record.value or b"")
            await pool.execute("INSERT INTO bench.floor (run, seq) VALUES ($1, $2)", run, seq)
            return await producer.send(hop2, value=record.value, key=record.key)

        async def run_stage() -> None:
            while True:
                batches = await stage.getmany(timeout_ms=1000, max_records=500)
                if not batches:
                    continue
                # as the services' consumer does: a poll at a time, one offset commit for it
                acks = await asyncio.gather(*(relay(r) for rs in batches.values() for r in rs))
                await asyncio.gather(*acks)
                await stage.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})

        received = 0
        all_in = asyncio.Event()

        async def run_sink() -> None:
            nonlocal received
            while True:
                batches = await sink.getmany(timeout_ms=1000, max_records=500)
                if not batches:
                    continue
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        (seq,) = _INDEX.unpack_from(record.value or b"")
                        if latencies[seq] is None:  # the first arrival counts
                            received += 1
                            latencies[seq] = now - scheduled[seq]
                if received == count:
                    all_in.set()
                await sink.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})

        tasks = [asyncio.create_task(run_stage()), asyncio.create_task(run_sink())]
        start = time.monotonic() + 0.2
        scheduled.extend(start + i / rate for i in range(count))
        pad = bytes(_PAYLOAD - _INDEX.size)
        for seq, at in enumerate(scheduled):
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(hop1, value=_INDEX.pack(seq) + pad, key=str(uuid.uuid4()).encode())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), timeout)
        return FloorResult(latencies, start, time.monotonic())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sink.stop()
        await stage.stop()
        await producer.stop()
        if pool is not None:
            await pool.execute("DELETE FROM bench.floor WHERE run = $1", run)
            await pool.close()
        with contextlib.suppress(Exception):
            await admin.delete_topics([hop1, hop2])
        await admin.close()
