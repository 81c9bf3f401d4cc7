"""A consumer that stops fetching while messages wait for it is made anew and reads them; one
with nothing to read turns only when the broker answers its fetch, polls seldom, and stops at
once all the same."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from deploy.localstack import LocalStack
from shared.db import create_engine, create_session_factory
from shared.events import Envelope
from shared.kafka import EventConsumer, create_producer, processed_events_table
from shared.kafka.timing import FETCH_WAIT_MS, IDLE_POLL_SECONDS
from tests.support.kafka import stop_consumer


def _consumer(
    stack: LocalStack,
    engine: AsyncEngine,
    producer: AIOKafkaProducer,
    topic: str,
    *,
    seen: list[int],
    stall_seconds: float = 10.0,
    rejoin_seconds: float = 60.0,
) -> EventConsumer:
    """A consumer of `topic` in a group of the test's own, noting each event's `n` in `seen`."""

    async def handler(session: AsyncSession, envelope: Envelope) -> None:
        seen.append(envelope.data["n"])

    return EventConsumer(
        bootstrap_servers=stack.bootstrap_servers,
        group_id=f"group-{topic}",
        handlers={topic: handler},
        sessions=create_session_factory(engine),
        processed_events=processed_events_table(MetaData(schema="risk")),
        producer=producer,
        stall_seconds=stall_seconds,
        rejoin_seconds=rejoin_seconds,
    )


@dataclass
class _Run:
    consumer: EventConsumer
    seen: list[int]
    send: Callable[[int], Awaitable[None]]
    task: asyncio.Task[None]

    async def until_seen(self, expected: list[int], timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while self.seen != expected:
            assert time.monotonic() < deadline, why
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _running(
    stack: LocalStack, database_url: str, topic: str, **settings: float
) -> AsyncIterator[_Run]:
    """A consumer of `topic` running, joined and past its first message (`n` 0)."""
    seen: list[int] = []
    engine = create_engine(database_url, pool_size=2)
    producer = create_producer(stack.bootstrap_servers, client_id="stall-test")
    await producer.start()
    consumer = _consumer(stack, engine, producer, topic, seen=seen, **settings)
    task = asyncio.create_task(consumer.run())
    raw = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await raw.start()

    async def send(n: int) -> None:
        envelope = Envelope(type="t", correlation_id="stall-test", data={"n": n})
        await raw.send_and_wait(topic, envelope.encode(), key=b"k")

    try:
        await asyncio.wait_for(consumer.joined.wait(), 30)
        run = _Run(consumer, seen, send, task)
        await send(0)
        await run.until_seen([0], 15, "the first message was not read")
        yield run
    finally:
        await stop_consumer(task, raw.stop, producer.stop, engine.dispose)


async def test_a_consumer_stuck_with_messages_waiting_is_made_anew(
    stack: LocalStack, database_url: str, topic: str
) -> None:
    async with _running(stack, database_url, topic, stall_seconds=2) as run:
        # The client goes on polling but fetches nothing (what a broker outage once left it
        # doing); a paused partition is exactly that.
        stuck = run.consumer._kafka
        assert stuck is not None
        stuck.pause(*stuck.assignment())
        await run.send(1)
        await asyncio.sleep(1)
        assert run.seen == [0], "a paused partition fetched"

        await run.until_seen([0, 1], 20, "the stuck consumer was never made anew")
        assert run.consumer.stats.stalls == 1
        assert run.consumer._kafka is not stuck

        # Caught up and quiet is not stuck: no more renewals while nothing arrives.
        await asyncio.sleep(5)
        assert run.consumer.stats.stalls == 1


async def test_an_idle_consumer_turns_only_when_its_fetch_is_answered(
    stack: LocalStack, database_url: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's background fetcher wakes when the broker answers a fetch (every
    FETCH_WAIT_MS with nothing to read), not on a timer of its own as well: aiokafka's default
    turned it five times a second more, in every consumer of every idle replica."""
    turns = 0
    plan = Fetcher._get_actions_per_node  # what the fetcher does at each turn

    def counted(self: Fetcher, assignment: object) -> object:
        nonlocal turns
        turns += 1
        return plan(self, assignment)

    monkeypatch.setattr(Fetcher, "_get_actions_per_node", counted)
    async with _running(stack, database_url, topic) as run:
        await asyncio.sleep(1)  # past the first message and its commit
        turns, window = 0, 3.0
        await asyncio.sleep(window)
        answered = window / (FETCH_WAIT_MS / 1000)
        assert turns <= answered + 2, f"{turns} turns in {window:.0f} s for {answered:.0f} fetches"
        assert run.seen == [0]


