"""What a consumer's handlers are given and raise, and the table of events already applied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Envelope

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
#: One statement that applies an event by itself and records its id in processed_events,
#: committing on its own (`driver(session, begin=False)`).
Statement = Callable[[AsyncSession], Awaitable[None]]
#: For an event alone in its poll, the `Statement` that applies it, or None when it needs a
#: transaction. Decided before anything runs: the event has one consume span either way.
Alone = Callable[[Envelope], Statement | None]


@dataclass(frozen=True)
class Batch:
    """A topic's handler that applies a poll's events of that topic at once, in their order,
    in the poll's transaction (a statement for many, not one each): the audit trail appends a
    poll's entries under one lock of its head. A single event comes as a list of one."""

    apply: Callable[[AsyncSession, list[Envelope]], Awaitable[None]]
    #: Then each of those events alone, in order, as a plain handler is called (in its own span,
    #: continuing the event's trace, with its correlation id on the log lines): the work only
    #: some events need (a flagged assessment's alert), after `apply` did in one statement what
    #: every event of the poll needs.
    each: Handler | None = None
    #: An event alone in its poll that needs no more than one statement that commits on its
    #: own (an unflagged assessment: the watchdog's upsert) may skip the consumer's claim and
    #: the transaction, as an `Idempotent` handler's does: `alone` gives that statement, which
    #: records the event id in processed_events itself. For an event that needs more (a
    #: flagged one, whose alert `each` opens) it gives None, and the event is applied in a
    #: transaction like any other.
    alone: Alone | None = None


@dataclass(frozen=True)
class Idempotent:
    """A topic's handler that applies an event at most once by itself (a unique key makes a
    second copy do nothing) in one statement that commits on its own (`driver(session,
    begin=False)`) and records the event id in processed_events itself (`triage dlq` asks
    there): alone in a poll, its event is not claimed by the consumer nor wrapped in a
    transaction, one round trip instead of four (BEGIN, the claim, the statement, COMMIT).
    Risk's assessments: the first hop on the way to a page. In a poll of several it runs in
    the poll's transaction, claimed like any other."""

    handle: Handler

    def alone(self, envelope: Envelope) -> Statement:
        async def statement(session: AsyncSession) -> None:
            await self.handle(session, envelope)

        return statement


#: A Kafka message's headers.
Headers = Sequence[tuple[str, bytes]]


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
