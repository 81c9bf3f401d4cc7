"""`make run BROKERS=3` / `make chaos --brokers 3`: a three-node KRaft cluster whose topics have
three replicas and min.insync.replicas 2, so that one broker can die and an acks=all producer
(every service's) keeps writing."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.localstack import LocalStack, free_port
from shared.topics import SCREENING_SUBMITTED


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root: Path = tmp_path_factory.mktemp("cluster")
    stack = LocalStack(root, kafka_port=free_port(), controller_port=free_port(), brokers=3)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def test_three_brokers_replicate_and_survive_one_death(cluster: LocalStack) -> None:
    parts = {p.name: p for p in cluster.status()}
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres"} <= set(parts)
    assert all(p.running for p in parts.values())
    assert len(cluster.bootstrap_servers.split(",")) == 3

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([SCREENING_SUBMITTED])
        assert {len(p["replicas"]) for p in described["partitions"]} == {3}
        [configs] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, SCREENING_SUBMITTED)]
        )
        entries = {c[0]: c[1] for c in configs.resources[0][4]}
        assert entries["min.insync.replicas"] == "2"
    finally:
        await admin.close()

    os.kill(parts["kafka-2"].pid, signal.SIGKILL)  # type: ignore[arg-type]
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=15000,
    )
    await producer.start()
    try:
        for i in range(20):  # every partition, leaders on the dead node included
            await producer.send_and_wait(
                SCREENING_SUBMITTED, f"after-{i}".encode(), key=uuid.uuid4().bytes
            )
    finally:
        await producer.stop()
    assert not {p.name: p for p in cluster.status()}["kafka-2"].running
    cluster.start()  # the supervisor's move: starts the dead node, adopts the rest
    assert all(p.running for p in cluster.status())
