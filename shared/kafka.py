"""Kafka plumbing: the idempotent producer and the consumer loop every service runs.

The consumer loop is where "nothing may be lost" is kept on the consuming side:
- offsets are committed by hand, per partition, after the transaction that applied the messages
  (every half second while messages flow, at once when they pause or partitions move);
- each message's effects and its processed-event row commit in one transaction (the one
  transaction of the messages of one poll, so one commit serves many messages), so a
  redelivered event does nothing;
- a message that can never be processed (not an envelope, fails its schema, or a handler that
  keeps failing) goes to `<topic>.dlq` with the reason in its headers, and the partition moves on;
- an outage of the database is not the message's fault: it is retried until the database is back;
- a consumer that stops fetching while its partitions hold unread messages is made anew
  (`_Progress`): the client's own recovery is not trusted with the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared import tracing
from shared.db import SessionFactory, driver, is_transient, qualified, transaction
from shared.events import Envelope
from shared.logging import CORRELATION, safe_correlation
from shared.topics import dlq

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


@dataclass(frozen=True)
class Batch:
    """A topic's handler that applies a poll's events of that topic at once, in their order,
    in the poll's transaction (a statement for many, not one each): the audit trail appends a
    poll's entries under one lock of its head. A single event comes as a list of one."""

    apply: Callable[[AsyncSession, list[Envelope]], Awaitable[None]]


#: A Kafka message's headers.
Headers = Sequence[tuple[str, bytes]]

#: Seconds between offset commits while messages flow (see `_Offsets`).
COMMIT_INTERVAL = 0.5
#: How long a dead consumer holds its partitions (the broker's group.min.session.timeout.ms).
CONSUMER_SESSION_TIMEOUT_MS = 6000
#: A consumer that fetched nothing this long checks that it is not stuck (see `_Progress`); 0:
#: no check. Off by default: with it, the first page after a quiet spell came one to two seconds
#: later (contract vignettes: page p50 1.0-2.6 s, 0.18-0.34 s without), whether the check ran in
#: the poll loop or beside it, and even when a client of its own asked for the log's end; why is
#: not found yet (docs/operations.md, "Failure").
STALL_SECONDS = 0.0
#: A consumer still joining its group after this long is made anew (see `EventConsumer._poll`).
REJOIN_SECONDS = 60.0
#: How long an offset commit, or the stop of a consumer, may take.
HANDOVER_SECONDS = 10.0
#: How long the commit of revoked partitions may hold up a rebalance: less than the group's
#: rebalance timeout (the session timeout), or this member would be left out of the new round.
REVOKE_COMMIT_SECONDS = 4.0


class PoisonMessage(Exception):
    """A message that no retry will make processable; it goes to the dead-letter topic.

    The message must name the problem without echoing the payload.
    """


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("topic", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


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
    the broker is asked is not kept waiting for the answer (it was, once: a second per page).
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


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0  # transactions that applied several messages at once
    stalls: int = 0  # times the consumer was found stuck and made anew


class EventConsumer:
    """Consumes `handlers`' topics in one group, one transaction per message."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        handlers: Mapping[str, Handler | Batch],
        sessions: SessionFactory,
        processed_events: Table,
        producer: Producer | AIOKafkaProducer,
        max_attempts: int = 3,
        security: Mapping[str, Any] | None = None,
        stall_seconds: float = STALL_SECONDS,
        rejoin_seconds: float = REJOIN_SECONDS,
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
        #: The Kafka consumer of the moment (made anew after a failure or a stall).
        self._kafka: AIOKafkaConsumer | None = None
        self.stats = ConsumerStats()
        #: Set once the consumer has joined its group (with or without partitions): until then a
        #: message waits for the rebalance, so readiness waits for it too.
        self.joined = asyncio.Event()
        #: Since when the consumer has had no partition (None while it has some).
        self._partitionless_since: float | None = time.monotonic()
        self._closing = asyncio.Event()

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
        the session timeout (a stop, not a crash). `run` then returns."""
        self._closing.set()

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
            fetch_max_wait_ms=100,
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
                wait = COMMIT_INTERVAL if offsets.pending else 0.5
                batches = await self._poll(consumer, wait)
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
        returned after `rejoin_seconds` means a stuck client, and it is made anew."""
        try:
            return await asyncio.wait_for(
                consumer.getmany(timeout_ms=int(wait * 1000), max_records=500),
                wait + self._rejoin_seconds,
            )
        except TimeoutError:
            raise ConsumerStalled(
                f"joining its group for over {self._rejoin_seconds:.0f} s"
            ) from None

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
                batched: dict[str, list[Envelope]] = {}
                for record, (topic, envelope) in zip(records, envelopes, strict=True):
                    first_time = envelope.event_id in fresh
                    fresh.discard(envelope.event_id)  # a second copy in the batch is a duplicate
                    if first_time and isinstance(self._handlers[topic], Batch):
                        batched.setdefault(topic, []).append(envelope)
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
        async with transaction(self._sessions) as session:
            first_time = await self._apply_in(session, topic, envelope, headers)
        if first_time:
            self.stats.processed += 1
        else:
            self.stats.duplicates += 1

    async def _apply_in(
        self, session: AsyncSession, topic: str, envelope: Envelope, headers: Headers = ()
    ) -> bool:
        """Record the event id and run its handler in `session`'s transaction; False (and no
        effect) when the event was processed before."""
        if not await self._claim(session, [(topic, envelope)]):
            return False
        if isinstance(self._handlers[topic], Batch):
            await self._handle_batch(session, topic, [envelope])
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
        self, session: AsyncSession, topic: str, envelope: Envelope, headers: Headers = ()
    ) -> None:
        # The event's correlation id on every line its handler logs; its trace continued.
        token = CORRELATION.set(safe_correlation(envelope.correlation_id))
        try:
            with tracing.span(
                f"consume {topic}",
                parent=tracing.from_headers(headers),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "kafka", "messaging.destination": topic},
            ):
                handler = self._handlers[topic]
                assert not isinstance(handler, Batch)
                await handler(session, envelope)
        except ValidationError as exc:
            raise _invalid(envelope, exc) from exc
        finally:
            CORRELATION.reset(token)

    async def _handle_batch(self, session: AsyncSession, topic: str, group: list[Envelope]) -> None:
        """`group`'s events, all of `topic`, to its `Batch` handler (one span for them all)."""
        handler = self._handlers[topic]
        assert isinstance(handler, Batch)
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
                await handler.apply(session, group)
            except ValidationError as exc:
                # Which one: the batch is rolled back and its events applied one by one.
                raise _invalid(group[0], exc) from exc

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


def _invalid(envelope: Envelope, exc: ValidationError) -> PoisonMessage:
    """The dead-letter reason of an event whose data its handler refused (fields, no values)."""
    fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
    return PoisonMessage(f"{envelope.type}: invalid data ({fields})")
