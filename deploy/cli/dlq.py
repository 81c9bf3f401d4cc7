"""`triage dlq`: the dead letters, for an operator to read and, once the cause is fixed, replay.

Two places hold what could not be processed:
- the dead-letter topics `<topic>.dlq`: a message a consumer could never apply, with the reason,
  its source topic, partition, offset and consumer group in its headers (shared/kafka/consumer.py);
- each service's `outbox_set_aside` table: an event the relay could never publish (its topic is
  missing, the broker refuses its size; shared/outbox.py).

`replay` puts a dead letter back on its source topic (key, value and headers as they were, plus
`dlq.replayed`), and a set-aside row back in its outbox. It is idempotent by event id: a dead
letter whose event id the consumer group it failed in has recorded as applied since is skipped,
one event id goes out once per run, and a consumer drops an event it has applied before anyway.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.topics import CONSUMED, dlq

#: The schemas whose outbox may hold set-aside rows (one per service).
SCHEMAS = ("intake", "risk", "notify")


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord

    def header(self, name: str) -> str:
        for key, value in self.record.headers or ():
            if key == name:
                return value.decode(errors="replace")
        return ""

    @property
    def source(self) -> str:
        return self.header("dlq.topic") or self.record.topic.removesuffix(".dlq")

    @property
    def reason(self) -> str:
        return self.header("dlq.reason") or "(no reason given)"

    @property
    def group(self) -> str:
        return self.header("dlq.group")

    @property
    def envelope(self) -> dict:
        try:
            return dict(json.loads(self.record.value))
        except (ValueError, TypeError):
            return {}

    @property
    def event_id(self) -> str:
        return str(self.envelope.get("event_id", ""))

    def summary(self) -> dict[str, object]:
        """What `show` prints: where it came from and why, the event's id, type and ids; never
        the event's other data (an operator passes --full to see it)."""
        envelope = self.envelope
        data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
        return {
            "dead_letter": f"{self.record.topic}[{self.record.partition}]@{self.record.offset}",
            "source": f"{self.source}[{self.header('dlq.partition')}]@{self.header('dlq.offset')}",
            "group": self.group,
            "reason": self.reason,
            "event_id": self.event_id or "(not an envelope)",
            "type": envelope.get("type", ""),
            "correlation_id": envelope.get("correlation_id", ""),
            "ids": {k: v for k, v in (data or {}).items() if k.endswith("_id")},
        }


