"""The deliverer: sends due pages, on time, once per claim, and never sleeps on the hot path.

Due work lives in PostgreSQL (deliveries.due_at, alerts.escalate_at), so a restarted process
resumes every pending page and escalation. The loop sleeps exactly until the next due time, and a
NOTIFY from the triggers on those timers wakes it the moment a page is added or a timer moves
(in any replica). Claims take a lease with `FOR UPDATE SKIP LOCKED`, so two replicas never send
the same attempt, and escalations lock their alert the same way, so two replicas never start the
same step; a process that dies mid-send leaves a lease that expires, and the page is sent again
(at least once, with the same X-Triage-Event-Id for the receiver to deduplicate).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime

import asyncpg
from opentelemetry.trace import SpanKind

from services.notify.alerts.escalation import escalate_overdue
from services.notify.delivery import queries
from services.notify.delivery.channels import Channel, Outcome, Page
from services.notify.delivery.models import DELIVERIES_CHANNEL, DeliveryAttempt
from services.notify.delivery.pages import page_of, payload, recorded_target
from services.notify.delivery.service import (
    Recorded,
    record_outcome,
    wait_for_target,
)
from services.notify.metrics import Metrics
from services.notify.phones.channels import overdue_report
from services.notify.settings import NotifySettings
from shared import tracing
from shared.db import SessionFactory, driver, transaction
from shared.events import utcnow
from shared.phi import KeyRing
from shared.wakeup import Listener
from shared.workqueue import Batch, WorkQueue

log = logging.getLogger(__name__)

#: Upper bound of one sleep: a safety net for a wake-up lost while LISTEN was reconnecting.
MAX_SLEEP_SECONDS = 30.0


class Deliverer:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        channels: dict[str, Channel],
        settings: NotifySettings,
        ack_keys: list[bytes],
        listener: Listener,
        metrics: Metrics,
        phi: KeyRing | None = None,
    ) -> None:
        self._sessions = sessions
        self._phi = phi
        self._channels = channels
        self._settings = settings
        #: The first signs the ack links in pages (services/notify/delivery/signing.py).
        self._ack_keys = ack_keys
        self._metrics = metrics
        #: The loop, the slots and the drain: the shared leased work queue (shared/workqueue.py).
        #: What is the deliverer's own: its claim (first pages before repeats), the repeat
        #: slots, the escalation pass and the early wake-up when a send frees a held slot.
        self._queue: WorkQueue[Page] = WorkQueue(
            name="deliverer",
            listener=listener,
            channels=[DELIVERIES_CHANNEL],
            max_sleep=MAX_SLEEP_SECONDS,
            concurrency=settings.delivery_concurrency,
            drain_seconds=settings.delivery_timeout_seconds + 1,
            jobs=self,
            on_start=self._started,
        )
        self._loop = self._queue.loop  # its wake-ups, as the tests observe them
        #: The sends of repeats among them: they never take the slots kept for first pages.
        self._repeats_in_flight: set[asyncio.Task[None]] = set()
        #: When the next page and the next escalation are due (None: nothing pending), read by
        #: each pass; before the first pass nothing is known, so it looks for overdue alerts.
        self._next_page: datetime | None = None
        self._next_repeat: datetime | None = None
        self._next_escalation: datetime | None = None
        self._deadlines_read = False
        self._slots = asyncio.Semaphore(settings.delivery_concurrency)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def _in_flight(self) -> set[asyncio.Task[None]]:
        """The pages on the wire, repeats included: the queue's slots."""
        return self._queue.in_flight

    def wake(self) -> None:
        self._queue.wake()

    async def run(self) -> None:
        await self._queue.run()

    async def run_due(self) -> None:
        """Passes until nothing more is due now (shared/workqueue.py `WorkQueue.run_due`)."""
        await self._queue.run_due()

    async def claim(self, free: int) -> Batch[Page]:
        """One pass: escalate what is overdue (only when a deadline has run out), then claim due
        pages, the ones those escalations added included, and read when the next page and the
        next deadline are due (the loop sleeps until then). After escalations, claim again.

        The claim is one UPDATE, atomic by itself, and the read needs no transaction either:
        both go without BEGIN and COMMIT, two round trips fewer on every page's path.
        """
        lags: list[float] = []
        if self._escalation_due():
            async with transaction(self._sessions) as session:
                lags = await escalate_overdue(session, settings=self._settings)
        repeats = min(free, self._settings.repeat_slots - len(self._repeats_in_flight))
        async with self._sessions() as session:
            conn = await driver(session, begin=False)
            pages = await self._claim(conn, free, max(repeats, 0)) if free > 0 else []
            due = await conn.fetchrow(queries.NEXT_DUE)
        self._next_page, self._next_repeat = due["page"], due["repeat"]
        self._next_escalation = due["escalation"]
        self._deadlines_read = True
        for lag in lags:
            self._metrics.escalation_lag.observe(max(0.0, lag))
            self._metrics.escalations.labels(reason="timeout").inc()
        return Batch(pages, again=bool(lags))

    def _started(self, page: Page, task: asyncio.Task[None]) -> None:
        """A repeat's send holds one of the repeat slots too, until it ends."""
        if page.repeat_round:
            self._repeats_in_flight.add(task)
            task.add_done_callback(self._repeats_in_flight.discard)

    async def send(self, page: Page) -> None:
        await self._send(page)

    def _escalation_due(self) -> bool:
        """Whether a deadline may have run out (always, before the first pass has read them)."""
        if not self._deadlines_read:
            return True
        return self._next_escalation is not None and self._next_escalation <= utcnow()

    async def _claim(self, conn: asyncpg.Connection, limit: int, repeats: int) -> list[Page]:
        rows = await conn.fetch(
            queries.CLAIM, self._settings.delivery_lease_seconds, limit, repeats
        )
        return [page_of(r, self._phi) for r in rows]

    async def next_due(self) -> datetime | None:
        """When the next page or deadline is due, as read by the last pass."""
        free = len(self._in_flight) < self._settings.delivery_concurrency
        due = [
            at
            for at in (
                # Every slot busy: a due page cannot start before one frees, and each finished
                # send wakes the loop. Without this the loop would spin on a due time past.
                self._next_page if free else None,
                self._next_repeat if free and self._repeat_slot_free() else None,
                self._next_escalation,
            )
            if at is not None
        ]
        return min(due) if due else None

    def address(self, page: Page) -> str | None:
        """Where the page goes: its planned address, else the fallback ONCALL_WEBHOOK_URL."""
        return page.target if page.target is not None else self._settings.oncall_webhook_url

    async def _send(self, page: Page) -> None:
        try:
            async with self._slots:
                await self._attempt(page)
        finally:
            self._release(page)

    def _release(self, page: Page) -> None:
        """Free the send's slot, and wake the loop if a due page may be waiting for it, also
        when the send stopped early (its alert was acknowledged meanwhile)."""
        held_last = len(self._in_flight) >= self._settings.delivery_concurrency or (
            page.repeat_round > 0 and not self._repeat_slot_free()
        )
        # Free from here (the loop woken below must count it free; the tasks' done callbacks
        # would come later).
        if (this := asyncio.current_task()) is not None:
            self._in_flight.discard(this)
            self._repeats_in_flight.discard(this)
        if held_last:
            # Every other change a recorded outcome makes (a retry's due time, a deadline, the
            # pages of an escalation) wakes the loop through the triggers on those columns.
            self._queue.wake()

    async def _attempt(self, page: Page) -> None:
        """One attempt of `page`, recorded."""
        started = utcnow()
        # Claimed a moment ago, but acknowledged (or resolved) since? A claimed page may
        # have waited for a slot, or its process may have been paused: no attempt starts
        # after its alert was acknowledged. (One on the wire when the ack lands goes out.)
        if not await self._still_pending(page):
            return
        address = self.address(page)
        if address is None:
            outcome = Outcome("temporary_failure", error="no on-call target configured")
        elif page.provider_sid is not None:
            # Accepted by the provider, and its report on the text or call is overdue.
            outcome = overdue_report(page, self._settings)
        else:
            try:
                # The whole exchange, not each step of it (an SMTP conversation is a dozen
                # steps, each with the channel's own timeout): a send that outlived its
                # lease could be sent again by another replica meanwhile.
                async with asyncio.timeout(self._settings.send_budget_seconds):
                    with tracing.span(
                        f"page {page.channel}",
                        parent=page.traceparent,
                        kind=SpanKind.CLIENT,
                        attributes={
                            "triage.escalation_level": page.escalation_level,
                            "triage.attempt": page.attempt,
                        },
                    ):
                        outcome = await self._channels[page.channel].send(
                            page, address, payload(page, self._settings, ack_key=self._ack_keys[0])
                        )
            except TimeoutError:
                outcome = Outcome(
                    "temporary_failure",
                    error=f"no answer in {self._settings.send_budget_seconds:g} s",
                )
            except Exception as exc:
                # A bug or a bad address must not kill the send: the attempt is recorded
                # and retried, then escalated, like any failure.
                log.exception("page %s: the %s channel raised", page.delivery_id, page.channel)
                outcome = Outcome("temporary_failure", error=type(exc).__name__)
        attempt = DeliveryAttempt(
            delivery_id=page.delivery_id,
            attempt=page.attempt,
            target=recorded_target(page.channel, address),
            started_at=started,
            finished_at=utcnow(),
            http_status=outcome.http_status,
            outcome=outcome.outcome,
            error=outcome.error,
            worker=self.worker,
        )
        self._count(page, outcome)
        if outcome.outcome not in ("delivered", "accepted"):
            log.warning("page %s attempt %d: %s", page.delivery_id, page.attempt, outcome.error)
        try:
            await self._record(page, attempt, outcome, waiting=address is None)
        except Exception:
            # The lease expires and the page is retried: at least once, never lost.
            log.exception("could not record the outcome of page %s", page.delivery_id)

    def _repeat_slot_free(self) -> bool:
        return len(self._repeats_in_flight) < self._settings.repeat_slots

    async def _still_pending(self, page: Page) -> bool:
        try:
            async with self._sessions() as session:
                conn = await driver(session, begin=False)
                await conn.execute(queries.WAIT_FOR_ACK, page.delivery_id)
                return bool(await conn.fetchval(queries.STILL_PENDING, page.delivery_id))
        except Exception:
            log.exception("page %s: could not check it is still due; sending", page.delivery_id)
            return True  # a page sent twice beats a page not sent

    async def _record(
        self, page: Page, attempt: DeliveryAttempt, outcome: Outcome, *, waiting: bool
    ) -> None:
        async with transaction(self._sessions) as session:
            if waiting:
                await wait_for_target(
                    session, delivery_id=page.delivery_id, attempt=attempt, settings=self._settings
                )
                return
            recorded: Recorded = await record_outcome(
                session,
                delivery_id=page.delivery_id,
                alert_id=page.alert_id,
                attempt=attempt,
                outcome=outcome,
                settings=self._settings,
            )
        if recorded.first_delivery_after is not None:
            self._metrics.assessment_to_first_delivery.labels(risk_level=page.risk_level).observe(
                recorded.first_delivery_after
            )
        if recorded.escalated:
            self._metrics.escalations.labels(reason="failed").inc()

    def _count(self, page: Page, outcome: Outcome) -> None:
        self._metrics.deliveries.labels(channel=page.channel, outcome=outcome.outcome).inc()
        if outcome.outcome not in ("delivered", "accepted"):
            kind = "temporary" if outcome.outcome == "temporary_failure" else "permanent"
            self._metrics.delivery_failures.labels(kind=kind, channel=page.channel).inc()
