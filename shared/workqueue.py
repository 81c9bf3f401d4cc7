"""The leased work queue, written once: claim due rows with a lease, send each, record the outcome.

Pages, safety-plan reminders and FHIR rest-hook pushes are all rows with a due time that a loop
sends: it claims what is due (``FOR UPDATE SKIP LOCKED``, ``lease_until`` set, ``attempts + 1``,
so two replicas never send one attempt and a process that dies mid-send leaves a lease that runs
out: at least once, never lost), sends each claimed row concurrently within a bound of slots,
records the outcome (delivered, retried at now + backoff, or failed), and sleeps until the next
due time (the earliest ``due_at``, or a lease that runs out) or a NOTIFY (shared/wakeup.py).

`WorkQueue` is that skeleton: the loop, the slots, the passes and the drain at shutdown. Each user
supplies its own statements and its claim, send and next-due functions (`Jobs`), so what differs
stays where it belongs: the deliverer's ordering and escalations, the pusher's share per
endpoint, the reminders' wait for a target. `claim_statement`, `next_due_statement`,
`next_step` and `retry_at` are the common pieces for a table of the usual shape (columns
``status``, ``due_at``, ``lease_until``, ``attempts``), for users that need no more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, Update, bindparam, func, or_, select, update

from shared.events import utcnow
from shared.wakeup import Listener, WakeLoop
from shared.webhooks import backoff_seconds

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Batch(Generic[T_co]):
    """What one claim took, and whether to claim again at once even if it took fewer than it
    could (the deliverer's escalations just added pages)."""

    items: Sequence[T_co] = field(default_factory=tuple)
    again: bool = False


class Jobs(Protocol[T]):
    """What a user of the queue supplies: its own statements, behind three functions."""

    async def claim(self, free: int) -> Batch[T]:
        """Lease up to `free` due items (`free` may be 0 or less: the user may still have a pass
        to make, as the deliverer's escalations)."""
        ...

    async def send(self, item: T) -> None:
        """Send one claimed item and record its outcome; never raises (a failure to record
        leaves the lease to run out, and the item is sent again)."""
        ...

    async def next_due(self) -> datetime | None:
        """When something is due next (None: only a wake-up will tell)."""
        ...


class WorkQueue(Generic[T]):
    """Runs `jobs`: a pass claims and starts due sends while slots are free, then the loop sleeps
    until `jobs.next_due()` or a NOTIFY on `channels` (or `wake()`), never past `max_sleep`."""

    def __init__(
        self,
        *,
        name: str,
        listener: Listener,
        channels: Sequence[str],
        max_sleep: float,
        concurrency: int,
        drain_seconds: float,
        jobs: Jobs[T],
        on_start: Callable[[T, asyncio.Task[None]], object] | None = None,
    ) -> None:
        self.concurrency = concurrency
        #: Called with each send as it starts, before the pass claims again (the deliverer
        #: counts the slots its repeats hold).
        self._on_start = on_start
        self._drain_seconds = drain_seconds
        self._jobs = jobs
        self.loop = WakeLoop(name=name, listener=listener, channels=channels, max_sleep=max_sleep)
        #: The sends on the wire: a slot each.
        self.in_flight: set[asyncio.Task[None]] = set()

    @property
    def free(self) -> int:
        """Slots free for new sends (0 or less: every slot is busy)."""
        return self.concurrency - len(self.in_flight)

    def wake(self) -> None:
        """Make a pass now (a send ended and freed a slot, or moved a due time no trigger
        announces)."""
        self.loop.wake()

    async def run(self) -> None:
        """Pass and sleep until cancelled; then let the sends on the wire finish and be recorded."""
        try:
            await self.loop.run(self.run_due, self._next_due_in)
        except asyncio.CancelledError:
            await self.drain()
            raise

    async def drain(self) -> None:
        if self.in_flight:
            await asyncio.wait(self.in_flight, timeout=self._drain_seconds)

    async def run_due(self) -> None:
        """Claim and start due sends until a claim takes fewer than the free slots (nothing more
        is due now) or every slot is busy."""
        while True:
            free = self.free
            batch = await self._jobs.claim(free)
            for item in batch.items:
                self.start(item)
            if not batch.again and (free <= 0 or len(batch.items) < free):
                return

    def start(self, item: T) -> asyncio.Task[None]:
        """Send `item` in a slot of its own."""
        task = asyncio.create_task(self._jobs.send(item))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        if self._on_start is not None:
            self._on_start(item, task)
        return task

    async def _next_due_in(self) -> float | None:
        due = await self._jobs.next_due()
        return None if due is None else (due - utcnow()).total_seconds()


# --- the common pieces of a leased table -------------------------------------------------------

Step = Literal["delivered", "retry", "failed"]


def next_step(outcome: str, attempts: int, max_attempts: int | None = None) -> Step:
    """What an attempt's outcome leads to: a temporary failure is retried (while `attempts` is
    under `max_attempts`, when there is one); any other failure, no retry would change."""
    if outcome == "delivered":
        return "delivered"
    if outcome == "temporary_failure" and (max_attempts is None or attempts < max_attempts):
        return "retry"
    return "failed"


def retry_at(attempts: int, *, base: float, ceiling: float, now: datetime) -> datetime:
    """When a retry after `attempts` attempts is due: backoff with jitter (shared/webhooks.py)."""
    return now + timedelta(seconds=backoff_seconds(attempts, base=base, ceiling=ceiling))


def lease_free(model: Any) -> ColumnElement[bool]:
    """Not on the wire: never leased, or its lease ran out (its sender may have died)."""
    return or_(model.lease_until.is_(None), model.lease_until < func.now())


def claim_statement(model: Any, *, lease: timedelta, returning: Sequence[Any]) -> Update:
    """Lease up to `limit` (bound at each call) pending rows of `model` that are due, oldest due
    first, one more attempt each; rows another replica holds are skipped, not waited for.

    `model` is a mapped class with the columns ``id``, ``status``, ``due_at``, ``lease_until``
    and ``attempts``.
    """
    due = (
        select(model.id)
        .where(model.status == "pending", model.due_at <= func.now(), lease_free(model))
        .order_by(model.due_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(model)
        .where(model.id.in_(due))
        .values(lease_until=func.now() + lease, attempts=model.attempts + 1)
        .returning(*returning)
        # A plain UPDATE: nothing of it is in the session to synchronise.
        .execution_options(synchronize_session=False)
    )


def next_due_statement(model: Any) -> Select[tuple[Any]]:
    """When the next pending row of `model` is due: its due time, or, for a leased one, when its
    lease runs out (its sender may have died)."""
    return select(func.min(func.greatest(model.due_at, model.lease_until))).where(
        model.status == "pending"
    )
