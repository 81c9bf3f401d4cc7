"""Whether a consumer that fetches nothing is stuck while its partitions hold unread messages."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

log = logging.getLogger(__name__)


class ConsumerStalled(Exception):
    """The consumer fetches nothing while its partitions hold messages it has not read."""


class _Progress:
    """Notices a consumer that stopped fetching with messages waiting for it.

    After a broker outage make chaos saw a consumer stay in its group, heartbeat and poll, and
    fetch nothing ever again while its topics filled (other clients have had the same failure:
    kafka-python#1419, faust#99). Nothing inside the client reports it, so after `window`
    seconds without a message the consumer compares, for each partition it owns, its position
    with the log's end (one ListOffsets request); behind on any, it is stuck, and the consumer
    is made anew (it rejoins and resumes from the committed offsets). While the broker cannot
    answer, nothing is concluded: the client is reconnecting.

    The check runs beside the poll loop (`watch`), never in it: a message that arrives while
    the broker is asked is not kept waiting for the answer (in the loop, it would wait up to a
    second per page).
    """

    def __init__(self, consumer: AIOKafkaConsumer, window: float) -> None:
        self._consumer = consumer
        self._window = window
        self._moved = self._checked = asyncio.get_running_loop().time()
        #: Why the consumer is stuck, once the watch found it so; the poll loop raises then.
        self.stuck: str | None = None

    def moved(self) -> None:
        self._moved = asyncio.get_running_loop().time()

    async def watch(self, every: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        while self.stuck is None:
            await asyncio.sleep(every)
            asked = loop.time()
            if asked - max(self._moved, self._checked) < self._window:
                continue
            self._checked = asked  # one check per quiet window
            try:  # no position after a quiet window: it is not fetching
                behind = await unfetched(self._consumer, unknown_position=0)
            except Exception as exc:  # the client is being stopped, or a rebalance: next time
                log.info("consumer progress not checked (%s)", type(exc).__name__)
                continue
            unread = {tp: n for tp, n in behind.items() if n > 0}
            if unread and self._moved < asked:  # nothing fetched while the broker answered
                self.stuck = (
                    f"nothing fetched for {self._window:.0f} s while {len(unread)} partition(s)"
                    f" hold {sum(unread.values())} unread messages"
                )


async def unfetched(
    consumer: AIOKafkaConsumer, *, unknown_position: int | None = None, timeout: float = 5.0
) -> dict[TopicPartition, int]:
    """Per partition `consumer` owns, the messages it has not fetched yet: the log's end, asked
    of the broker (so a consumer that stopped fetching shows it), minus its position. A
    partition without a position yet counts from `unknown_position`, or is left out (None).
    {} when the broker cannot answer within `timeout`."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    try:
        ends = await asyncio.wait_for(consumer.end_offsets(assigned), timeout)
    except (KafkaError, TimeoutError):
        return {}
    out = {}
    for tp in assigned:
        try:
            position = await asyncio.wait_for(consumer.position(tp), min(1.0, timeout))
        except IllegalStateError:  # no longer ours (a rebalance)
            continue
        except TimeoutError:
            if unknown_position is None:
                continue
            position = unknown_position
        out[tp] = max(0, ends.get(tp, position) - position)
    return out