async def test_an_idle_consumer_polls_seldom_and_stops_at_once(
    stack: LocalStack, database_url: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle consumer's loop turns once per IDLE_POLL_SECONDS, not twice a second; a stop
    does not wait for the poll under way to run out (the consumer leaves its group now)."""
    polls = 0
    polling = asyncio.Event()
    getmany = AIOKafkaConsumer.getmany

    async def counted(self: AIOKafkaConsumer, *args: object, **kwargs: object) -> object:
        nonlocal polls
        polls += 1
        polling.set()
        return await getmany(self, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", counted)
    async with _running(stack, database_url, topic) as run:
        await asyncio.sleep(1.5)  # past the first message and its commit
        polls, window = 0, 2 * IDLE_POLL_SECONDS
        await asyncio.sleep(window)
        assert polls <= window / IDLE_POLL_SECONDS + 1, f"{polls} polls in {window:g} s"

        polling.clear()
        await asyncio.wait_for(polling.wait(), IDLE_POLL_SECONDS + 1)
        await asyncio.sleep(0.1)  # well inside the poll's wait
        asked = time.monotonic()
        run.consumer.close()
        await asyncio.wait_for(run.task, 10)
        assert time.monotonic() - asked < IDLE_POLL_SECONDS - 0.5, "the stop waited for the poll"
        assert run.seen == [0]


async def test_a_consumer_without_partitions_says_for_how_long(
    stack: LocalStack, database_url: str, topic: str
) -> None:
    """Readiness fails for a replica whose consumer has had no partition for a while (more
    replicas than partitions, or a rebalance that left it out): it cannot do its work."""
    engine = create_engine(database_url, pool_size=2)
    producer = create_producer(stack.bootstrap_servers, client_id="idle-test")
    await producer.start()
    consumers = [_consumer(stack, engine, producer, topic, seen=[]) for _ in range(2)]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        deadline = time.monotonic() + 30
        # One partition, two members: once both joined, one owns it and the other idles.
        while not (
            all(c.joined.is_set() for c in consumers)
            and sorted(c.partitionless_for > 0 for c in consumers) == [False, True]
        ):
            assert time.monotonic() < deadline, "the group never settled"
            await asyncio.sleep(0.1)
        idle = next(c for c in consumers if c.partitionless_for > 0)
        before = idle.partitionless_for
        await asyncio.sleep(1)
        assert idle.partitionless_for >= before + 0.9
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await engine.dispose()


async def test_a_consumer_whose_rejoin_hangs_is_made_anew(
    stack: LocalStack, database_url: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a broker SIGKILL, make chaos saw a consumer begin to rejoin its group ("local
    member_id was not recognized") and never finish, polling nothing in silence. Here the
    client's rejoin hangs once, inside aiokafka; the consumer is made anew and reads on."""
    hung = asyncio.Event()
    prepare = GroupCoordinator._on_join_prepare

    async def hangs_once(self: GroupCoordinator, previous_assignment: object) -> None:
        await prepare(self, previous_assignment)  # the listener hears of the revocation
        if previous_assignment is not None and not hung.is_set():
            hung.set()
            await asyncio.Event().wait()

    monkeypatch.setattr(GroupCoordinator, "_on_join_prepare", hangs_once)
    async with _running(stack, database_url, topic, rejoin_seconds=3) as run:
        stuck = run.consumer._kafka
        assert stuck is not None
        stuck._coordinator.request_rejoin()  # what an unknown member id makes the client do
        await asyncio.wait_for(hung.wait(), 10)
        await run.send(1)
        await run.until_seen([0, 1], 30, "the consumer whose rejoin hung never read on")
        assert run.consumer.stats.stalls == 1
        assert run.consumer._kafka is not stuck
