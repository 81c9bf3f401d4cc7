"""The consumer loop every service runs (see the package's docstring for what it keeps)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared import tracing
from shared.db import (
    SessionFactory,
    autocommit,
    driver,
    is_transient,
    qualified,
    transaction,
)
from shared.events import Envelope
from shared.kafka.offsets import _Offsets, _Rebalance
from shared.kafka.producer import Producer
from shared.kafka.progress import ConsumerStalled, _Progress, unfetched
from shared.kafka.records import Batch, Handler, Headers, Idempotent, PoisonMessage, Statement
from shared.kafka.timing import (
    COMMIT_INTERVAL,
    CONSUMER_SESSION_TIMEOUT_MS,
    FETCH_WAIT_MS,
    FETCHER_TIMEOUT_MS,
    GATHER_MS,
    HANDOVER_SECONDS,
    IDLE_POLL_SECONDS,
    REJOIN_SECONDS,
    STALL_SECONDS,
)
from shared.logging import CORRELATION, safe_correlation
from shared.topics import dlq

log = logging.getLogger(__name__)

#: The most messages one poll applies (in one transaction).
POLL_RECORDS = 500


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0  # transactions that applied several messages at once
    stalls: int = 0  # times the consumer was found stuck and made anew


class EventConsumer:
    """Consumes `handlers`' topics in one group, one transaction per poll; `gathered` topics
    a pause at a time (`_Gathering`)."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        handlers: Mapping[str, Handler | Batch | Idempotent],
        sessions: SessionFactory,
        processed_events: Table,
        producer: Producer | AIOKafkaProducer,
        max_attempts: int = 3,
        security: Mapping[str, Any] | None = None,
        stall_seconds: float = STALL_SECONDS,
        rejoin_seconds: float = REJOIN_SECONDS,
        gathered: Collection[str] = (),
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._security = dict(security or {})
        self._group_id = group_id
        self._handlers = dict(handlers)
        self._sessions = sessions
        self._claim_sql = (
            f"INSERT INTO {qualified(processed_events)} (event_id, topic) "
            "SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self._producer = producer
        self._max_attempts = max_attempts
        self._stall_seconds = stall_seconds
        self._rejoin_seconds = rejoin_seconds
        unknown = set(gathered) - set(handlers)
        if unknown:
            raise ValueError(f"gathered topics without a handler: {sorted(unknown)}")
        self._gathered = _Gathering(frozenset(gathered))
        #: The Kafka consumer of the moment (made anew after a failure or a stall).
        self._kafka: AIOKafkaConsumer | None = None
        self.stats = ConsumerStats()
        #: Set once the consumer has joined its group (with or without partitions): until then a
        #: message waits for the rebalance, so readiness waits for it too.
        self.joined = asyncio.Event()
        #: Since when the consumer has had no partition (None while it has some).
        self._partitionless_since: float | None = time.monotonic()
        self._closing = asyncio.Event()
        #: The deadline of the poll under way (None between polls), which a stop ends at once.
        self._polling: asyncio.Timeout | None = None

    def owned(self, partitions: int) -> None:
        if partitions:
            self._partitionless_since = None
        elif self._partitionless_since is None:
            self._partitionless_since = time.monotonic()

    @property
    def partitionless_for(self) -> float:
        """Seconds the consumer has been without a partition (0 while it has some)."""
        since = self._partitionless_since
        return 0.0 if since is None else time.monotonic() - since

    def close(self) -> None:
        """Stop after the batch being applied: its offsets are committed and the consumer
        leaves its group, so its partitions move to another replica at once instead of after
        the session timeout (a stop, not a crash). `run` then returns. A poll under way ends
        now, not when its wait runs out."""
        self._closing.set()
        if self._polling is not None and not self._polling.expired():
            self._polling.reschedule(asyncio.get_running_loop().time())

    async def run(self) -> None:
        """Consume until cancelled. A Kafka failure restarts the consumer, which rejoins its
        group and resumes from the last committed offsets (effects are deduplicated by event id),
        so the service never silently stops consuming."""
        while not self._closing.is_set():
            try:
                await self._consume()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Not a cancellation of this task: one escaping the client's internals. Taken
                # for a cancellation it would end the loop in silence (no crash to log).
                log.error("consumer %s: the Kafka client was cancelled; restarting", self._group_id)
                await asyncio.sleep(1)
            except ConsumerStalled as exc:
                self.stats.stalls += 1
                log.error("consumer %s is stuck (%s); making it anew", self._group_id, exc)
            except Exception:
                log.exception("consumer %s failed; restarting in 1 s", self._group_id)
                await asyncio.sleep(1)

    async def lag(self) -> dict[tuple[str, int], int]:
        """`unfetched` of the consumer of the moment, by (topic, partition) (metrics)."""
        if self._kafka is None:
            return {}
        behind = await unfetched(self._kafka, timeout=1.5)
        return {(tp.topic, tp.partition): n for tp, n in behind.items()}

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            **self._security,
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            client_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            consumer_timeout_ms=FETCHER_TIMEOUT_MS,
            # A replica that dies (not a stop: that leaves the group at once) holds its
            # partitions until its session times out; the broker's least (6 s), not aiokafka's
            # 10 s, so another replica takes its messages over sooner (make chaos: pages of a
            # killed risk or notify replica's partitions waited ~12 s).
            session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=CONSUMER_SESSION_TIMEOUT_MS // 3,
        )
        listener = _Rebalance(self)
        consumer.subscribe(list(self._handlers), listener=listener)
        await consumer.start()
        self._kafka = consumer
        offsets = listener.offsets = _Offsets(consumer, self._group_id)
        progress = _Progress(consumer, self._stall_seconds)
        watch = (
            asyncio.create_task(progress.watch(), name=f"{self._group_id}-consumer-watch")
            if self._stall_seconds > 0
            else None
        )
        try:
            while not self._closing.is_set():
                wait = self._gathered.wait(
                    COMMIT_INTERVAL if offsets.pending else IDLE_POLL_SECONDS
                )
                batches = await self._poll(consumer, wait)
                self._gathered.pace(
                    consumer, batches, behind=sum(map(len, batches.values())) >= POLL_RECORDS
                )
                if batches:
                    progress.moved()
                    await self._process_batch([r for rs in batches.values() for r in rs])
                    offsets.applied(batches)
                if offsets.pending and (offsets.due() or not batches):
                    await offsets.commit()
                if progress.stuck is not None:
                    raise ConsumerStalled(progress.stuck)
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            with contextlib.suppress(Exception):
                await offsets.commit()
            self._kafka = None  # nothing asks the old client anything any more (metrics' lag)
            await self._stop(consumer)

    async def _poll(
        self, consumer: AIOKafkaConsumer, wait: float
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """What `consumer` fetched within `wait` seconds.

        While the consumer (re)joins its group, aiokafka's getmany waits for the new assignment,
        however long it takes. After a broker was killed under load, make chaos saw a consumer
        log "Heartbeat failed: local member_id was not recognized; resetting and re-joining
        group" and never join again: getmany never returned, with no error, for minutes, while
        the screenings of its partitions went unassessed. A rebalance takes seconds (members
        that do not rejoin are dropped after the session timeout), so a poll that has not
        returned after `rejoin_seconds` means a stuck client, and it is made anew.

        A stop (`close`) ends the poll at once through the same deadline: the client is stopped
        next, so nothing its interrupted fetch leaves behind matters, and nothing fetched is
        lost (a poll is interrupted only while it waits, before it takes any record)."""
        try:
            async with asyncio.timeout(wait + self._rejoin_seconds) as deadline:
                self._polling = deadline
                return await consumer.getmany(timeout_ms=int(wait * 1000), max_records=POLL_RECORDS)
        except TimeoutError:
            if self._closing.is_set():
                return {}
            raise ConsumerStalled(
                f"joining its group for over {self._rejoin_seconds:.0f} s"
            ) from None
        finally:
            self._polling = None

    async def _stop(self, consumer: AIOKafkaConsumer) -> None:
        """Stop `consumer` and leave its group.

        A client whose group coordination hangs (the stuck rejoin of `_poll`) does not stop:
        `stop()` waits for its coordination task (and one that failed raises its error first).
        Cancelling that wait cancels the task, but the client's heartbeat goes on, so it would
        stay a member of the group and hold the group's next rebalance for minutes (the new
        consumer could not join). The rest of aiokafka's stop is then done by hand, by the
        private names of aiokafka 0.14 (pinned below 0.15; tests/shared/test_consumer_stall.py
        fails if they move): the heartbeat and the offsets' refresh stop, the group is left
        (when the member still has a generation; one the coordinator forgot has nothing to
        leave) and the connections close."""
        try:
            await asyncio.wait_for(consumer.stop(), HANDOVER_SECONDS)
            return
        except Exception as exc:  # TimeoutError, or the coordination task's own failure
            log.warning(
                "consumer %s: the client did not stop (%r); stopping it by hand",
                self._group_id,
                exc,
            )
        coordinator = consumer._coordinator
        for step in (
            coordinator._stop_heartbeat_task,
            coordinator._stop_commit_offsets_refresh_task,
            coordinator._maybe_leave_group,
            consumer._fetcher.close,
            consumer._client.close,
        ):
            try:
                await asyncio.wait_for(step(), HANDOVER_SECONDS)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # A cancellation out of the client's own tasks: on to the next step.
                log.warning("consumer %s: %s was cancelled", self._group_id, step.__name__)
            except Exception as exc:
                log.warning("consumer %s: %s failed (%r)", self._group_id, step.__name__, exc)

    async def _process_batch(self, records: list[ConsumerRecord]) -> None:
        """Apply a poll's messages in one transaction: one commit (one WAL flush, ~3 ms on the
        2-core machine) per poll instead of one per message, which is what lets a consumer keep
        up with hundreds of messages a second. Each message still records its event id in that
        transaction, and partition order is kept. If anything in the batch fails, it all rolls
        back and the messages go one by one through `_process`, with its retries and
        dead-lettering, exactly as if they had never been batched."""
        if len(records) == 1:
            await self._process(records[0])
            return
        try:
            async with transaction(self._sessions) as session:
                envelopes = [(record.topic, self._decode(record)) for record in records]
                fresh = await self._claim(session, envelopes)
                outcomes = []
                batched: dict[str, list[tuple[Envelope, Headers]]] = {}
                for record, (topic, envelope) in zip(records, envelopes, strict=True):
                    first_time = envelope.event_id in fresh
                    fresh.discard(envelope.event_id)  # a second copy in the batch is a duplicate
                    if first_time and isinstance(self._handlers[topic], Batch):
                        batched.setdefault(topic, []).append((envelope, record.headers))
                    elif first_time:
                        await self._handle(session, topic, envelope, record.headers)
                    outcomes.append(first_time)
                for topic, group in batched.items():
                    await self._handle_batch(session, topic, group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info(
                "batch of %d failed (%s); processing its messages one by one",
                len(records),
                type(exc).__name__,
            )
            for record in records:
                await self._process(record)
            return
        self.stats.batches += 1
        self.stats.processed += sum(outcomes)
        self.stats.duplicates += len(outcomes) - sum(outcomes)

    async def _process(self, record: ConsumerRecord) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                envelope = self._decode(record)
                await self._apply(record.topic, envelope, record.headers)
                return
            except PoisonMessage as exc:
                await self._dead_letter(record, str(exc))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    log.warning("transient failure on %s; retrying", record.topic, exc_info=True)
                    await asyncio.sleep(min(30.0, 0.2 * 2 ** min(attempt, 8)))
                    continue
                if attempt >= self._max_attempts:
                    log.exception("handler failed %d times on %s", attempt, record.topic)
                    await self._dead_letter(record, f"handler failed: {type(exc).__name__}")
                    return
                await asyncio.sleep(0.1 * attempt)

    @staticmethod
    def _decode(record: ConsumerRecord) -> Envelope:
        try:
            return Envelope.decode(record.value)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) or e["type"] for e in exc.errors())
            raise PoisonMessage(f"not an event envelope ({fields})") from exc

    async def _apply(self, topic: str, envelope: Envelope, headers: Headers = ()) -> None:
        statement = self._alone(topic, envelope)
        if statement is not None:
            # No claim and no transaction: the statement records the event id and commits.
            async with autocommit(self._sessions) as session:
                await self._handle(session, topic, envelope, headers, call=statement)
            # A second copy counts here too: only the statement knows it changed nothing.
            self.stats.processed += 1
            return
        async with transaction(self._sessions) as session:
            first_time = await self._apply_in(session, topic, envelope, headers)
        if first_time:
            self.stats.processed += 1
        else:
            self.stats.duplicates += 1

    def _alone(self, topic: str, envelope: Envelope) -> Statement | None:
        """The one statement that applies `envelope`, alone in its poll, by itself, if its
        handler has one for it."""
        handler = self._handlers[topic]
        if not isinstance(handler, Idempotent | Batch) or handler.alone is None:
            return None
        try:
            return handler.alone(envelope)
        except ValidationError:
            return None  # the handler says what is wrong with it, in the usual way

    async def _apply_in(
        self, session: AsyncSession, topic: str, envelope: Envelope, headers: Headers = ()
    ) -> bool:
        """Record the event id and run its handler in `session`'s transaction; False (and no
        effect) when the event was processed before."""
        if not await self._claim(session, [(topic, envelope)]):
            return False
        if isinstance(self._handlers[topic], Batch):
            await self._handle_batch(session, topic, [(envelope, headers)])
        else:
            await self._handle(session, topic, envelope, headers)
        return True

    async def _claim(
        self, session: AsyncSession, envelopes: list[tuple[str, Envelope]]
    ) -> set[uuid.UUID]:
        """Record the event ids in processed_events, all in one statement (one round trip for
        a whole batch); returns those that were not there before."""
        claims = [(e.event_id, topic) for topic, e in envelopes]
        rows = await (await driver(session)).fetch(self._claim_sql, *zip(*claims, strict=True))
        return {row[0] for row in rows}

    async def _handle(
        self,
        session: AsyncSession,
        topic: str,
        envelope: Envelope,
        headers: Headers = (),
        *,
        call: Statement | None = None,
    ) -> None:
        """`topic`'s handler (a `Batch`'s `each`) on `envelope`, or `call` in its stead."""
        # The event's correlation id on every line its handler logs; its trace continued.
        token = CORRELATION.set(safe_correlation(envelope.correlation_id))
        try:
            with tracing.span(
                f"consume {topic}",
                parent=tracing.from_headers(headers),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "kafka", "messaging.destination": topic},
            ):
                if call is not None:
                    await call(session)
                    return
                handler = self._handlers[topic]
                if isinstance(handler, Batch):
                    assert handler.each is not None
                    handler = handler.each
                elif isinstance(handler, Idempotent):
                    handler = handler.handle
                await handler(session, envelope)
        except ValidationError as exc:
            raise _invalid(envelope, exc) from exc
        finally:
            CORRELATION.reset(token)

    async def _handle_batch(
        self, session: AsyncSession, topic: str, group: list[tuple[Envelope, Headers]]
    ) -> None:
        """`group`'s events, all of `topic`, to its `Batch` handler (one span for them all),
        then each to the handler's `each`, if it has one, as a plain handler."""
        handler = self._handlers[topic]
        assert isinstance(handler, Batch)
        envelopes = [envelope for envelope, _ in group]
        with tracing.span(
            f"consume {topic}",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination": topic,
                "messaging.batch.message_count": len(group),
            },
        ):
            try:
                await handler.apply(session, envelopes)
            except ValidationError as exc:
                # Which one: the batch is rolled back and its events applied one by one.
                raise _invalid(envelopes[0], exc) from exc
        if handler.each is not None:
            for envelope, headers in group:
                await self._handle(session, topic, envelope, headers)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.error(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.group", self._group_id.encode()),
        ]
        await self._producer.send_and_wait(
            dlq(record.topic), value=record.value, key=record.key, headers=headers
        )
        self.stats.dead_lettered += 1


