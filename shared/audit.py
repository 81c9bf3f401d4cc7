"""The audit trail's entries: what every service records, and how the chain is computed.

Each service writes its entries to its own outbox (topic `triage.audit.v1`, keyed by resource)
in the transaction of the change they record, or, for a read, in a transaction committed before
the answer is sent. Intake consumes the topic (deduplicated by event id, like every consumer)
and appends each entry to the one hash-chained trail. An entry names ids and actions, never a
name, phone number, note or plan entry.

`GuardedRoute` opens an `AuditScope` for each request it lets through; `shared.db.transaction`
writes the scope's entry into the request's first committed transaction (so a change and its
entry commit together), and the route writes it on its own for a request that committed none
(a read) before answering. Refused requests (401, 403) are written by the route.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory, commit_hook, driver
from shared.events import Envelope, EventData, utcnow
from shared.outbox import add_event, event_row, insert_sql
from shared.topics import AUDIT_EVENTS

GENESIS = "0" * 64
#: The entry's fields in the order the canonical form lists them.
FIELDS = (
    "entry_id",
    "at",
    "service",
    "actor",
    "role",
    "credential_id",
    "action",
    "resource",
    "outcome",
    "client",
    "correlation_id",
    "reason",
)
#: Added later: in the canonical form only when set, so entries written before it still verify.
NUMBERED = "service_seq"


class AuditRecorded(EventData):
    TYPE: ClassVar[str] = "audit.recorded"

    entry_id: uuid.UUID
    at: datetime
    service: str
    actor: str
    role: str
    credential_id: str
    action: str
    resource: str
    outcome: str
    client: str
    correlation_id: str
    reason: str | None = None
    #: The service's own number for the entry, 1, 2, 3, … without gaps, given at commit by the
    #: outbox (shared/migrations/0006): a number missing from the trail is an entry that never
    #: reached it. None in the entries queued by the code (the number is not known yet), and in
    #: entries written before the numbering.
    service_seq: int | None = None

    def event(self) -> Envelope:
        """The envelope, with the entry's id as its event id (redeliveries are dropped)."""
        return self.envelope(correlation_id=self.correlation_id).model_copy(
            update={"event_id": self.entry_id}
        )


def canonical(entry: dict[str, Any]) -> str:
    """The text an entry's hash covers: its fields in a fixed order, times in UTC ISO form."""
    values = {}
    for name in FIELDS:
        value = entry.get(name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif value is not None:
            value = str(value)
        values[name] = value
    if entry.get(NUMBERED) is not None:
        values[NUMBERED] = str(entry[NUMBERED])
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, seq: int, entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{canonical(entry)}".encode()).hexdigest()


@dataclass
class AuditScope:
    """The entry of one request until it is committed (a `shared.db.CommitHook`)."""

    outbox: Table
    entry: dict[str, Any]
    #: Queued in the transaction under way (not yet committed).
    staged: bool = False
    #: Committed with the request's change.
    written: bool = False

    def record(self) -> AuditRecorded:
        return AuditRecorded(**self.entry)

    def fused_row(self) -> tuple[Any, ...] | None:
        """The outbox row's parameters for a statement that makes the change and queues the
        entry at once (the screening POST); None when the entry is already queued."""
        if self.staged or self.written:
            return None
        self.staged = True
        event = self.record().event()
        return event_row(topic=AUDIT_EVENTS, key=self.entry["resource"], event=event)

    async def stage(self, session: AsyncSession) -> None:
        if self.staged or self.written:
            return
        event = self.record().event()
        key = self.entry["resource"]
        await add_event(session, self.outbox, topic=AUDIT_EVENTS, key=key, event=event)
        self.staged = True

    def unstage(self) -> None:
        self.staged = False

    def committed(self) -> None:
        if self.staged:
            self.written, self.staged = True, False


_scope: contextvars.ContextVar[AuditScope | None] = contextvars.ContextVar(
    "audit_scope", default=None
)


@contextlib.contextmanager
def scope(audit: AuditScope) -> Iterator[AuditScope]:
    """The request's entry: written into its transactions (`shared.db.commit_hook`)."""
    token, hook_token = _scope.set(audit), commit_hook.set(audit)
    try:
        yield audit
    finally:
        commit_hook.reset(hook_token)
        _scope.reset(token)


def current() -> AuditScope | None:
    return _scope.get()


def annotate(**fields: Any) -> None:
    """Change the request's entry before it is written (a break-glass read's outcome, reason)."""
    audit = _scope.get()
    if audit is not None and not (audit.staged or audit.written):
        audit.entry.update(fields)


def about(resource: str) -> None:
    """Name the resource the request acts on once it is known (a new screening's id)."""
    annotate(resource=resource)


async def record_alone(
    sessions: SessionFactory,
    outbox: Table,
    entry: dict[str, Any],
    *,
    on: AsyncSession | None = None,
) -> None:
    """Write `entry` on its own (a read, a refusal), committed on return: one statement that
    commits by itself, one round trip (not BEGIN, INSERT, COMMIT) before the answer.

    `on` is the request's read session when it has one (no transaction open: shared/db.py
    `read_session_factory`): the entry goes over the connection the read already holds. Without
    it (a refusal before any route ran) a connection of `sessions` is taken for it."""
    event = AuditScope(outbox, entry).record().event()
    row = event_row(topic=AUDIT_EVENTS, key=entry["resource"], event=event)
    if on is not None:
        conn = await driver(on, begin=False)
        if not conn.is_in_transaction():
            await conn.execute(insert_sql(outbox), *row)
            return
    async with sessions() as session:
        await (await driver(session, begin=False)).execute(insert_sql(outbox), *row)


def new_entry(**fields: Any) -> dict[str, Any]:
    return {"entry_id": uuid.uuid4(), "at": utcnow(), "reason": None, **fields}
