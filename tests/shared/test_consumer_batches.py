"""The consumer applies a poll's messages in one transaction, and falls back to one by one
(retries, dead-lettering) when anything in the batch fails, without applying anything twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from deploy.localstack import LocalStack
from shared.db import create_engine, create_session_factory, driver
from shared.events import Envelope
from shared.kafka import (
    Batch,
    EventConsumer,
    Handler,
    Idempotent,
    PoisonMessage,
    Statement,
    create_producer,
    processed_events_table,
)
from shared.kafka.consumer import _Gathering
from shared.kafka.timing import GATHER_MS
from shared.topics import dlq
from tests.support.kafka import read_all, stop_consumer


def _event(n: int) -> Envelope:
    return Envelope(type="test.batch", correlation_id="batch-test", data={"n": n})


async def _until(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the consumer did not get there in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _consuming(
    stack: LocalStack,
    database_url: str,
    handlers: Mapping[str, Handler | Batch | Idempotent],
    *,
    linger_ms: int = 0,
    **options: Any,
) -> AsyncIterator[AIOKafkaProducer]:
    """A producer to send to a consumer of `handlers` that has joined its group."""
    engine = create_engine(database_url, pool_size=2)
    producer = create_producer(stack.bootstrap_servers, client_id="consumer-test")
    await producer.start()
    consumer = EventConsumer(
        bootstrap_servers=stack.bootstrap_servers,
        group_id=f"consumer-test-{uuid.uuid4().hex[:8]}",
        handlers=handlers,
        sessions=create_session_factory(engine),
        processed_events=processed_events_table(MetaData(schema="risk")),
        producer=producer,
        **options,
    )
    task = asyncio.create_task(consumer.run())
    raw = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=linger_ms)
    await raw.start()
    try:
        await asyncio.wait_for(consumer.joined.wait(), 30)
        yield raw
    finally:
        await stop_consumer(task, raw.stop, producer.stop, engine.dispose)


@pytest.mark.parametrize(
    "mode", ["per-event", "batch", "batch-then-each"], ids=["per-event", "batch-handler", "each"]
)
async def test_a_poll_is_one_transaction_and_a_failure_falls_back_to_one_by_one(
    stack: LocalStack, database_url: str, db: asyncpg.Pool, topic: str, mode: str
) -> None:
    """Also with a `Batch` handler (the audit trail's): it gets a poll's events in one call,
    and a poison event among them is dead-lettered alone; and with one that then handles each
    event alone (`each`, intake's and notify's assessments): after the batch's call, once per
    event, in order."""
    batched = mode != "per-event"
    seen: list[int] = []
    calls: list[int] = []  # events per call of the handler
    prepared: set[int] = set()  # what the batch's call did, which `each` relies on

    async def apply(session: AsyncSession, envelopes: list[Envelope]) -> None:
        calls.append(len(envelopes))
        if any(e.data["n"] < 0 for e in envelopes):
            raise PoisonMessage("negative n")
        if mode == "batch-then-each":
            prepared.update(e.data["n"] for e in envelopes)
        else:
            seen.extend(e.data["n"] for e in envelopes)

    async def each(session: AsyncSession, envelope: Envelope) -> None:
        assert envelope.data["n"] in prepared, "each ran before the batch's call"
        seen.append(envelope.data["n"])

    async def one(session: AsyncSession, envelope: Envelope) -> None:
        await apply(session, [envelope])

    handler: Handler | Batch = {
        "per-event": one,
        "batch": Batch(apply),
        "batch-then-each": Batch(apply, each=each),
    }[mode]

    engine = create_engine(database_url, pool_size=2)
    producer = create_producer(stack.bootstrap_servers, client_id="batch-test")
    await producer.start()
    group_id = f"batch-test-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        bootstrap_servers=stack.bootstrap_servers,
        group_id=group_id,
        handlers={topic: handler},
        sessions=create_session_factory(engine),
        processed_events=processed_events_table(MetaData(schema="risk")),
        producer=producer,
    )
    task = asyncio.create_task(consumer.run())
    raw = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=50)
    await raw.start()
    try:
        # Twenty events sent together arrive in few polls: applied in batches, in order.
        first = [_event(n) for n in range(20)]
        for event in first:
            await raw.send(topic, event.encode(), key=b"k")
        await raw.flush()
        await _until(lambda: consumer.stats.processed == 20)
        assert seen == list(range(20))
        assert consumer.stats.batches >= 1
        assert consumer.stats.batches < 20, "twenty polls for twenty messages: no batching"
        if batched:
            assert len(calls) < 20 and sum(calls) == 20, calls
        # Offsets are committed once the messages are applied and the flow pauses.
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
        await admin.start()
        try:

            async def committed() -> int:
                offsets = await admin.list_consumer_group_offsets(group_id)
                return offsets[TopicPartition(topic, 0)].offset if offsets else -1

            deadline = time.monotonic() + 5
            while await committed() != 20:
                assert time.monotonic() < deadline, "offsets were not committed"
                await asyncio.sleep(0.05)
        finally:
            await admin.close()

        # A poison message and a redelivery among good ones: the batch rolls back, then each
        # message is handled alone; nothing is applied twice and nothing is lost.
        seen.clear()
        batches = consumer.stats.batches
        second = [_event(20), _event(-1), first[3], _event(21)]
        for event in second:
            await raw.send(topic, event.encode(), key=b"k")
        await raw.flush()
        await _until(lambda: consumer.stats.processed == 22)
        assert consumer.stats.dead_lettered == 1
        assert consumer.stats.duplicates == 1
        assert consumer.stats.batches == batches, "the failed batch committed nothing"
        assert seen[-2:] == [20, 21], (
            "each good message applied once, in order, after the fall-back"
        )
        stored = await db.fetchval(
            "SELECT count(*) FROM risk.processed_events WHERE topic = $1", topic
        )
        assert stored == 22
        dead = await read_all(stack.bootstrap_servers, dlq(topic), timeout=2)
        assert [Envelope.decode(r.value).data["n"] for r in dead] == [-1]
    finally:
        await stop_consumer(task, raw.stop, producer.stop, engine.dispose)


@pytest.mark.parametrize("gathered", [False, True], ids=["prompt", "gathered"])
async def test_a_gathered_topic_takes_a_trickle_of_events_in_few_polls(
    stack: LocalStack, database_url: str, topic: str, gathered: bool
) -> None:
    """Ten events sent 25 ms apart after a quiet spell: a prompt topic (the way to a page)
    gives each as it comes; a gathered one (all of intake's: nobody waits on them) gives the
    first at once and the rest a pause (GATHER_MS) at a time, each poll one transaction."""
    calls: list[tuple[float, int]] = []  # when, and how many events

    async def apply(session: AsyncSession, envelopes: list[Envelope]) -> None:
        calls.append((time.monotonic(), len(envelopes)))

    async with _consuming(
        stack, database_url, {topic: Batch(apply)}, gathered={topic} if gathered else ()
    ) as raw:
        await raw.send_and_wait(topic, _event(100).encode(), key=b"k")  # the fetches are on
        await _until(lambda: len(calls) == 1)
        await asyncio.sleep(GATHER_MS / 1000 + 0.6)  # a quiet spell: the pause is over
        calls.clear()
        sent = time.monotonic()
        for n in range(10):
            await raw.send_and_wait(topic, _event(n).encode(), key=b"k")
            await asyncio.sleep(0.025)
        await _until(lambda: sum(n for _, n in calls) == 10)
        if gathered:
            assert calls[0][1] == 1, f"the first event after a quiet spell waited: {calls}"
            assert calls[0][0] - sent < GATHER_MS / 1000, "the first event waited for a pause"
            assert len(calls) <= 3, f"a poll per event or so: {calls}"
        else:
            assert len(calls) >= 5, f"a prompt topic waited to gather events: {calls}"


async def test_gathered_topics_wait_while_the_prompt_ones_beside_them_do_not(
    stack: LocalStack, database_url: str, topic: str
) -> None:
    """Notify's case: submissions for the watchdog (gathered) and assessments for pages
    (prompt) in one consumer. Sent in turns 25 ms apart, the prompt topic's events come as they
    are sent; the gathered topic's come a pause (GATHER_MS) at a time."""
    slow = f"{topic}.gathered"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(slow, 1, 1)])
    calls: dict[str, list[int]] = {topic: [], slow: []}

    def recorder(name: str) -> Batch:
        async def apply(session: AsyncSession, envelopes: list[Envelope]) -> None:
            calls[name].append(len(envelopes))

        return Batch(apply)

    try:
        async with _consuming(
            stack, database_url, {topic: recorder(topic), slow: recorder(slow)}, gathered={slow}
        ) as raw:
            for n in range(12):
                await raw.send_and_wait(slow, _event(n).encode(), key=b"k")
                await raw.send_and_wait(topic, _event(n).encode(), key=b"k")
                await asyncio.sleep(0.025)
            await _until(lambda: sum(calls[slow]) == 12 and sum(calls[topic]) == 12)
            assert len(calls[slow]) <= 4, f"gathered events came one by one: {calls[slow]}"
            assert len(calls[topic]) >= 6, f"prompt events were held back: {calls[topic]}"
    finally:
        await admin.delete_topics([slow])
        await admin.close()


