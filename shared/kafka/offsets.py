"""Offsets of applied messages, committed to Kafka in the background and at a rebalance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from shared.kafka.timing import COMMIT_INTERVAL, HANDOVER_SECONDS, REVOKE_COMMIT_SECONDS

if TYPE_CHECKING:
    from shared.kafka.consumer import EventConsumer

log = logging.getLogger(__name__)


class _Offsets:
    """Offsets of messages already applied (committed in PostgreSQL), not yet committed to Kafka.

    Committing after every poll costs a broker round trip per poll, the most expensive request
    the consumers send (measured: a tenth of the risk service's CPU at 150 screenings/s).
    Committing every COMMIT_INTERVAL instead is safe: a message whose offset was not committed
    yet is redelivered after a crash or a rebalance, and dropped by its event id.
    """

    def __init__(self, consumer: AIOKafkaConsumer, group_id: str) -> None:
        self._consumer = consumer
        self._group_id = group_id
        self._pending: dict[TopicPartition, int] = {}
        self._last = asyncio.get_running_loop().time()

    def applied(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        self._pending.update({tp: records[-1].offset + 1 for tp, records in batches.items()})

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def due(self) -> bool:
        return asyncio.get_running_loop().time() - self._last >= COMMIT_INTERVAL

    async def commit(
        self,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        timeout: float = HANDOVER_SECONDS,
    ) -> None:
        """Commit what was applied (on `partitions` only, when given), giving up after
        `timeout` (aiokafka retries a commit for as long as the broker is away; the messages
        are then applied again by their next reader, and dropped by event id)."""
        chosen = set(self._pending if partitions is None else partitions)
        offsets = {tp: offset for tp, offset in self._pending.items() if tp in chosen}
        for tp in offsets:
            del self._pending[tp]
        self._last = asyncio.get_running_loop().time()
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), timeout)
        except TimeoutError:
            log.warning("consumer %s: offsets not committed in time", self._group_id)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced meanwhile: the new owner gets these messages again and
            # drops them by event id.
            log.info("consumer %s: offsets not committed (%s)", self._group_id, exc)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer
        self.offsets: _Offsets | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Hand over what was applied, so the next owner does not get it again. (A rebalance
        does not make the service unready: its HTTP side still works.)"""
        if self.offsets is not None:
            await self.offsets.commit(revoked, timeout=REVOKE_COMMIT_SECONDS)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka rebalances eagerly: `assigned` is the whole new assignment.
        self._consumer.joined.set()
        self._consumer.owned(len(assigned))
