"""A producer whose sender died is made anew: readiness sees it, and the next send goes out."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.localstack import LocalStack
from shared.kafka import Producer, create_producer
from tests.support.kafka import read_all


async def test_a_producer_whose_sender_died_is_replaced_and_sends_again(stack: LocalStack) -> None:
    topic = f"test.producer.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    producer = Producer(lambda: create_producer(stack.bootstrap_servers, client_id="test"))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"before", key=b"k")
        first = producer.current
        # The sender task ends the way an error aiokafka does not handle would end it.
        first._sender.sender_task.cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0.1)
        assert not producer.healthy, "readiness must see it"

        await producer.send_and_wait(topic, value=b"after", key=b"k")
        assert producer.current is not first and producer.renewed == 1
        assert producer.healthy
        values = [r.value for r in await read_all(stack.bootstrap_servers, topic, timeout=2)]
        assert values == [b"before", b"after"]
    finally:
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
