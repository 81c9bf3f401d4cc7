from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.localstack import LocalStack
from shared.topics import dlq


@pytest.fixture
async def topic(stack: LocalStack) -> AsyncIterator[str]:
    """A topic of the test's own (one partition) and its dead-letter topic."""
    name = f"test.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(t, 1, 1) for t in (name, dlq(name))])
    yield name
    await admin.delete_topics([name, dlq(name)])
    await admin.close()
