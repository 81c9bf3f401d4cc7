"""The reminder sender: the reminder row is the durable timer. It claims due rows with a lease
(`FOR UPDATE SKIP LOCKED`, so two replicas never send one attempt), POSTs the reminder through
the pages' own webhook channel (signed as the contract signs pages, within the channel's deadline,
the answer read only a little, through the SSRF guard unless the address is the operator's), and
retries with backoff until it is delivered or given up. It sleeps until the next due attempt
and is woken by a NOTIFY when a reminder is recorded: no polling.

A reminder carries ids, the level and the due time, never an entry of the plan (PHI).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.notify.delivery.channels import WebhookChannel
from services.notify.reminders.models import Reminder
from services.notify.reminders.service import KIND
from services.notify.settings import NotifySettings
from shared.db import SessionFactory, transaction
from shared.events import utcnow
from shared.wakeup import Listener
from shared.workqueue import (
    Batch,
    WorkQueue,
    claim_statement,
    next_due_statement,
    next_step,
    retry_at,
)

log = logging.getLogger(__name__)

#: The channel the reminders trigger signals on (migrations/0003_reminders.sql).
REMINDERS_CHANNEL = "notify_reminders"
LEASE = timedelta(seconds=30)


#: Leases up to `limit` due reminders (one more attempt each), oldest due first.
CLAIM = claim_statement(
    Reminder,
    lease=LEASE,
    returning=(
        Reminder.id,
        Reminder.kind,
        Reminder.attempts,
        Reminder.plan_id,
        Reminder.screening_id,
        Reminder.risk_level,
        Reminder.plan_due_at,
    ),
)
#: When the next reminder is due (one leased by another replica: when its lease runs out).
NEXT_DUE = next_due_statement(Reminder)


@dataclass(frozen=True)
class Claimed:
    """One claimed attempt, with what the reminder says; no PHI."""

    id: uuid.UUID
    attempt: int
    plan_id: uuid.UUID
    screening_id: uuid.UUID
    risk_level: str
    plan_due_at: datetime
    kind: str = KIND

    def payload(self) -> dict[str, Any]:
        if self.kind != KIND:
            # A follow-up's notice (service.on_follow_up_event): the case shows the follow-up.
            return {
                "kind": self.kind,
                "notice_id": str(self.plan_id),
                "screening_id": str(self.screening_id),
                "risk_level": self.risk_level,
                "due_at": self.plan_due_at.isoformat(),
                "for": "supervisor" if self.kind == "follow_up_unreachable" else "team",
            }
        return {
            "kind": KIND,
            "plan_id": str(self.plan_id),
            "screening_id": str(self.screening_id),
            "risk_level": self.risk_level,
            "due_at": self.plan_due_at.isoformat(),
        }


class ReminderSender:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        settings: NotifySettings,
        channel: WebhookChannel,
        listener: Listener,
        batch_size: int = 20,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        #: The pages' webhook channel (services/notify/delivery/channels.py): the one signed POST.
        self._channel = channel
        # A leased reminder is due again when its lease runs out: that bounds the sleep. The
        # loop, the slots and the drain are the shared leased work queue (shared/workqueue.py).
        self._queue: WorkQueue[Claimed] = WorkQueue(
            name="reminder sender",
            listener=listener,
            channels=[REMINDERS_CHANNEL],
            max_sleep=LEASE.total_seconds(),
            concurrency=batch_size,  # reminders sent at once, each in a slot of its own
            drain_seconds=settings.delivery_timeout_seconds + 1,
            jobs=self,
        )
        self.sent = 0
        #: Reminders that reached DELIVERY_MAX_ATTEMPTS undelivered (and are still retried).
        self.overdue = 0

    def wake(self) -> None:
        self._queue.wake()

    async def run(self) -> None:
        """Send until cancelled."""
        await self._queue.run()

    async def run_due(self) -> None:
        await self._queue.run_due()

    async def claim(self, free: int) -> Batch[Claimed]:
        if free <= 0:
            return Batch()
        async with transaction(self._sessions) as session:
            rows = await session.execute(CLAIM, {"limit": free})
            return Batch(
                [
                    Claimed(
                        id=r.id,
                        attempt=r.attempts,
                        plan_id=r.plan_id,
                        screening_id=r.screening_id,
                        risk_level=r.risk_level,
                        plan_due_at=r.plan_due_at,
                        kind=r.kind,
                    )
                    for r in rows
                ]
            )

    async def send(self, reminder: Claimed) -> None:
        try:
            await self._send(reminder)
        except Exception as exc:
            # Its lease runs out and it is sent again: at least once, never lost.
            log.error("reminder %s: %s", reminder.id, type(exc).__name__, exc_info=exc)
        # Its outcome moved a due time no trigger announces (a retry): read the next one again.
        self._queue.wake()

    async def _send(self, reminder: Claimed) -> None:
        target = self._settings.oncall_webhook_url
        status: int | None = None
        error: str | None
        if target is None:
            outcome, error = "no_target", "no on-call target configured"
        else:
            sent = await self._channel.post(target, reminder.payload(), event_id=reminder.id)
            outcome, status, error = sent.outcome, sent.http_status, sent.error
        try:
            await self._record(reminder, outcome=outcome, http_status=status, error=error)
        except Exception:
            # The lease expires and the reminder is sent again: at least once, never lost.
            log.exception("could not record reminder %s", reminder.id)

    async def _record(
        self, reminder: Claimed, *, outcome: str, http_status: int | None, error: str | None
    ) -> None:
        settings = self._settings
        async with transaction(self._sessions) as session:
            row = await session.get(Reminder, reminder.id, with_for_update=True)
            if row is None:
                return
            now = utcnow()
            row.lease_until = None
            row.last_http_status, row.last_error = http_status, error
            if outcome == "delivered":
                row.status, row.finished_at = "delivered", now
                self.sent += 1
            elif outcome == "no_target":
                row.attempts = 0  # waiting for a target is not a failed attempt
                row.due_at = now + timedelta(seconds=settings.no_target_retry_seconds)
            elif next_step(outcome, row.attempts) == "retry":
                # Like a page: retried with backoff for as long as it takes (a gateway outage
                # during a deploy must not lose it), and loudly once it has taken too long.
                row.due_at = retry_at(
                    row.attempts,
                    base=settings.retry_base_seconds,
                    ceiling=settings.retry_max_seconds,
                    now=now,
                )
                if row.attempts == settings.delivery_max_attempts:
                    self.overdue += 1
                    log.error(
                        "reminder %s for safety plan %s still undelivered after %d attempts (%s);"
                        " retrying up to every %.0f s until it is",
                        row.id,
                        row.plan_id,
                        row.attempts,
                        error,
                        settings.retry_max_seconds,
                    )
            else:
                # The gateway refuses it (4xx): no retry would change that; an operator must.
                row.status, row.finished_at = "failed", now
                log.error(
                    "reminder %s for safety plan %s refused by the gateway after %d attempt(s):"
                    " %s (an answer that no retry changes)",
                    row.id,
                    row.plan_id,
                    row.attempts,
                    error,
                )
        if outcome != "delivered":
            log.warning("reminder %s attempt %d: %s", reminder.id, reminder.attempt, error)

    async def next_due(self) -> datetime | None:
        if self._queue.free <= 0:
            return None  # every slot is busy; a finished send wakes the loop
        async with self._sessions() as session:
            due: datetime | None = await session.scalar(NEXT_DUE)
        return due
