"""The embedded local stack (deploy/localstack/) that `make run` and every integration test
stand on: it must serve Kafka and PostgreSQL, create the topics, leave no process behind when
stopped, and keep its data across a restart (a second `make run` keeps the data).

Its own stack on free ports in its own folder, so neither a running `make run` nor the session
stack of conftest.py is disturbed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from deploy.localstack import PROJECT_ROOT, LocalStack, free_port
from shared.db import asyncpg_dsn
from shared.topics import SCREENING_SUBMITTED, all_topics

pytestmark = pytest.mark.integration

PARTITIONS = 2  # not the default 6, to show the setting reaches the broker


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("localstack")


@pytest.fixture(scope="module")
def stack(data_dir: Path) -> Iterator[LocalStack]:
    local = LocalStack(
        data_dir, kafka_port=free_port(), controller_port=free_port(), partitions=PARTITIONS
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()
        assert _processes_of(data_dir) == []


def _processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every live java or postgres process whose command line points into `data_dir`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or ())
        if str(data_dir) in cmdline and ("java" in cmdline or "postgres" in cmdline):
            found.append(proc)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie: the daemonised postmaster is reparented to PID 1, which may reap
    it a moment after it exited."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stack_pids(stack: LocalStack) -> list[int]:
    """The broker, the postmaster and all its backends."""
    pids = []
    for part in stack.status():
        assert part.running and part.pid is not None, part
        pids.append(part.pid)
        pids.extend(child.pid for child in psutil.Process(part.pid).children(recursive=True))
    return pids


async def _produce(bootstrap: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(SCREENING_SUBMITTED, value, key=key)
    finally:
        await producer.stop()


async def _read_value(bootstrap: str, key: bytes) -> bytes:
    """The value stored under `key`, read from the beginning by a fresh consumer group."""
    consumer = AIOKafkaConsumer(
        SCREENING_SUBMITTED,
        bootstrap_servers=bootstrap,
        group_id=f"test-localstack-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(15):
            async for record in consumer:
                if record.key == key:
                    assert record.value is not None
                    return record.value
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")


async def _partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(all_topics())
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def test_serves_kafka_and_postgres_with_all_topics(stack: LocalStack) -> None:
    assert stack.bootstrap_servers.startswith("127.0.0.1:")
    assert stack.database_url.startswith("postgresql+asyncpg://")
    assert stack.database_url.endswith("/triage")

    assert await _partition_counts(stack.bootstrap_servers) == dict.fromkeys(
        all_topics(), PARTITIONS
    )

    key = uuid.uuid4().bytes
    await _produce(stack.bootstrap_servers, key, b'{"hello": "kafka"}')
    assert await _read_value(stack.bootstrap_servers, key) == b'{"hello": "kafka"}'

    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert int(await conn.fetchval("SHOW max_connections")) >= 200
    finally:
        await conn.close()


async def test_stop_leaves_nothing_and_restart_keeps_data(
    stack: LocalStack, data_dir: Path
) -> None:
    key, value = uuid.uuid4().bytes, uuid.uuid4().hex.encode()
    await _produce(stack.bootstrap_servers, key, value)
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
        await conn.execute("INSERT INTO kept VALUES ($1)", value.decode())
    finally:
        await conn.close()
    cluster_id = (data_dir / "kafka" / "cluster.id").read_text()
    pids = _stack_pids(stack)

    stack.stop()
    assert [pid for pid in pids if _running(pid)] == []
    assert _processes_of(data_dir) == []
    assert not any(part.running for part in stack.status())

    stack.start()  # the same data dir and ports: what a second `make run` does
    assert (data_dir / "kafka" / "cluster.id").read_text() == cluster_id
    assert await _read_value(stack.bootstrap_servers, key) == value
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        assert value.decode() in [r["value"] for r in await conn.fetch("SELECT value FROM kept")]
    finally:
        await conn.close()
    counts = await _partition_counts(stack.bootstrap_servers)
    assert counts == dict.fromkeys(all_topics(), PARTITIONS)


def test_start_is_idempotent(stack: LocalStack) -> None:
    """A second start (another `LocalStack` on the same folder, as `localstack up` followed by
    `make run`) adopts the running processes instead of starting new ones."""
    before = {part.name: part.pid for part in stack.status()}
    again = LocalStack(
        stack.data_dir,
        kafka_port=int(stack.bootstrap_servers.rsplit(":", 1)[1]),
        partitions=PARTITIONS,
    )
    again.start()
    assert {part.name: part.pid for part in again.status()} == before
    assert again.database_url == stack.database_url


def test_compose_creates_every_topic() -> None:
    """docker-compose.yml lists the topics by hand (the Kafka image has no Python): it must
    follow shared/topics.py."""
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    listed = set(re.findall(r"(?<![\w.-])triage\.[\w.-]+(?![\w.-])", compose))
    assert listed == set(all_topics())