async def _nothing(session: AsyncSession, envelope: Envelope) -> None:
    """A handler that does nothing."""


def test_only_a_consumed_topic_can_be_gathered() -> None:
    with pytest.raises(ValueError, match="gathered topics without a handler"):
        EventConsumer(
            bootstrap_servers="localhost:1",
            group_id="g",
            handlers={"a": _nothing},
            sessions=None,  # type: ignore[arg-type]
            processed_events=processed_events_table(MetaData(schema="risk")),
            producer=None,  # type: ignore[arg-type]
            gathered={"b"},
        )


async def test_an_idempotent_handler_alone_in_its_poll_needs_no_claim_and_no_transaction(
    stack: LocalStack, database_url: str, db: asyncpg.Pool, topic: str
) -> None:
    """Risk's case: its one statement applies a submission at most once by itself, so an
    event alone in its poll is neither claimed nor wrapped in a transaction; in a poll of
    several it runs in the poll's transaction, claimed like the rest."""
    seen: list[tuple[int, bool]] = []  # event, and whether a transaction was open

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        conn = await driver(session, begin=False)
        seen.append((envelope.data["n"], conn.is_in_transaction()))

    handlers = {topic: Idempotent(handle)}
    async with _consuming(stack, database_url, handlers, linger_ms=50) as raw:
        alone = _event(1)
        await raw.send_and_wait(topic, alone.encode(), key=b"k")
        await _until(lambda: len(seen) == 1)
        assert seen == [(1, False)], "alone, it ran in a transaction"
        claimed = "SELECT count(*) FROM risk.processed_events WHERE event_id = $1"
        assert await db.fetchval(claimed, alone.event_id) == 0

        together = [_event(n) for n in range(2, 12)]
        for event in together:
            await raw.send(topic, event.encode(), key=b"k")
        await raw.flush()
        await _until(lambda: len(seen) == 11)
        assert [n for n, _ in seen] == list(range(1, 12)), "in order, each once"
        in_batches = [n for n, open_ in seen if open_]
        assert in_batches, f"a poll for each of ten sent together: {seen}"
        for n in in_batches:
            assert await db.fetchval(claimed, together[n - 2].event_id) == 1