async def read_dead_letters(bootstrap: str, topics: Iterable[str]) -> list[DeadLetter]:
    """Every record of the dead-letter topics of `topics`, from their start to their end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(dlq(topic), p)
            for topic in topics
            for p in sorted(cluster.partitions_for_topic(dlq(topic)) or ())
        ]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        letters: list[DeadLetter] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            for tp, records in batch.items():
                letters.extend(DeadLetter(r) for r in records if r.offset < ends[tp])
        return letters
    finally:
        await consumer.stop()


async def set_aside_rows(conn: asyncpg.Connection, topic: str | None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for schema in SCHEMAS:
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox_set_aside")
        if exists is None:
            continue
        rows += await conn.fetch(
            f"SELECT '{schema}' AS schema, id, event_id, topic, reason, set_aside_at"
            f" FROM {schema}.outbox_set_aside WHERE $1::text IS NULL OR topic = $1 ORDER BY id",
            topic,
        )
    return rows


def _selected(
    letters: list[DeadLetter], topic: str | None, event_id: str | None
) -> list[DeadLetter]:
    return [
        letter
        for letter in letters
        if (topic is None or letter.source == topic)
        and (event_id is None or letter.event_id == event_id)
    ]


async def dlq_list(database_url: str, bootstrap: str) -> int:
    letters = await read_dead_letters(bootstrap, CONSUMED)
    by_topic: dict[str, Counter[str]] = {}
    for letter in letters:
        by_topic.setdefault(letter.source, Counter())[letter.reason] += 1
    print("dead-letter topics:")
    if not by_topic:
        print("  (empty)")
    for topic in sorted(by_topic):
        print(f"  {dlq(topic)}: {sum(by_topic[topic].values())}")
        for reason, count in by_topic[topic].most_common():
            print(f"    {count:6d}  {reason}")
    conn = await asyncpg.connect(database_url)
    try:
        rows = await set_aside_rows(conn, None)
    finally:
        await conn.close()
    print("outbox rows set aside (never published):")
    if not rows:
        print("  (none)")
    aside = Counter((r["schema"], r["topic"], r["reason"]) for r in rows)
    for (schema, topic, reason), count in sorted(aside.items()):
        print(f"  {schema} -> {topic}: {count:6d}  {reason}")
    return 0


async def dlq_show(
    database_url: str, bootstrap: str, topic: str | None, event_id: str | None, full: bool
) -> int:
    letters = _selected(await read_dead_letters(bootstrap, CONSUMED), topic, event_id)
    for letter in letters:
        shown = letter.summary()
        if full:
            shown["envelope"] = letter.envelope
        print(json.dumps(shown, default=str))
    conn = await asyncpg.connect(database_url)
    try:
        rows = [
            r
            for r in await set_aside_rows(conn, topic)
            if event_id is None or str(r["event_id"]) == event_id
        ]
    finally:
        await conn.close()
    for r in rows:
        print(
            json.dumps(
                {
                    "set_aside": f"{r['schema']}.outbox_set_aside/{r['id']}",
                    **{k: r[k] for k in ("event_id", "topic", "reason", "set_aside_at")},
                },
                default=str,
            )
        )
    if not letters and not rows:
        print("no dead letters match")
    return 0


async def _applied(conn: asyncpg.Connection, group: str, event_id: str) -> bool:
    """Whether the consumer group (the service of that name) has applied the event since."""
    if group not in SCHEMAS or not event_id:
        return False
    try:
        wanted = uuid.UUID(event_id)
    except ValueError:
        return False
    return bool(
        await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {group}.processed_events WHERE event_id = $1)", wanted
        )
    )


#: Set-aside rows back into their outbox (the relay publishes them at its next pass).
_PUT_BACK = """
    WITH back AS (
        DELETE FROM {schema}.outbox_set_aside
         WHERE ($1::text IS NULL OR topic = $1) AND ($2::uuid IS NULL OR event_id = $2)
        RETURNING *)
    INSERT INTO {schema}.outbox (event_id, topic, key, value, created_at)
    SELECT event_id, topic, key, value, created_at FROM back
    ON CONFLICT (event_id) DO NOTHING
"""


async def dlq_replay(
    database_url: str, bootstrap: str, topic: str | None, event_id: str | None
) -> int:
    from tqdm import tqdm

    letters = _selected(await read_dead_letters(bootstrap, CONSUMED), topic, event_id)
    conn = await asyncpg.connect(database_url)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    sent: set[str] = set()
    replayed = skipped = 0
    try:
        with tqdm(total=len(letters), unit="msg", desc="replay") as bar:
            for letter in letters:
                bar.update()
                key = letter.event_id or f"{letter.record.topic}@{letter.record.offset}"
                if key in sent or await _applied(conn, letter.group, letter.event_id):
                    skipped += 1
                    continue
                headers = [(k, v) for k, v in letter.record.headers or () if k == "traceparent"]
                await producer.send_and_wait(
                    letter.source,
                    value=letter.record.value,
                    key=letter.record.key,
                    headers=[*headers, ("dlq.replayed", b"1")],
                )
                sent.add(key)
                replayed += 1
        moved = 0
        wanted = uuid.UUID(event_id) if event_id else None
        for schema in SCHEMAS:
            if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.outbox_set_aside"):
                status = await conn.execute(_PUT_BACK.format(schema=schema), topic, wanted)
                moved += int(status.split()[-1])
    finally:
        await producer.stop()
        await conn.close()
    print(
        f"dlq: {replayed} replayed onto their topics, {skipped} skipped (applied since, or a"
        f" second copy); {moved} set-aside outbox rows put back"
    )
    return 0
