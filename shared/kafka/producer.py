"""The idempotent producer every service publishes its outbox through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)


def create_producer(bootstrap_servers: str, *, client_id: str, **security: Any) -> AIOKafkaProducer:
    """Idempotent, acks=all; a linger of 1 ms batches a burst without adding latency.

    `security`: the client's TLS / SASL settings (`ServiceSettings.kafka_options`). A service
    holds it in a `Producer`, which replaces it should its sender die."""
    return AIOKafkaProducer(
        **security,
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=1,
        request_timeout_ms=15000,
    )


class Producer:
    """The service's one producer, made anew if its sender dies.

    aiokafka's producer sends from one background task; should that task ever end (an error it
    does not handle), the producer never sends again: every message waits in its buffer and the
    service would look healthy while publishing nothing. `healthy` says so (readiness uses it)
    and `renew` makes a new producer; every send checks first. Idempotence is per producer, so
    a renewed one may duplicate a message the old one had in flight: consumers drop it by id.
    """

    def __init__(self, factory: Callable[[], AIOKafkaProducer]) -> None:
        self._factory = factory
        self._current = factory()
        self._renewing = asyncio.Lock()
        self.renewed = 0

    @property
    def current(self) -> AIOKafkaProducer:
        return self._current

    @property
    def client(self) -> Any:
        return self._current.client

    @property
    def healthy(self) -> bool:
        sender = getattr(self._current, "_sender", None)  # aiokafka's, no public accessor
        task = getattr(sender, "sender_task", None)
        return task is not None and not task.done()

    async def start(self) -> None:
        await self._current.start()

    async def stop(self) -> None:
        await self._current.stop()

    async def renew(self) -> None:
        """Replace the producer if its sender died (at most one renewal at a time)."""
        async with self._renewing:
            if self.healthy:
                return
            dead = self._current
            log.error("the Kafka producer's sender stopped; making a new producer")
            fresh = self._factory()
            await fresh.start()
            self._current = fresh
            self.renewed += 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dead.stop(), 5)

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future:
        if not self.healthy:
            await self.renew()
        return await self._current.send(topic, **kwargs)

    async def send_and_wait(self, topic: str, **kwargs: Any) -> Any:
        return await (await self.send(topic, **kwargs))
