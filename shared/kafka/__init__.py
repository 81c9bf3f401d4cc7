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

from shared.kafka.consumer import ConsumerStats, EventConsumer
from shared.kafka.producer import Producer, create_producer
from shared.kafka.progress import ConsumerStalled, unfetched
from shared.kafka.records import (
    Batch,
    Handler,
    Headers,
    Idempotent,
    PoisonMessage,
    Statement,
    processed_events_table,
)
from shared.kafka.timing import (
    COMMIT_INTERVAL,
    CONSUMER_SESSION_TIMEOUT_MS,
    HANDOVER_SECONDS,
    REJOIN_SECONDS,
    REVOKE_COMMIT_SECONDS,
    STALL_SECONDS,
)

__all__ = [
    "COMMIT_INTERVAL",
    "CONSUMER_SESSION_TIMEOUT_MS",
    "HANDOVER_SECONDS",
    "REJOIN_SECONDS",
    "REVOKE_COMMIT_SECONDS",
    "STALL_SECONDS",
    "Batch",
    "ConsumerStalled",
    "ConsumerStats",
    "EventConsumer",
    "Handler",
    "Headers",
    "Idempotent",
    "PoisonMessage",
    "Producer",
    "Statement",
    "create_producer",
    "processed_events_table",
    "unfetched",
]