async def test_a_batch_handler_may_apply_an_event_alone_in_one_statement(
    stack: LocalStack, database_url: str, db: asyncpg.Pool, topic: str
) -> None:
    """Notify's case: alone in its poll, an event that `alone` can apply by itself (an
    unflagged assessment) is neither claimed nor wrapped in a transaction; one it declines (a
    flagged one) goes the usual way, claimed, through `apply` and `each` in a transaction."""
    calls: list[tuple[str, int, bool]] = []  # what ran, on which event, in a transaction or not

    async def opened(session: AsyncSession) -> bool:
        return (await driver(session, begin=False)).is_in_transaction()

    async def apply(session: AsyncSession, envelopes: list[Envelope]) -> None:
        in_transaction = await opened(session)
        calls.extend(("apply", e.data["n"], in_transaction) for e in envelopes)

    async def each(session: AsyncSession, envelope: Envelope) -> None:
        calls.append(("each", envelope.data["n"], await opened(session)))

    def alone(envelope: Envelope) -> Statement | None:
        if envelope.data["n"] % 2:
            return None  # the odd ones need more than one statement

        async def statement(session: AsyncSession) -> None:
            calls.append(("alone", envelope.data["n"], await opened(session)))

        return statement

    handlers = {topic: Batch(apply, each=each, alone=alone)}
    claimed = "SELECT count(*) FROM risk.processed_events WHERE event_id = $1"
    async with _consuming(stack, database_url, handlers) as raw:
        even, odd = _event(2), _event(3)
        await raw.send_and_wait(topic, even.encode(), key=b"k")
        await _until(lambda: len(calls) == 1)
        assert calls == [("alone", 2, False)], "applied alone, with no transaction"
        assert await db.fetchval(claimed, even.event_id) == 0, "not claimed by the consumer"

        await raw.send_and_wait(topic, odd.encode(), key=b"k")
        await _until(lambda: len(calls) == 3)
        assert calls[1:] == [("apply", 3, True), ("each", 3, True)]
        assert await db.fetchval(claimed, odd.event_id) == 1, "claimed in the transaction"


class _Assigned:
    """What `_Gathering` asks of a consumer: its partitions, and to pause or resume some."""

    def __init__(self, *partitions: TopicPartition) -> None:
        self.partitions = set(partitions)
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.partitions

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)


def test_a_consumer_behind_its_gathered_topics_reads_on_without_a_pause() -> None:
    gathered, prompt = TopicPartition("slow", 0), TopicPartition("fast", 0)
    consumer = _Assigned(gathered, prompt)
    pacing = _Gathering(frozenset({"slow"}))
    pacing.pace(consumer, {gathered: [1] * 500}, behind=True)  # type: ignore[arg-type]
    assert not consumer.paused, "a full poll: more is waiting, nothing to gather"
    pacing.pace(consumer, {prompt: [1]}, behind=False)  # type: ignore[arg-type]
    assert not consumer.paused, "only the gathered topics' messages start a pause"
    pacing.pace(consumer, {gathered: [1] * 3}, behind=False)  # type: ignore[arg-type]
    assert consumer.paused == {gathered}
    assert 0 < pacing.wait(5.0) <= GATHER_MS / 1000
    consumer.partitions.add(TopicPartition("slow", 1))  # assigned during the pause
    pacing.pace(consumer, {}, behind=False)  # type: ignore[arg-type]
    assert consumer.paused == {gathered, TopicPartition("slow", 1)}
    time.sleep(GATHER_MS / 1000)
    pacing.pace(consumer, {}, behind=False)  # type: ignore[arg-type]
    assert not consumer.paused, "the pause is over"
    assert pacing.wait(5.0) == 5.0
