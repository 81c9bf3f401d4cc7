"""Every service's own copy of the valid API keys, read from the compacted access topic.

The pattern of Kafka's own registries (Schema Registry's `_schemas`, Connect's config topic):
each replica assigns itself every partition of `triage.access.events.v1`, reads it from the
beginning at start and keeps reading, so a key issued or revoked on intake is known to every
replica of every service within the time of one fetch, with no schema shared between services.

Fail closed: a replica that has not confirmed, within `max_staleness` seconds, that it has read
up to the topic's end cannot know whether a key was revoked, so it refuses every key (503) and
says why in its log, until it has caught up again. The replica that keeps the keys (intake) has
their source of truth at hand instead: its `authority` answers meanwhile, so a broker failover
(several seconds while a new partition leader is elected) refuses no request there.

Only intake's records count: each must carry intake's signature of its `data`
(`shared.auth.signing`) and be filed under its own key's id; any other is refused, and the log
says why (never what it carries), so whoever can write to the topic cannot mint a key. A
revocation is final: an older state of a revoked key, played again, does not bring it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.auth.credentials import Credential, CredentialChanged, key_digest
from shared.auth.principal import Principal
from shared.auth.signing import RecordRefused, RecordVerifier
from shared.events import Envelope
from shared.kafka.timing import FETCHER_TIMEOUT_MS
from shared.topics import ACCESS_EVENTS

log = logging.getLogger(__name__)

#: How long the broker holds a fetch of the access topic that finds nothing new (ms). A record
#: ends the wait at once (the fetch asks for one byte), so this bounds only how often an idle
#: replica asks, for each replica of each service: each fetch that runs out costs the broker
#: more than the replica (at 500 ms, twice a second, the directories' fetches were two thirds of
#: an idle broker's requests). Each answer also confirms the copy read to the topic's end
#: (`follow`), once a second at 1000 ms: with the loop's turn, the confirmation is at most 2 s
#: old when it is renewed, and `max_staleness` (5 s) leaves room for three missed answers
#: before keys are refused. A request for an unknown key waits up to this long for its look at
#: the end (`principal_or_wait`, 1.5 s at most).
FETCH_WAIT_MS = 1000
#: Seconds between two confirmations of the end by a request of their own (ListOffsets) until the
#: fetches' answers confirm it (at start, after an outage): ready as soon as it can be.
CATCH_UP_EVERY = 0.2
#: Seconds the loop of a fresh copy waits for records before it takes the fetches' answers as
#: a confirmation of the end (CATCH_UP_EVERY while not fresh). A request for an unknown key does
#: not wait for it: it wakes the loop (`principal_or_wait`; its request to the broker may then
#: wait up to FETCH_WAIT_MS behind the fetch on the same connection).
TURN_SECONDS = 1.0


class CredentialsUnavailable(Exception):
    """This replica cannot tell whether a key is still valid right now."""


#: What a poll of the access topic gives, by partition.
Fetched = dict[TopicPartition, list[Any]]

#: The keys' source of truth, by key digest: asked while the topic cannot be confirmed read.
Authority = Callable[[str], Awaitable[Credential | None]]


class CredentialDirectory:
    def __init__(
        self,
        *,
        bootstrap: Iterable[Credential] = (),
        max_staleness: float = 5.0,
        clock: Any = time.monotonic,
        authority: Authority | None = None,
        verifier: RecordVerifier | None = None,
    ) -> None:
        self._by_id: dict[Any, Credential] = {}
        self._by_hash: dict[str, Credential] = {}
        for credential in bootstrap:
            self.apply(credential)
        self.max_staleness = max_staleness
        self._clock = clock
        self.authority = authority
        #: Intake's public key; without it every record of the topic is refused (fail closed).
        self.verifier = verifier
        self._synced_at: float | None = None
        self._warned_at = 0.0
        #: Set (and replaced) at every confirmed read to the end: what a waiting look awaits.
        self._sync_signal = asyncio.Event()
        #: A request waits for the next confirmed read to the end (`principal_or_wait`): set,
        #: it wakes the loop, which has the end confirmed by a request of its own.
        self._look_wanted = asyncio.Event()

    # --- what requests ask ---------------------------------------------------------------

    def principal(self, key: str) -> Principal | None:
        """The principal of a valid key; None for an unknown, expired or revoked one.

        Raises CredentialsUnavailable when this replica is not sure it knows every revocation.
        """
        if not self.fresh:
            self._warn("refusing API keys")
            raise CredentialsUnavailable("credentials cannot be checked right now")
        credential = self._by_hash.get(key_digest(key))
        if credential is None or not credential.valid_at(datetime.now(UTC)):
            return None
        return credential.principal

    async def principal_or_wait(self, key: str, *, timeout: float = 1.5) -> Principal | None:
        """`principal`, and for a key this replica has never seen, one more look after the
        next confirmed read to the topic's end (at most `timeout` s): a key issued on intake a
        moment ago is accepted here too instead of a 401 while its event is on its way.

        Not fresh, a replica with an `authority` asks it instead of refusing."""
        if not self.fresh and self.authority is not None:
            return await self._ask_authority(key)
        principal = self.principal(key)
        if principal is not None or key_digest(key) in self._by_hash:
            return principal
        asked = self._clock()
        deadline = asked + timeout
        self._look_wanted.set()  # confirm the end now, not at the next regular check
        while (self._synced_at or 0) < asked and self._clock() < deadline:
            try:
                await asyncio.wait_for(self._sync_signal.wait(), deadline - self._clock())
            except TimeoutError:
                break
        return self.principal(key)

    async def _ask_authority(self, key: str) -> Principal | None:
        assert self.authority is not None
        self._warn("checking API keys against their source")
        try:
            credential = await self.authority(key_digest(key))
        except Exception as exc:  # the database is away too: refuse (fail closed)
            raise CredentialsUnavailable("credentials cannot be checked right now") from exc
        if credential is None or not credential.valid_at(datetime.now(UTC)):
            return None
        return credential.principal

    def _warn(self, doing: str) -> None:
        now = self._clock()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning(
                "%s: the access topic %s has not been read to its end for more than %.0f s,"
                " so a revocation could be missing from this replica's copy",
                doing,
                ACCESS_EVENTS,
                self.max_staleness,
            )

    @property
    def answering(self) -> bool:
        """Whether a key can be checked now (readiness): fresh, or an authority to ask."""
        return self.fresh or self.authority is not None

    @property
    def fresh(self) -> bool:
        return self._synced_at is not None and self._clock() - self._synced_at <= self.max_staleness

    # --- what changes it -----------------------------------------------------------------

    def apply(self, credential: Credential) -> None:
        """Take a key's newest state (from the topic, or from intake right after its commit).

        A revoked key stays revoked: nothing revokes a key but for good, so a state without
        its revocation is an old one played again."""
        old = self._by_id.get(credential.id)
        if old is not None:
            if old.revoked_at is not None and credential.revoked_at is None:
                return
            self._by_hash.pop(old.key_hash, None)
        self._by_id[credential.id] = credential
        self._by_hash[credential.key_hash] = credential

    def mark_synced(self, at: float) -> None:
        self._synced_at = at
        signal, self._sync_signal = self._sync_signal, asyncio.Event()
        signal.set()

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read the topic from the beginning for ever, and keep the copy confirmed read to its end.

        `consumer` has no group: subscribed, it is assigned every partition of the topic and
        starts from the earliest offset. A record (a key issued or revoked) arrives as soon as it
        is written, whatever the fetch's wait: the broker answers a waiting fetch at once when
        data comes. Every answer to a fetch, empty or not, carries each partition's end (its high
        watermark), so once the copy has read to those ends it was complete when the broker
        answered: while fetches are answered, that confirms the copy at least every
        FETCH_WAIT_MS with no request of its own. Otherwise one ListOffsets request confirms
        the end: every `CATCH_UP_EVERY` s while the copy is not fresh (at start, after an
        outage), and at once when a request waits for it (`principal_or_wait`)."""
        consumer.subscribe([ACCESS_EVENTS])
        last_check = missing_since = 0.0
        fetching: asyncio.Task[Fetched] | None = None  # a fetch kept across a look
        try:
            while True:
                batches, fetching = await self._next(consumer, fetching)
                for records in batches.values():
                    for record in records:
                        self._apply_record(
                            record.value, key=record.key, at=f"{record.partition}@{record.offset}"
                        )
                partitions = sorted(consumer.assignment())
                if partitions:
                    answered = await self._answered_at(consumer, partitions)
                    if answered is not None and answered > (self._synced_at or float("-inf")):
                        self.mark_synced(answered)
                if not self._look_wanted.is_set() and (
                    self.fresh or self._clock() - last_check < CATCH_UP_EVERY
                ):
                    continue
                self._look_wanted.clear()
                last_check = started = self._clock()
                if not partitions:
                    if started - missing_since > 10:
                        missing_since = started
                        log.error(
                            "topic %s has no partitions yet: API keys are refused", ACCESS_EVENTS
                        )
                    continue
                try:
                    ends = await asyncio.wait_for(consumer.end_offsets(partitions), timeout=2)
                    positions = [await consumer.position(tp) for tp in partitions]
                except Exception as exc:  # the broker is out of reach: stay stale, say so
                    log.warning("access topic end offsets unavailable: %s", type(exc).__name__)
                    continue
                if all(pos >= ends[tp] for tp, pos in zip(partitions, positions, strict=True)):
                    self.mark_synced(started)
        finally:
            if fetching is not None:
                fetching.cancel()

    async def _next(
        self, consumer: AIOKafkaConsumer, fetching: asyncio.Task[Fetched] | None
    ) -> tuple[Fetched, asyncio.Task[Fetched] | None]:
        """The records fetched within a turn of the loop (a shorter one while catching up), or
        none as soon as a request wants the end confirmed; and the fetch still waiting then.

        That fetch is kept for the next turn, not cancelled: a getmany cancelled while it waits
        leaves its waiter in aiokafka's fetcher until a record comes, one more for every
        request with an unknown key on a quiet topic."""
        if fetching is None:
            turn = TURN_SECONDS if self.fresh else CATCH_UP_EVERY
            fetching = asyncio.ensure_future(consumer.getmany(timeout_ms=int(turn * 1000)))
        if not self._look_wanted.is_set():
            wanted = asyncio.ensure_future(self._look_wanted.wait())
            try:
                await asyncio.wait((fetching, wanted), return_when=asyncio.FIRST_COMPLETED)
            finally:
                wanted.cancel()
        if not fetching.done():
            return {}, fetching
        return fetching.result(), None

    async def _answered_at(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> float | None:
        """When the broker last answered a fetch of each of `partitions` with an end that the
        copy has read to (the oldest of those answers, on the directory's clock); None while a
        partition has records left to read or no answer yet."""
        answers = []
        for tp in partitions:
            end, answered = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
            if end is None or answered is None or await consumer.position(tp) < end:
                return None
            answers.append(answered)
        age = max(0.0, time.time() - min(answers) / 1000)  # the answers' wall-clock time, in ms
        return self._clock() - age

    def _apply_record(self, raw: bytes | None, *, key: bytes | None, at: str) -> None:
        """Apply one record of the topic if intake signed it; `at` is partition@offset."""
        try:
            envelope = Envelope.decode(raw)
            changed = CredentialChanged.model_validate(envelope.data)
        except ValueError:
            # Not ours to dead-letter (every replica reads it): skip, loudly.
            log.error("skipped a malformed record on %s (%s)", ACCESS_EVENTS, at)
            return
        try:
            self._check(envelope.data, changed, key)
        except RecordRefused as refused:
            # Why, and where to find it: never its digest, names or anything else it carries.
            log.error("refused a record on %s (%s): %s", ACCESS_EVENTS, at, refused)
            return
        self.apply(changed.credential())

    def _check(self, data: dict[str, Any], changed: CredentialChanged, key: bytes | None) -> None:
        if self.verifier is None:
            raise RecordRefused("no ACCESS_VERIFY_KEY to check it with")
        self.verifier.verify(data)
        # Compaction keeps the newest record per Kafka key: a signed record filed under another
        # key's id would take that key's place (its revocation) on the topic.
        if key != str(changed.credential_id).encode():
            raise RecordRefused("filed under another key's id")


async def follow_access_topic(
    directory: CredentialDirectory,
    *,
    bootstrap_servers: str,
    client_id: str,
    security: dict[str, Any],
) -> None:
    """`directory.follow` for the service's lifetime; a Kafka failure starts it over."""
    while True:
        consumer = AIOKafkaConsumer(
            **security,
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            consumer_timeout_ms=FETCHER_TIMEOUT_MS,
        )
        try:
            await consumer.start()
            await directory.follow(consumer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading %s failed; starting over in 1 s", ACCESS_EVENTS)
            await asyncio.sleep(1)
        finally:
            await consumer.stop()