class _Gathering:
    """Paces a consumer's `topics` that no page waits on (all of intake's; notify's submissions
    for the watchdog, beside the assessments it fetches at once): once they have given
    messages, their partitions are paused for GATHER_MS, so what comes meanwhile arrives in one
    later fetch and is applied in one poll, one transaction and one relay pass, and the broker
    answers no fetch for each of them. The first message after a quiet spell comes at once. A
    partition assigned anew is paused at the next poll. Beside prompt topics, a paused one is
    fetched again once the fetch in flight returns (at most FETCH_WAIT_MS when idle).

    A consumer behind (its poll was full, POLL_RECORDS) reads on without a pause: there is
    nothing to gather, a pause would only cap how fast it catches up, and aiokafka drops what it
    had fetched for a partition that is paused (to fetch it again after the pause)."""

    def __init__(self, topics: frozenset[str]) -> None:
        self.topics = topics
        #: Until when the topics are paused (None: they are fetched as they come).
        self._until: float | None = None

    def wait(self, wait: float) -> float:
        """`wait`, cut short to end the pause on time."""
        if self._until is None:
            return wait
        return max(0.0, min(wait, self._until - time.monotonic()))

    def pace(
        self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Any], *, behind: bool
    ) -> None:
        if not self.topics:
            return
        mine = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        if self._until is not None and time.monotonic() >= self._until:
            self._until = None
            consumer.resume(*mine)
        elif self._until is not None:
            consumer.pause(*mine)  # also those assigned since the pause began
        elif not behind and any(tp.topic in self.topics for tp in batches):
            self._until = time.monotonic() + GATHER_MS / 1000
            consumer.pause(*mine)


def _invalid(envelope: Envelope, exc: ValidationError) -> PoisonMessage:
    """The dead-letter reason of an event whose data its handler refused (fields, no values)."""
    fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
    return PoisonMessage(f"{envelope.type}: invalid data ({fields})")
