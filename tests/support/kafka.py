"""Looking at topics directly: end offsets, and reading a dead-letter topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        offsets = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in offsets.items()}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, *, timeout: float = 5.0) -> list[ConsumerRecord]:
    """Every record of `topic` from the start, read by a throwaway group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def read_every_topic(bootstrap: str) -> list[ConsumerRecord]:
    """Every record of every topic, from the start to the end offsets read first."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(topic, p)
            for topic in sorted(cluster.topics(exclude_internal_topics=True))
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = {tp: end for tp, end in (await consumer.end_offsets(tps)).items() if end > 0}
        records: list[ConsumerRecord] = []
        while ends:
            for tp in [tp for tp, end in ends.items() if await consumer.position(tp) >= end]:
                del ends[tp]
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def stop_consumer(task: asyncio.Task, *closers: Callable[[], Awaitable[object]]) -> None:
    """Cancel a consumer's running task, then close what it used, in order."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for close in closers:
        await close()
